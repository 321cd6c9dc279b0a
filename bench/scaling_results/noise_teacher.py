"""The gradient noise scale of the teacher workload along a one-client run (McCandlish et al.
2018), measured as `noise_scale.py` measures the text workload's (same estimator, same table).

The model is the simulator's numpy copy of bench/specs/teacher_mlp.json (`scaling_sim.Mlp`,
64-256-256-10) on `data_modules/teacher.py` (default options: 30 % of the training labels
flipped); the run is one client (``--config``, default `average`, Adam 0.002, 10-step tasks of
64). At each probe (after the numbers of tasks in ``--tasks`` and at the first merge whose clean
validation accuracy reaches each ``--at-accuracy`` level) `--examples` random training examples
give per-example squared gradient norms |g_i|^2 (exact, `Mlp.example_sq_norms`) and their mean
gradient G_hat:

    tr(Sigma) = n / (n - 1) (mean |g_i|^2 - |G_hat|^2);   |G|^2 = |G_hat|^2 - tr(Sigma) / n

    B_simple = tr(Sigma) / |G|^2

Printed per probe: tasks, seconds (``--task-seconds`` a task), validation accuracy, training loss
(on the noisy labels), tr(Sigma), |G|^2, B_simple and McCandlish's best step speedup of 8 and 16
clients of the config's batch over one, ``(1 + B/b) / (1 + B/(n b))``. ``noise_scale.py --summary
FILE --bins ...`` bins these tables by accuracy.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python bench/scaling_results/noise_teacher.py \\
        --seed 1 --tasks 50 100 200 400 --at-accuracy 0.6 0.7 0.8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from noise_scale import noise_scale, speedup  # this folder's helpers (on the path)
from sim_calibrate import load_sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--examples", type=int, default=32768)
    parser.add_argument("--config", default="average|adam lr=0.002 batch=64 steps=10")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of data_modules/teacher.py's load()")
    parser.add_argument("--task-seconds", type=float, default=1.0,
                        help="one task's device seconds (the clock of the printed times)")
    parser.add_argument("--at-accuracy", type=float, nargs="*", default=[])
    parser.add_argument("--save-dir", help="save every probe's weights here (.npy)")
    args = parser.parse_args(argv)
    sim = load_sim()
    data = sim.load_teacher_data(**sim.parse_options(args.data_option))
    model = sim.Mlp((data.inputs, *args.hidden, int(data.y.max()) + 1))
    save = Path(args.save_dir) if args.save_dir else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    pick = np.random.default_rng(12345)
    probes = sorted(args.tasks)
    levels = sorted(args.at_accuracy)
    cfg = sim.Config.parse(args.config)

    def probe(time: float, updates: int, weights: np.ndarray) -> None:
        at_level = False
        if levels:
            acc = model.accuracy(weights, data.xv, data.yv)
            while levels and acc >= levels[0]:
                levels.pop(0)
                at_level = True
        if updates not in probes and not at_level:
            return
        flat = weights.copy()
        if save is not None:
            np.save(save / f"seed{args.seed}_tasks{updates}.npy", flat.astype(np.float32))
        index = pick.choice(len(data.y), args.examples, replace=False)
        b, trace, g2 = noise_scale(model, flat, data, index)
        acc = model.accuracy(flat, data.xv, data.yv)
        train = model.loss(flat, data.examples(index[:4096]), data.y[index[:4096]])
        print(f"| {updates} | {time:.0f} | {acc:.3f} | {train:.3f} | {trace:.3g} | {g2:.3g} "
              f"| **{b:.0f}** | {speedup(b, cfg.batch, 8):.1f} | {speedup(b, cfg.batch, 16):.1f} |",
              flush=True)

    options: Any = " ".join(args.data_option) or "defaults"
    print(f"# seed {args.seed}, {args.config}, hidden {args.hidden}, teacher options {options}, "
          f"{args.examples} examples per probe")
    print(f"| tasks | s (x {args.task_seconds:g}) | val acc | train loss | tr(Sigma) | abs(G)^2 "
          f"| B_simple | ideal step speedup 8 x {cfg.batch} | 16 x {cfg.batch} |")
    print("|---|---|---|---|---|---|---|---|---|")
    sim.simulate(cfg, 1, args.seed, data, model, 2.0, max(probes),
                 timing=sim.Timing(task_seconds=args.task_seconds, until=max(probes) * 10.0),
                 on_merge=probe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
