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


def test_churn32_is_the_churn_experiment_with_every_client_kind_doubled() -> None:
    """label_skew_churn32.toml changes only the client count: the same strategies, data, partition,
    budget, evaluation and server, every client kind (speed, latency, churn) twice as many."""
    from dataclasses import replace

    base = load_config(EXPERIMENTS[0].parent / "label_skew_churn.toml")
    big = load_config(EXPERIMENTS[0].parent / "label_skew_churn32.toml")
    assert (base.num_clients, big.num_clients) == (16, 32)
    assert big.strategies == base.strategies
    assert big.clients == tuple(replace(group, count=2 * group.count) for group in base.clients)
    for field in ("model", "data", "data_options", "partition", "seeds", "evaluation", "server",
                  "target_accuracy", "order"):
        assert getattr(big, field) == getattr(base, field), field
    assert big.stop.merges == base.stop.merges
    # only the divergence guard is longer (32 Node clients take longer to start)
    assert big.stop.timeout_seconds > base.stop.timeout_seconds


def test_every_shipped_experiment_validates_on_the_larger_split() -> None:
    for path in EXPERIMENTS:
        config = load_config(path)
        assert config.data_options.get("validation_fraction") in ("0.4", 0.4), path.name


def test_the_poster_sweep_plans_every_rule_at_4_and_8_clients() -> None:
    from webnn.compare.runner import sweep_plan

    config = load_config(EXPERIMENTS[0].parent / "webnn_poster.toml")
    plan = sweep_plan(config)
    assert len(plan) == 5 * 5 * 2
    labels = {entry.label for _, entry, _, _ in plan}
    assert labels == {f"{label}@{n}" for label in ("average", "weighted", "weighted-tasks",
                                                   "mimic", "mimic-tasks") for n in (4, 8)}
    for variant, entry, _, clients in plan:
        assert variant.num_clients == clients
        assert entry.label.endswith(f"@{clients}")
    # the config's own entries keep their labels
    assert [e.label for e in config.strategies][:2] == ["average", "weighted"]
