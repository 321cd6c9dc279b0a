"""``wnn strategies``: text and JSON listings, including third-party strategies."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from webnn.cli import main

PLUGIN = '''
from webnn.merge import Param, Strategy

class Buffered(Strategy):
    name = "buffered"
    description = "collects updates"
    needs_base_weights = True
    params = (Param("size", int, 4, "updates per flush", minimum=1),
              Param("mode", str, "mean", "how to combine", choices=("mean", "median")))

    def merge(self, model, update):
        return False
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"wnn_cli_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    info = tmp_path / "wnncli-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wnncli\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text(
        f"[webnn.strategies]\nbuffered = {name}:Buffered\nbroken = {name}:Missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_lists_builtins_with_formulas() -> None:
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "average  (built-in)"
    assert "W_n = (W_{n-1} + W_p) / 2" in lines[1]
    assert "parameters: none" in result.output
    assert "weighted  (built-in)" in lines and "mimic  (built-in)" in lines


def test_json_listing() -> None:
    result = CliRunner().invoke(main, ["strategies", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)["strategies"]
    assert [s["name"] for s in listed][:3] == ["average", "weighted", "mimic"]
    assert listed[2] == {"name": "mimic", "origin": "built-in", "error": None,
                         "needsBaseWeights": False, "params": listed[2]["params"],
                         "description": listed[2]["description"]}
    assert [(p["name"], p["default"], p["choices"]) for p in listed[2]["params"]] == [
        ("unit", "steps", ["steps", "tasks"])]


def test_lists_entry_points_with_params_and_reports_broken_ones(plugin: str) -> None:
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 1  # a plugin failed to load
    assert f"buffered  (entry point {plugin}:Buffered (wnncli 2.0))" in result.output
    assert "      size (int, default 4) [>= 1]: updates per flush" in result.output
    assert "      mode (str, default 'mean') [one of mean, median]: how to combine" in result.output
    assert "needs the base version's weights" in result.output
    assert f"error: broken: entry point 'broken' = '{plugin}:Missing'" in result.output

    as_json = CliRunner().invoke(main, ["strategies", "--json", "buffered"])
    assert as_json.exit_code == 0
    [entry] = json.loads(as_json.output)["strategies"]
    assert entry["needsBaseWeights"] is True
    assert entry["params"][0] == {"name": "size", "type": "int", "default": 4,
                                  "help": "updates per flush", "choices": None,
                                  "minimum": 1, "maximum": None}


def test_named_reference_and_unknown_name(plugin: str) -> None:
    result = CliRunner().invoke(main, ["strategies", f"{plugin}:Buffered", "nope"])
    assert result.exit_code == 1
    assert f"{plugin}:Buffered  (reference)" in result.output
    assert "error: nope: unknown strategy 'nope'; known strategies: average, broken, buffered, " \
        in result.output
