"""bench/scaling.py's second-pass bookkeeping (no processes): local steps in a setting, per-count
caps, and efficiencies counted in optimiser steps when settings differ in task length."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "scaling.py"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("bench_scaling_steps", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scaling_steps"] = module
    spec.loader.exec_module(module)
    return module


def run(clients: int, seed: int, t: float, merges: int, ups: float, steps: int) -> dict:
    return {"workload": "w", "clients": clients, "seed": seed, "setting": "s",
            "speeds": [1.0] * clients, "reached": True, "time_to_target": t,
            "updates_to_target": merges, "final_accuracy": 0.9, "updates_per_second": ups,
            "local_steps": steps,
            "history": [{"t": t, "merges": merges, "version": merges, "acc": 0.9}]}


def test_setting_carries_local_steps_into_the_spec(scaling) -> None:
    setting = scaling.Setting.parse("m.x:Live server_lr=0.5 lr=0.04 steps=5")
    assert setting.local_steps == 5 and setting.learning_rate == 0.04
    assert setting.params == {"server_lr": "0.5"}
    assert setting.label() == "m.x:Live server_lr=0.5 lr=0.04 steps=5"
    spec = scaling._spec_with(str(scaling.ROOT / "bench" / "specs" / "text_mlp.json"), setting)
    assert spec.training.local_steps == 5 and spec.learning_rate == 0.04


def test_caps_per_count_and_heterogeneous(scaling) -> None:
    workload = scaling.Workload("w", "spec", "data", 0.5, 20.0, caps={"1": 90.0, "16het": 35.0})
    assert workload.cap(1, False) == 90.0
    assert workload.cap(16, True) == 35.0
    assert workload.cap(16, False) == 20.0
    assert workload.cap(1, True) == 90.0  # no "1het": the count's cap


def test_efficiencies_are_counted_in_optimiser_steps(scaling) -> None:
    # 1 client: 10-step tasks at 0.5 updates/s (5 steps/s), 20 updates (200 steps) in 40 s;
    # 4 clients: 5-step tasks at 3 updates/s (15 steps/s), 60 updates (300 steps) in 20 s
    runs = [run(1, s, 40.0, 20, 0.5, 10) for s in (1, 2, 3)]
    runs += [run(4, s, 20.0, 60, 3.0, 5) for s in (1, 2, 3)]
    rows = {r["clients"]: r for r in scaling.summarise(runs)}
    four = rows[4]
    assert four["hardware_speedup"] == pytest.approx(3.0)  # 15 / 5 steps/s
    assert four["statistical_cost"] == pytest.approx(1.5)  # 300 / 200 steps
    assert four["speedup"] == pytest.approx(2.0)  # = 3.0 / 1.5
