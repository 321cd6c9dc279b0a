"""Runner parts without a full run: metrics parsing, the stop rule, worker supervision, churn."""

from __future__ import annotations

import asyncio
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from webnn.compare.config import Churn, CompareConfig, parse_config
from webnn.compare.runner import StopWatch, parse_metrics
from webnn.compare.workers import MAX_CRASHES, ClientSlot, WorkerCrashed
from webnn.node_worker import WorkerArgs, WorkerCommand, WorkerSetupError
from webnn.server.metrics import Metrics

NODE = shutil.which("node")


def test_parse_metrics_from_the_server_metrics() -> None:
    metrics = Metrics()
    metrics.updates_accepted.inc(5)
    metrics.updates_rejected.labels(reason="not_finite").inc(2)
    metrics.updates_rejected.labels(reason="too_stale").inc(1)
    metrics.updates_rejected.labels(reason="ended").inc(4)  # after the stop: not counted
    for staleness in (0, 1, 2, 5):
        metrics.staleness.observe(staleness)
    sample = parse_metrics(metrics.render().decode())
    assert (sample.accepted, sample.rejected) == (5, 3)
    assert sample.mean_staleness == pytest.approx(2.0)
    assert math.isnan(parse_metrics(Metrics().render().decode()).mean_staleness)


def config(tmp_path: Path, stop: dict) -> CompareConfig:
    (tmp_path / "m.json").write_text("{}")
    return parse_config({"model": "m.json", "data": "x.y", "stop": stop,
                         "strategies": [{"name": "average"}], "clients": [{"count": 1}]},
                        base_dir=tmp_path)


def test_stop_watch_waits_for_the_server(tmp_path: Path) -> None:
    watch = StopWatch(config(tmp_path, {"seconds": 10, "merges": 50}), grace=5)
    running = {"state": "running"}
    assert watch.reason(3, 10, 0.5, running) is None
    assert watch.reason(4, 60, 0.5, running) is None  # merges reached: the server gets 5 s
    assert watch.reason(8.9, 70, 0.5, running) is None
    assert watch.reason(9, 70, 0.5, running) == "merges (server did not end)"
    ended = {"state": "ended", "endReason": "max_merges=50 reached"}
    assert watch.reason(5, 50, 0.5, ended) == "max_merges=50 reached"
    target = StopWatch(config(tmp_path, {"target_accuracy": 0.9}), grace=0)
    assert target.reason(1, 1, 0.89, running) is None
    assert target.reason(2, 1, 0.91, running) == "target_accuracy (server did not end)"


def write_script(tmp_path: Path, name: str, body: str) -> WorkerCommand:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    return WorkerCommand(NODE, path)


@pytest.mark.skipif(NODE is None, reason="needs node")
async def test_churn_kills_and_restarts(tmp_path: Path) -> None:
    command = write_script(tmp_path, "idle.js",
                           "console.log('up', process.argv.slice(2).join(' '));"
                           "setInterval(() => {}, 1000);")
    slot = ClientSlot(WorkerArgs(server_url="http://127.0.0.1:1/", name="phone-1", role="train",
                                 speed=0.5, attack="sign_flip", attack_scale=4),
                      command=command, log_path=tmp_path / "logs" / "phone-1.log",
                      churn=Churn(mean_online_seconds=0.2, mean_offline_seconds=0.05),
                      rng=np.random.default_rng(0))
    task = asyncio.create_task(slot.run())
    for _ in range(600):  # wait for events, not for a time
        if slot.stats.churn_events >= 2:
            break
        await asyncio.sleep(0.05)
    process = slot._process
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slot.stats.churn_events >= 2 and slot.stats.starts >= 3
    assert slot.stats.crashes == 0
    assert process.returncode is not None  # cancelled: the last worker is stopped too
    log = slot.log_path.read_text()
    assert "--role train --backend cpu --name phone-1 --speed 0.5 --attack sign_flip " \
           "--attack-scale 4" in log


