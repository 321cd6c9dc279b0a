"""Calibrate bench/scaling_sim.py against the device runs of session 5 (device_s5/*.json).

Every device setting (strategy, client learning rate, local steps, clients, 3 seeds, the run's
time cap) is simulated on the device's time scale: a task takes ``clients / updates per second``
seconds (the setting's median measured rate) and one validation takes the median gap between two
validations of the multi-client runs (the evaluator is always busy there), its accuracy seen when
it ends, as the benchmark's history records it. Both simulator models run: ``onehot`` (an MLP on
the one-hot windows, the model of every earlier simulator figure) and ``embed`` (the benchmark's
own bench/specs/text_mlp.json: an 8-wide embedding per character, 256 ReLU, softmax). For each,
the median over the seeds (and the range) of the first time the validation accuracy reaches 0.30,
0.32 and 0.325, and the final accuracy at the cap, beside the device's.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python bench/scaling_results/sim_calibrate.py \\
        [--models embed onehot] [--only 1 8a] > OUT.txt
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LEVELS = (0.30, 0.32, 0.325)
LIVE = "webnn.merge.fedbuff_live:FedBuffLive"


@dataclass(frozen=True)
class DeviceSetting:
    """One device setting: its key, JSON file, the simulator's config string, clients, cap (s)."""

    key: str
    file: str
    config: str
    clients: int
    cap: float


SETTINGS = (
    DeviceSetting("1", "text_1client_average.json", "average|adam lr=0.01", 1, 270.0),
    DeviceSetting("8f", "text_8_fedbuff_live.json", f"{LIVE} server_lr=0.5|adam lr=0.028 steps=5",
                  8, 75.0),
    DeviceSetting("8a", "text_8_average_2step.json", "average|adam lr=0.02 steps=2", 8, 75.0),
    DeviceSetting("16a", "text_16_average_2step.json", "average|adam lr=0.02 steps=2", 16, 60.0),
)


def load_sim() -> Any:
    spec = importlib.util.spec_from_file_location("scaling_sim", ROOT / "bench" / "scaling_sim.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaling_sim"] = module
    spec.loader.exec_module(module)
    return module


def first_time(history: list[tuple[float, float]], level: float) -> float:
    """The time of the first validation at or above `level` (inf: never)."""
    return next((t for t, acc in history if acc >= level), math.inf)


def summary(histories: list[list[tuple[float, float]]]) -> dict[str, Any]:
    """Median and range over the seeds of the time to each of `LEVELS`, and of the last
    validation's accuracy."""
    out: dict[str, Any] = {}
    for level in LEVELS:
        times = [first_time(h, level) for h in histories]
        out[f"t{level:g}"] = (float(np.median(times)), min(times), max(times))
    finals = [h[-1][1] for h in histories]
    out["final"] = (float(np.median(finals)), min(finals), max(finals))
    return out


def device_runs(setting: DeviceSetting) -> list[dict[str, Any]]:
    return json.loads((HERE / "device_s5" / setting.file).read_text())["runs"]


def eval_seconds() -> float:
    """The median gap between two validations in the multi-client device runs."""
    gaps: list[float] = []
    for setting in SETTINGS[1:]:
        for run in device_runs(setting):
            times = [h["t"] for h in run["history"]]
            gaps += list(np.diff(times))
    return float(np.median(gaps))


def _fmt(cell: tuple[float, float, float], digits: int = 1) -> str:
    med, low, high = cell
    if math.isinf(med):
        return "not reached"
    high_text = "n.r." if math.isinf(high) else f"{high:.{digits}f}"
    return f"{med:.{digits}f} ({low:.{digits}f}-{high_text})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["embed", "onehot"],
                        choices=("embed", "onehot"))
    parser.add_argument("--only", nargs="*", help="setting keys (1, 8f, 8a, 16a)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    sim = load_sim()
    data = sim.load_text_data()
    evals = eval_seconds()
    print(f"# corpus sha256 {data.corpus_sha256}; one validation = {evals:.2f} s (median gap "
          f"between validations of the multi-client device runs)")
    models = {"embed": sim.EmbedMlp(hidden=(256,)), "onehot": sim.Mlp((data.inputs, 256, 97))}
    print("| setting | clients | task s | source | " + " | ".join(f"t({x:g}) s" for x in LEVELS)
          + " | final at cap | updates/s |")
    print("|---|---|---|---|" + "---|" * (len(LEVELS) + 2))
    for setting in SETTINGS:
        if args.only and setting.key not in args.only:
            continue
        runs = device_runs(setting)
        rate = float(np.median([r["updates_per_second"] for r in runs]))
        task = setting.clients / rate
        rows = {"device": summary([[(h["t"], h["acc"]) for h in r["history"]] for r in runs])}
        rates = {"device": rate}
        for name in args.models:
            timing = sim.Timing(task_seconds=task, eval_seconds=evals, until=setting.cap)
            cfg = sim.Config.parse(setting.config)
            results = [sim.simulate(cfg, setting.clients, seed, data, models[name], 2.0, 10**7,
                                    timing=timing) for seed in args.seeds]
            rows[f"sim {name}"] = summary([[(t, acc) for t, _, acc in r["history"]]
                                           for r in results])
            rates[f"sim {name}"] = float(np.median([r["total_updates"] / r["elapsed"]
                                                    for r in results]))
        for source, row in rows.items():
            cells = " | ".join(_fmt(row[f"t{x:g}"]) for x in LEVELS)
            print(f"| {setting.config} | {setting.clients} | {task:.3f} | {source} | {cells} "
                  f"| {_fmt(row['final'], 3)} | {rates[source]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
