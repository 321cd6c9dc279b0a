"""Worst-class accuracy in `wnn compare`: the run series' ``worst_class_accuracy`` column (old
CSVs without it read as NaN), the summary's final worst-class accuracy (mean ± sd, paired
difference against the reference) and the Markdown/HTML tables. A worked example by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from webnn.compare.html_report import render_html
from webnn.compare.results import RunRecord, SeriesRow, read_runs, read_series, write_run
from webnn.compare.summary import summarize, to_json, to_markdown


def rows(final_accuracy: float, worst: float) -> list[SeriesRow]:
    return [SeriesRow(time=1.0, version=0, steps=0, merges=0, val_loss=2.0, val_accuracy=0.1,
                      worst_class_accuracy=0.0),
            SeriesRow(time=5.0, version=20, steps=200, merges=20, val_loss=0.3,
                      val_accuracy=final_accuracy, worst_class_accuracy=worst)]


# final worst-class accuracy by seed
#   ref:   0.5  0.6  0.9   mean 2/3, sd sqrt(((1/6)^2 + (1/15)^2 + (7/30)^2) / 2) = 0.20817
#   other: 0.6  0.7  0.8   mean 0.7, sd 0.1
#   other - ref (paired): +0.1 +0.1 -0.1, mean +1/30
REF = {1: 0.5, 2: 0.6, 3: 0.9}
OTHER = {1: 0.6, 2: 0.7, 3: 0.8}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for label, worst in (("ref", REF), ("other", OTHER)):
        for seed, value in worst.items():
            write_run(tmp_path, RunRecord(label=label, strategy=label, seed=seed, status="ok"),
                      rows(0.9, value))
    return tmp_path


def test_worst_class_summary_worked_example(results: Path) -> None:
    ref, other = summarize(read_runs(results), None, order=["ref", "other"])
    assert ref.worst_class_runs == 3 and ref.worst_class_mean == pytest.approx(2 / 3)
    assert ref.worst_class_std == pytest.approx(math.sqrt(((1 / 6) ** 2 + (1 / 15) ** 2
                                                            + (7 / 30) ** 2) / 2))
    assert ref.worst_class_diff is None
    assert other.worst_class_mean == pytest.approx(0.7)
    assert other.worst_class_std == pytest.approx(0.1)
    diff = other.worst_class_diff
    assert diff is not None and diff.n == 3 and diff.estimate == pytest.approx(1 / 30)
    assert diff.low <= diff.estimate <= diff.high and not diff.excludes_zero
    markdown = to_markdown([ref, other])
    assert "worst-class acc (mean ± sd)" in markdown and "0.700 ± 0.100" in markdown
    assert "0.667 ± 0.208" in markdown
    assert "worst-class acc diff [95% CI]" in markdown and "+0.033 [" in markdown
    assert json.loads(to_json([ref, other]))["strategies"][1]["worst_class_mean"] == (
        pytest.approx(0.7))
    page = render_html("t", {}, [ref, other], read_runs(results), {})
    assert "worst-class acc (mean ± sd)" in page and "<td>0.800</td>" in page


def test_runs_without_per_class_figures(tmp_path: Path) -> None:
    # a run whose clients sent no per-class counts: NaN, left out of the mean, no column
    write_run(tmp_path, RunRecord(label="a", strategy="a", seed=1, status="ok"),
              rows(0.9, math.nan))
    (summary,) = summarize(read_runs(tmp_path), None)
    assert summary.worst_class_runs == 0 and math.isnan(summary.worst_class_mean)
    assert "worst-class" not in to_markdown([summary])
    write_run(tmp_path, RunRecord(label="a", strategy="a", seed=2, status="ok"), rows(0.9, 0.4))
    (summary,) = summarize(read_runs(tmp_path), None)
    assert summary.worst_class_runs == 1 and summary.worst_class_mean == 0.4
    assert summary.worst_class_std == 0.0


def test_csv_column_round_trip_and_old_csvs(tmp_path: Path) -> None:
    write_run(tmp_path, RunRecord(label="a", strategy="a", seed=1, status="ok"), rows(0.9, 0.25))
    path = tmp_path / "runs" / "a__seed1.csv"
    assert path.read_text().splitlines()[0].endswith(",worst_class_accuracy")
    assert read_series(path)[-1].worst_class_accuracy == 0.25
    old = tmp_path / "old.csv"
    old.write_text("time,version,steps,merges,val_loss,val_accuracy,updates_accepted,"
                   "updates_rejected,mean_staleness\n1.0,3,30,3,0.5,0.8,3,0,1.5\n")
    (row,) = read_series(old)
    assert row.val_accuracy == 0.8 and math.isnan(row.worst_class_accuracy)
