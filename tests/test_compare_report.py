"""Summary math, plots and the HTML report, from synthetic run series written by the test."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from webnn.cli import main
from webnn.compare.plots import band, step_values
from webnn.compare.report import render_report
from webnn.compare.results import (
    ResultsError,
    RunRecord,
    SeriesRow,
    read_runs,
    read_series,
    write_run,
)
from webnn.compare.summary import first_reaching, format_table, summarize

TARGET = 0.8


def series(points: list[tuple[float, int, float]], rejected: int = 0,
           staleness: float = 1.5) -> list[SeriesRow]:
    """Rows from (time, merges, accuracy); counters grow with merges."""
    return [SeriesRow(time=t, version=m, steps=10 * m, merges=m, val_loss=1 - a, val_accuracy=a,
                      updates_accepted=m, updates_rejected=rejected, mean_staleness=staleness)
            for t, m, a in points]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    runs = {
        ("fast", 1): series([(1.0, 0, 0.1), (3.0, 10, 0.7), (5.0, 20, 0.85), (7.0, 30, 0.9)],
                            rejected=2, staleness=1.0),
        ("fast", 2): series([(1.2, 0, 0.1), (4.0, 12, 0.82), (8.0, 28, 0.86)],
                            rejected=4, staleness=2.0),
        ("slow", 1): series([(1.0, 0, 0.1), (4.0, 8, 0.5), (8.0, 16, 0.6)]),
        ("slow", 2): series([(1.0, 0, 0.1), (5.0, 9, 0.6), (9.0, 17, 0.81)]),
    }
    for (label, seed), rows in runs.items():
        write_run(out, RunRecord(label=label, strategy=label, seed=seed, status="ok",
                                 stopped_by="seconds", duration=9.0), rows)
    write_run(out, RunRecord(label="slow", strategy="slow", seed=3, status="failed",
                             error="RuntimeError: boom"), [])
    (out / "config.json").write_text(json.dumps({
        "name": "synthetic", "target_accuracy": TARGET,
        "strategies": [{"label": "slow"}, {"label": "fast"}],
    }))
    return out


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = series([(0.5, 0, 0.1), (2.25, 3, 0.5)])
    rows.append(SeriesRow(3.0, 4, 40, 4, math.nan, math.nan))
    write_run(tmp_path, RunRecord(label="a", strategy="average", seed=7, status="ok"), rows)
    back = read_series(tmp_path / "runs" / "a__seed7.csv")
    assert back[:2] == rows[:2]
    assert math.isnan(back[2].val_accuracy) and back[2].merges == 4
    [run] = read_runs(tmp_path)
    assert run.record.seed == 7 and len(run.rows) == 3


def test_bad_results_files(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no runs/ inside"):
        read_runs(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x__seed0.csv").write_text("time,version\n1,2\n")
    with pytest.raises(ResultsError, match="missing columns steps, merges"):
        read_series(tmp_path / "runs" / "x__seed0.csv")
    write_run(tmp_path, RunRecord(label="y", strategy="y", seed=0, status="ok"),
              series([(1.0, 1, 0.5)]))
    csv = tmp_path / "runs" / "y__seed0.csv"
    csv.write_text(csv.read_text().replace("0.5", "half", 1))
    with pytest.raises(ResultsError, match=r"y__seed0.csv:2: column val_loss: not a number"):
        read_series(csv)


def test_summary_math(results: Path) -> None:
    runs = read_runs(results)
    fast, slow = None, None
    for s in summarize(runs, TARGET, order=["slow", "fast"]):
        if s.label == "fast":
            fast = s
        else:
            slow = s
    assert [s.label for s in summarize(runs, TARGET, order=["slow", "fast"])] == ["slow", "fast"]
    # fast: finals 0.9 and 0.86
    assert fast.runs == 2 and fast.failed == 0
    assert fast.final_accuracy_mean == pytest.approx(0.88)
    assert fast.final_accuracy_std == pytest.approx(np.std([0.9, 0.86], ddof=1))
    assert (fast.final_accuracy_min, fast.final_accuracy_max) == (0.86, 0.9)
    # first rows >= 0.8: (5.0 s, 20 merges) and (4.0 s, 12 merges)
    assert fast.reached_target == 2
    assert fast.time_to_target_mean == pytest.approx(4.5)
    assert fast.merges_to_target_mean == pytest.approx(16)
    assert fast.updates_rejected_mean == pytest.approx(3)
    assert fast.updates_merged_mean == pytest.approx(29)
    assert fast.mean_staleness == pytest.approx(1.5)
    assert fast.merges_mean == pytest.approx(29)
    # slow: one seed reaches 0.81 at (9.0 s, 17 merges); the failed run is counted, not averaged
    assert slow.runs == 2 and slow.failed == 1
    assert slow.reached_target == 1
    assert slow.time_to_target_mean == pytest.approx(9.0)
    assert slow.final_accuracy_mean == pytest.approx(0.705)
    table = format_table([slow, fast])
    assert "reached 0.8" in table and "2 (+1 failed)" in table and "0.880 ± 0.028" in table


def test_summary_statistics_pair_seeds_and_count_censored_runs(results: Path) -> None:
    slow, fast = summarize(read_runs(results), TARGET, order=["slow", "fast"])
    # Kaplan-Meier: fast reached at 5.0 s and 4.0 s; slow seed 1 never reached (censored at its
    # last validation, 8.0 s), seed 2 reached at 9.0 s: the censored run is counted, not dropped
    assert fast.time_to_target_median == 4.0 and fast.merges_to_target_median == 12
    assert slow.time_to_target_median == 9.0
    # AUC over merges [0, 16] (the fewest merges of any finished run):
    # fast 1: (0.1 * 10 + 0.7 * 6) / 16, fast 2: (0.1 * 12 + 0.82 * 4) / 16
    assert fast.auc_horizon == 16
    assert fast.auc == pytest.approx((0.325 + 0.28) / 2)
    assert slow.auc == pytest.approx((0.3 + 0.31875) / 2)
    # paired by seed against the reference (the first strategy): 0.9 - 0.6 and 0.86 - 0.81
    assert slow.reference is None and slow.final_accuracy_diff is None
    assert fast.reference == "slow"
    diff = fast.final_accuracy_diff
    assert diff.n == 2 and diff.estimate == pytest.approx(0.175)
    assert (diff.low, diff.high) == pytest.approx((0.05, 0.3)) and diff.excludes_zero
    assert fast.auc_diff.estimate == pytest.approx((0.325 - 0.3 + 0.28 - 0.31875) / 2)
    assert not fast.auc_diff.excludes_zero
    table = format_table([slow, fast])
    assert "strategy − slow" in table and "+0.175 [+0.050, +0.300] *" in table


def test_summary_edge_cases() -> None:
    assert first_reaching(series([(1.0, 1, 0.5), (2.0, 2, 0.9)]), 0.9).time == 2.0
    assert first_reaching(series([(1.0, 1, 0.5)]), 0.9) is None
    from webnn.compare.results import Run

    [one] = summarize([Run(RunRecord("a", "a", 0, status="ok"), series([(1.0, 1, 0.4)]))], None)
    assert one.final_accuracy_std == 0.0 and one.target_accuracy is None
    assert math.isnan(one.time_to_target_mean)
    [none] = summarize([Run(RunRecord("a", "a", 0, status="failed"), [])], 0.5)
    assert none.runs == 0 and none.failed == 1 and math.isnan(none.final_accuracy_mean)
    assert "reached" not in format_table([one])


def test_step_band() -> None:
    xs = np.array([1.0, 3.0])
    assert np.allclose(step_values(xs, np.array([0.2, 0.6]), np.array([0.5, 1.0, 2.0, 3.0, 9.0])),
                       [np.nan, 0.2, 0.2, 0.6, 0.6], equal_nan=True)
    grid, mean, low, high = band([(xs, np.array([0.2, 0.6])),
                                  (np.array([2.0]), np.array([0.4]))])
    assert list(grid) == [1.0, 2.0, 3.0]
    assert np.allclose(mean, [0.2, 0.3, 0.5])
    assert np.allclose(low, [0.2, 0.2, 0.4]) and np.allclose(high, [0.2, 0.4, 0.6])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_files(results: Path) -> None:
    report = render_report(results)
    names = {p.name for p in report.files}
    assert names == {"summary.md", "summary.json", "accuracy_vs_time.png",
                     "accuracy_vs_merges.png", "accuracy_vs_time.svg", "accuracy_vs_merges.svg",
                     "report.html"}
    for name in ("accuracy_vs_time.png", "accuracy_vs_merges.png"):
        width, height = png_size(results / name)
        assert width > 300 and height > 200
    svg = (results / "accuracy_vs_merges.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    render_report(results)  # re-rendering gives the same SVG (no dates, fixed ids)
    assert (results / "accuracy_vs_merges.svg").read_text() == svg
    summary = json.loads((results / "summary.json").read_text())
    assert [s["label"] for s in summary["strategies"]] == ["slow", "fast"]
    assert summary["strategies"][1]["final_accuracy_mean"] == pytest.approx(0.88)
    assert summary["strategies"][0]["reached_target"] == 1
    md = (results / "summary.md").read_text()
    assert md.startswith("# Comparison: synthetic") and "| fast | 2 |" in md
    assert "| strategy − slow |" in md
    assert summary["strategies"][1]["final_accuracy_diff"]["estimate"] == pytest.approx(0.175)
    html = (results / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "RuntimeError: boom" in html and "<td>fast</td>" in html
    assert "src='http" not in html and 'src="http' not in html  # self-contained


def test_report_shows_provenance(results: Path) -> None:
    (results / "provenance.json").write_text(json.dumps({"webnn": "0.1.0", "commit": "abc123",
                                                         "cpus": 16}))
    render_report(results)
    assert "Provenance: webnn 0.1.0, commit abc123, cpus 16" in (results / "summary.md").read_text()
    summary = json.loads((results / "summary.json").read_text())
    assert summary["provenance"]["commit"] == "abc123"
    assert "<td>abc123</td>" in (results / "report.html").read_text()
    (results / "provenance.json").write_text("[1]")
    with pytest.raises(ResultsError, match="provenance.json: expected a JSON object"):
        render_report(results)


def test_collect_provenance_names_versions_and_machine(tmp_path: Path) -> None:
    from webnn.compare.provenance import collect_provenance

    modules = tmp_path / "node_modules" / "@tensorflow" / "tfjs"
    modules.mkdir(parents=True)
    (modules / "package.json").write_text('{"version": "4.22.0"}')
    facts = collect_provenance(tmp_path)
    assert facts["tfjs"] == "4.22.0" and facts["node"].startswith("v")
    assert facts["cpus"] >= 1 and facts["python"].count(".") == 2
    assert facts["commit"] == "unknown" or len(facts["commit"].removesuffix("+dirty")) == 40
    assert collect_provenance(tmp_path / "missing")["tfjs"] == "unknown"


def test_plots_differ_by_axis_and_data(results: Path) -> None:
    render_report(results)
    by_time = (results / "accuracy_vs_time.png").read_bytes()
    by_merges = (results / "accuracy_vs_merges.png").read_bytes()
    assert by_time != by_merges


def test_report_command(results: Path) -> None:
    result = CliRunner().invoke(main, ["compare", "--report", str(results)])
    assert result.exit_code == 0, result.output
    assert "final acc (mean ± sd)" in result.output and "wrote" in result.output
    assert (results / "report.html").is_file()
    bad = CliRunner().invoke(main, ["compare", "--report", str(results / "runs")])
    assert bad.exit_code == 1 and "not a results directory" in bad.output
    neither = CliRunner().invoke(main, ["compare"])
    assert neither.exit_code == 2 and "give a CONFIG file" in neither.output


def test_sweep_report_shows_both_efficiencies_and_the_speedup(tmp_path: Path) -> None:
    """A client sweep: merges/s, merges to target and time to target per client count; the
    speedup is the time at the smallest count over the time at n."""
    from webnn.compare.sweep import sweep_rows

    out = tmp_path / "sweep"
    # 1 client: 10 merges/s, reaches 0.8 at 20 merges (2 s); 4 clients: 40 merges/s, reaches it at
    # 40 merges (1 s): 4x the hardware rate, 2x the merges, so 2x faster
    for seed in (1, 2):
        for clients, points in ((1, [(0.0, 0, 0.1), (2.0, 20, 0.85), (3.0, 30, 0.9)]),
                                (4, [(0.0, 0, 0.1), (1.0, 40, 0.82), (1.5, 60, 0.9)])):
            write_run(out, RunRecord(label=f"avg@{clients}", strategy="average", seed=seed,
                                     status="ok", clients=clients), series(points))
    (out / "config.json").write_text(json.dumps({
        "name": "sweep", "target_accuracy": TARGET, "strategies": [{"label": "avg"}],
        "sweep": {"clients": [1, 4], "group": "g"}}))
    rows = sweep_rows(read_runs(out), TARGET, ["avg"])
    assert [(r.clients, r.merges_per_second, r.merges_to_target, r.time_to_target)
            for r in rows] == [(1, 10.0, 20, 2.0), (4, 40.0, 40, 1.0)]
    assert rows[0].speedup == 1.0 and rows[1].speedup == 2.0
    report = render_report(out)
    md = (out / "summary.md").read_text()
    assert "| avg | 4 | 2 | 2/2 | 40.0 | 40 | 1.0 | 2.00x | 4x |" in md
    assert "Scaling with clients" in report.table
    assert (out / "speedup_vs_clients.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s.label for s in report.summaries] == ["avg@1", "avg@4"]
