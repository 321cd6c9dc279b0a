"""bench/scaling.py's bookkeeping (no processes): settings, re-targeting recorded histories, the
summary's efficiencies and speedup, and packing runs onto disjoint cores."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from webnn.node_worker import WorkerArgs, WorkerCommand

BENCH = Path(__file__).resolve().parent.parent / "bench" / "scaling.py"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("bench_scaling", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scaling"] = module
    spec.loader.exec_module(module)
    return module


def run(clients: int, seed: int, history: list[tuple[float, int, float]], ups: float,
        speeds: list[float] | None = None) -> dict:
    return {"workload": "w", "clients": clients, "seed": seed, "setting": "average",
            "speeds": speeds or [1.0] * clients, "reached": False, "time_to_target": None,
            "updates_to_target": None, "final_accuracy": history[-1][2],
            "updates_per_second": ups,
            "history": [{"t": t, "merges": m, "version": m, "acc": a} for t, m, a in history]}


def test_setting_parse(scaling) -> None:
    setting = scaling.Setting.parse("fedbuff k=4 normalize=count lr=0.02 reset")
    assert setting == scaling.Setting("fedbuff", {"k": "4", "normalize": "count"}, 0.02, True)
    assert setting.label() == "fedbuff k=4 normalize=count lr=0.02 reset"
    with pytest.raises(ValueError, match="'oops' is not key=value"):
        scaling.Setting.parse("average oops")


def test_retarget_takes_the_first_validation_at_or_above_the_target(scaling) -> None:
    r = scaling.retarget(run(1, 1, [(0.5, 0, 0.1), (2.0, 3, 0.6), (3.5, 6, 0.8)], 1.0), 0.6)
    assert (r["reached"], r["time_to_target"], r["updates_to_target"]) == (True, 2.0, 3)
    assert scaling.retarget(r, 0.9)["reached"] is False


def test_summary_speedup_is_the_ratio_of_median_times(scaling) -> None:
    runs = [scaling.retarget(run(1, s, [(0, 0, 0.0), (t, m, 0.9)], 1.0), 0.9)
            for s, t, m in ((1, 10.0, 10), (2, 12.0, 12), (3, 30.0, 30))]
    runs += [scaling.retarget(run(4, s, [(0, 0, 0.0), (t, m, 0.9)], 3.0), 0.9)
             for s, t, m in ((1, 4.0, 12), (2, 6.0, 18), (3, 5.0, 15))]
    runs.append(scaling.retarget(run(4, 9, [(0, 0, 0.0), (1.0, 3, 0.5)], 2.0, [0.25, 1, 1, 1]),
                                 0.9))
    rows = {(r["clients"], r["heterogeneous"]): r for r in scaling.summarise(runs)}
    four = rows[(4, False)]
    assert four["time_to_target"] == 5.0 and four["speedup"] == pytest.approx(12.0 / 5.0)
    assert four["hardware_speedup"] == pytest.approx(3.0)
    assert four["statistical_cost"] == pytest.approx(15 / 12)
    assert rows[(4, True)]["time_to_target"] == math.inf  # not reached is not averaged away
    assert "not reached" in scaling.markdown(list(rows.values()),
                                             {"date": "d", "machine": "m", "command": "c"})


def test_runs_share_the_pool_only_while_their_cores_fit(scaling) -> None:
    cores = scaling.Cores(True, 0, list(range(1, 16)))
    plan = scaling.plan([1, 4, 8, 16], [1, 2], [], 4.0)
    groups = [[r.clients for r in g] for g in scaling.batches(plan, cores, parallel=4)]
    assert groups == [[1, 1, 4, 4], [8], [8], [16], [16]]  # 2 + 2 + 5 + 5 = 14 cores
    assert all(sum(n + 1 for n in g) <= 15 or len(g) == 1 for g in groups)
    het = scaling.plan([], [1], [4], 4.0)[0]
    assert het.speeds == [0.25, 0.5, 0.75, 1.0]


def test_worker_args_pass_reset_optimizer() -> None:
    command = WorkerCommand("node", Path("bin/wnn-worker.js"))
    argv = WorkerArgs("http://h/", "w", reset_optimizer=True).argv(command)
    assert argv[-1] == "--reset-optimizer"
    assert "--reset-optimizer" not in WorkerArgs("http://h/", "w").argv(command)


def test_accuracy_at_equal_time_and_runs_without_a_full_history(scaling) -> None:
    one = run(1, 1, [(0.0, 0, 0.1), (10.0, 5, 0.3), (40.0, 20, 0.5)], 0.5)
    assert scaling.accuracy_at(one, 30.0) == 0.3 and scaling.accuracy_at(one, -1.0) is None
    partial = {**run(2, 1, [(30.0, 30, 0.4)], 1.0), "history_incomplete": True}
    rows = {r["clients"]: r for r in scaling.summarise([one, partial], at=30.0)}
    assert rows[1]["acc_at"] == 0.3 and rows[2]["acc_at"] == 0.4
    assert math.isnan(rows[2]["time_to_target"])  # unknown, not "not reached"
    table = scaling.markdown(list(rows.values()), {"date": "d", "machine": "m", "command": "c"})
    assert "not measured" in table and "0.400 (0.400-0.400)" in table
