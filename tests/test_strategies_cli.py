"""`wnn strategies` lists fedasync, fedbuff and robust with their parameters and defaults."""

from __future__ import annotations

import json

from click.testing import CliRunner

from webnn.cli import main


def test_wnn_strategies_lists_the_new_strategies() -> None:
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 0, result.output
    for line in ("fedasync  (built-in)", "fedbuff  (built-in)", "robust  (built-in)",
                 "alpha (float, default 0.6)", "staleness_fn (str, default 'polynomial')",
                 "normalize (str, default 'count')", "aggregator (str, default 'median')"):
        assert line in result.output


def test_wnn_strategies_json_gives_parameters_and_base_weight_needs() -> None:
    result = CliRunner().invoke(main, ["strategies", "--json", "fedasync", "fedbuff", "robust"])
    assert result.exit_code == 0, result.output
    listed = {s["name"]: s for s in json.loads(result.output)["strategies"]}
    assert set(listed) == {"fedasync", "fedbuff", "robust"}
    assert listed["fedasync"]["needsBaseWeights"] is False
    assert listed["fedbuff"]["needsBaseWeights"] is True
    defaults = {p["name"]: p["default"] for p in listed["robust"]["params"]}
    assert defaults["k"] == 10 and defaults["trim"] == 0.1 and defaults["clip"] is None
    fedbuff = {p["name"]: p for p in listed["fedbuff"]["params"]}
    assert fedbuff["staleness_fn"]["choices"] == ["constant", "polynomial", "hinge"]
