"""The shipped experiments (experiments/*.toml) follow the methodology docs/experiments.md states:
at least 5 seeds, a stop rule in merges (not seconds, so the machine's speed does not decide the
result), a randomised interleaved run order, and every config valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from webnn.compare.config import load_config

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.toml"))
DOCS = Path(__file__).parent.parent / "docs" / "experiments.md"


def test_experiments_exist() -> None:
    assert len(EXPERIMENTS) >= 8


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_shipped_experiment_methodology(path: Path) -> None:
    config = load_config(path)
    assert len(config.seeds) >= 5, f"{path.name}: {len(config.seeds)} seeds"
    assert config.stop.merges is not None, f"{path.name}: no stop.merges"
    assert config.stop.seconds is None, f"{path.name}: stops on seconds"
    assert config.order == "random"
    assert config.target_accuracy is not None
    # the command that reproduces it is in the file's header and in the docs
    command = f"wnn compare experiments/{path.name}"
    assert command in path.read_text(encoding="utf-8")
    assert command in DOCS.read_text(encoding="utf-8")
