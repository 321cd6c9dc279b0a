"""Validation size: the shipped data modules' split option, the summary's validation line (n and
the standard error it resolves), and `wnn compare --seeds` (one config's seeds spread over
several processes, rendered together with --report)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from webnn.cli import main
from webnn.compare.commands import select_seeds
from webnn.compare.report import render_report
from webnn.compare.results import RunRecord, SeriesRow, write_run
from webnn.compare.summary import ValidationSize, summarize, to_json, to_markdown, validation_size
from webnn.data import load_data_module

ROOT = Path(__file__).parent.parent


def test_digits_validation_fraction_is_stratified_and_fixed() -> None:
    small = load_data_module(str(ROOT / "data_modules" / "digits.py"), {})
    large = load_data_module(str(ROOT / "data_modules" / "digits.py"),
                             {"validation_fraction": "0.4"})
    again = load_data_module(str(ROOT / "data_modules" / "digits.py"),
                             {"validation_fraction": "0.4"})
    assert len(small.y_val) == 359 and len(large.y_val) == 719
    assert len(large.y_val) + len(large.y_train) == 1797
    counts = np.bincount(large.y_train, minlength=10) + np.bincount(large.y_val, minlength=10)
    # round(0.4 * n_c) of each class c goes to validation
    assert np.array_equal(np.bincount(large.y_val, minlength=10), np.round(0.4 * counts))
    assert np.array_equal(large.x_val, again.x_val)  # the split does not depend on the run


def _run(out: Path, label: str, seed: int, accuracy: float, examples: int | None) -> None:
    status = {"lastEvaluation": {"examples": examples}} if examples is not None else {}
    rows = [SeriesRow(time=1.0, version=1, steps=5, merges=1, val_loss=1.0, val_accuracy=0.1),
            SeriesRow(time=2.0, version=9, steps=45, merges=9, val_loss=0.5,
                      val_accuracy=accuracy)]
    write_run(out, RunRecord(label=label, strategy="average", seed=seed, status="ok",
                             final_status=status), rows)


def test_validation_line_gives_n_and_the_standard_error(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out, "a", 1, 0.6, 719)
    _run(out, "a", 2, 0.8, 719)
    _run(out, "b", 1, 0.7, 359)  # odd one out: the most common n is reported
    (out / "config.json").write_text(json.dumps({"name": "v", "strategies": [{"label": "a"},
                                                                             {"label": "b"}]}))
    report = render_report(out)
    size = ValidationSize(719, 0.7)
    assert size.standard_error == pytest.approx(math.sqrt(0.7 * 0.3 / 719))  # 0.0171
    assert "Validation: 719 examples per evaluation; standard error of one accuracy figure at " \
           "0.700: 0.017" in report.table
    assert "Validation: 719 examples" in (out / "summary.md").read_text()
    assert "Validation: 719 examples" in (out / "report.html").read_text()
    saved = json.loads((out / "summary.json").read_text())["validation"]
    assert saved["examples"] == 719 and saved["standardError"] == pytest.approx(0.01709, abs=1e-5)


def test_no_validation_line_without_counts(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out, "a", 1, 0.6, None)
    from webnn.compare.results import read_runs

    runs = read_runs(out)
    assert validation_size(runs) is None
    summaries = summarize(runs, None, ["a"])
    assert "Validation" not in to_markdown(summaries, "t")
    assert "validation" not in json.loads(to_json(summaries))


def test_select_seeds() -> None:
    assert select_seeds((1, 2, 3, 4, 5), "4, 2") == (2, 4)
    with pytest.raises(click.BadParameter, match="seed 9 is not in the config's seeds"):
        select_seeds((1, 2), "9")
    with pytest.raises(click.BadParameter, match="expected integers"):
        select_seeds((1, 2), "1,x")


def test_compare_check_with_seeds() -> None:
    config = str(ROOT / "experiments" / "label_skew_churn.toml")
    result = CliRunner().invoke(main, ["compare", config, "--check", "--seeds", "2,5"])
    assert result.exit_code == 0, result.output
    assert "4 strategies x 2 seeds, 16 clients" in result.output
    result = CliRunner().invoke(main, ["compare", config, "--check", "--seeds", "7"])
    assert result.exit_code != 0 and "seed 7 is not in the config's seeds" in result.output


def test_auc_horizon_leaves_out_runs_that_ended_on_the_timeout(tmp_path: Path) -> None:
    out = tmp_path / "r"
    _run(out, "a", 1, 0.9, None)  # rows at merges 1 and 9
    short = [SeriesRow(time=1.0, version=1, steps=5, merges=1, val_loss=1.0, val_accuracy=0.2),
             SeriesRow(time=60.0, version=3, steps=15, merges=3, val_loss=9.0, val_accuracy=0.1)]
    write_run(out, RunRecord(label="b", strategy="mimic", seed=1, status="ok",
                             stopped_by="timeout"), short)
    from webnn.compare.results import read_runs

    by_label = {s.label: s for s in summarize(read_runs(out), None, ["a", "b"])}
    assert by_label["a"].auc_horizon == 9
    # a: 0.1 over [0, 9) ... the step function holds 0.1 from 0 to 9, then 0.9 at 9: mean 0.1
    assert by_label["a"].auc == pytest.approx(0.1)
    # b holds 0.2 over [0, 3) and its last 0.1 over [3, 9]: (0.2 * 3 + 0.1 * 6) / 9
    assert by_label["b"].auc == pytest.approx((0.2 * 3 + 0.1 * 6) / 9)