@pytest.mark.skipif(NODE is None, reason="needs node")
async def test_crashing_worker_fails_with_its_output(tmp_path: Path) -> None:
    command = write_script(tmp_path, "crash.js",
                           "console.error('wnn-worker: --attack: unknown option');"
                           "process.exit(2);")
    slot = ClientSlot(WorkerArgs(server_url="http://127.0.0.1:1/", name="w", role="train"),
                      command=command, log_path=tmp_path / "w.log")
    with pytest.raises(WorkerCrashed, match="exited with status 2 3 times") as info:
        await asyncio.wait_for(slot.run(), 60)
    assert "--attack: unknown option" in str(info.value)
    assert slot.stats.crashes == MAX_CRASHES


def test_worker_command_find(tmp_path: Path) -> None:
    with pytest.raises(WorkerSetupError, match="wnn-worker.js does not exist"):
        WorkerCommand.find(tmp_path)


@pytest.mark.skipif(NODE is None, reason="needs node")
async def test_a_failing_run_is_recorded_and_the_next_one_runs(tmp_path: Path) -> None:
    """Workers that crash at start fail their run; the comparison goes on and reports both."""
    from webnn.compare.report import render_report
    from webnn.compare.results import read_runs
    from webnn.compare.runner import Prepared, Progress, run_comparison
    from webnn.data import load_data_module
    from webnn.spec import load_spec

    repo = Path(__file__).resolve().parent.parent
    spec_path = repo / "model_specs" / "digits_mlp.json"
    if not spec_path.is_file():
        pytest.skip("needs model_specs/digits_mlp.json")
    command = write_script(tmp_path, "crash.js", "console.error('no TF.js here'); process.exit(1);")
    parsed = parse_config({
        "model": str(spec_path), "data": str(repo / "data_modules" / "digits.py"),
        "stop": {"seconds": 30}, "strategies": [{"name": "average"}, {"name": "weighted"}],
        "clients": [{"count": 1}]}, base_dir=tmp_path)
    prepared = Prepared(load_spec(spec_path), load_data_module(parsed.data, {}), command)
    log = tmp_path / "progress.txt"
    with open(log, "w") as stream:
        records = await asyncio.wait_for(
            run_comparison(parsed, prepared, tmp_path / "out", Progress(stream)), 120)
    assert sorted((r.label, r.status) for r in records) == [("average", "failed"),
                                                            ("weighted", "failed")]
    assert all("WorkerCrashed" in r.error and "no TF.js here" in r.error for r in records)
    assert "FAILED" in log.read_text()
    assert [r.record.status for r in read_runs(tmp_path / "out")] == ["failed", "failed"]
    report = render_report(tmp_path / "out")
    assert report.summaries[0].failed == 1 and report.summaries[0].runs == 0
    assert "no TF.js here" in (tmp_path / "out" / "report.html").read_text()


def test_run_plan_is_seed_major_and_shuffles_strategies_reproducibly() -> None:
    from webnn.compare.config import StrategyEntry
    from webnn.compare.runner import run_plan

    entries = [StrategyEntry(label=name, name="average") for name in "abcdef"]
    fixed = run_plan(entries, [1, 2], "fixed")
    assert [(e.label, s) for e, s in fixed] == [(x, s) for s in (1, 2) for x in "abcdef"]
    shuffled = run_plan(entries, [1, 2, 3], "random")
    assert shuffled == run_plan(entries, [1, 2, 3], "random")  # reproducible
    for i, seed in enumerate((1, 2, 3)):  # each seed runs every strategy before the next seed
        block = shuffled[6 * i: 6 * i + 6]
        assert {s for _, s in block} == {seed}
        assert sorted(e.label for e, _ in block) == list("abcdef")
    orders = {tuple(e.label for e, _ in shuffled[6 * i: 6 * i + 6]) for i in range(3)}
    assert len(orders) > 1  # not one fixed order (3 seeds of 720 orders each)
