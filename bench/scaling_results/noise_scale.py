"""The gradient noise scale of the text workload along a one-client run (McCandlish et al. 2018).

B_simple = tr(Sigma) / |G|^2, with G the full-batch training-loss gradient and Sigma the
covariance of one example's gradient, predicts the critical batch: steps to a loss grow as
S = S_min (1 + B_noise / B) and examples as E = E_min (1 + B / B_noise), so a batch n times
larger needs (1 + B_noise / B) / (1 + B_noise / (n B)) times fewer steps, at best.

The model is the simulator's copy of the benchmark's (bench/scaling_sim.py `EmbedMlp`, the
calibrated one); the run is the one-client baseline (`average`, Adam 0.01, 10-step tasks of 32,
1.58 s a task as measured on the device). At each probe (after the given numbers of tasks) the
estimate takes `--examples` random training windows: per-example squared gradient norms
|g_i|^2 (exact, `EmbedMlp.example_sq_norms`) and their mean gradient G_hat:

    tr(Sigma) = n / (n - 1) (mean |g_i|^2 - |G_hat|^2);   |G|^2 = |G_hat|^2 - tr(Sigma) / n

(both unbiased); ``--hidden 1024`` for a wider model, ``--task-seconds`` its device task time.
Probes are taken after the numbers of tasks in ``--tasks`` and, with ``--at-accuracy``, at the
first merge whose validation accuracy reaches each level; ``--save-dir`` saves the weights of
every probe (``seed{S}_tasks{N}.npy``, flat float32, for ``bench/scaling_sim.py --init-weights``)
and ``--init-weights`` starts the run from such a file (fresh optimiser; tasks count from there).
Printed per probe: tasks, seconds, validation accuracy, training loss, B_simple,
and the best step speedup (synchronous large batch, no staleness) it allows for 8 and 16 clients
of batch 32 over one.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python bench/scaling_results/noise_scale.py \\
        --seed 1 --tasks 5 20 50 100 150 200 300
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sim_calibrate import load_sim  # this folder's helper (the script's folder is on the path)

TASK_SECONDS = 1.58


def noise_scale(model: Any, flat: np.ndarray, data: Any, index: np.ndarray,
                chunk: int = 4096) -> tuple[float, float, float]:
    """(B_simple, tr(Sigma), |G|^2) over the training windows at `index`."""
    n = len(index)
    total = np.zeros(flat.size)
    sq = 0.0
    for begin in range(0, n, chunk):
        part = index[begin:begin + chunk]
        x, y = data.examples(part), data.y[part]
        total += model.grad(flat, x, y).astype(np.float64) * len(part)
        sq += float(model.example_sq_norms(flat, x, y).sum())
    mean = total / n
    g2 = float(mean @ mean)
    trace = n / (n - 1) * (sq / n - g2)
    true_g2 = g2 - trace / n
    return trace / true_g2, trace, true_g2


def loss(model: Any, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of `model` on the examples."""
    _, h = model._inputs(flat, x)
    params = model.dense.unflat(model._split(flat)[1])
    for i in range(len(params) // 2):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < len(params) // 2 - 1:
            h = np.maximum(h, 0)
    h = h - h.max(axis=1, keepdims=True)
    logp = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def speedup(b_noise: float, batch: int, n: int) -> float:
    """Steps of batch `batch` over steps of batch n x `batch` to the same loss."""
    return (1 + b_noise / batch) / (1 + b_noise / (n * batch))


ROW = re.compile(r"\| (\d+) \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.e+-]+) \| ([\d.e+-]+) "
                 r"\| \*\*(\d+)\*\*")


def summary(lines: list[str], edges: list[float]) -> list[str]:
    """Probes printed by this script (any number of runs), binned by validation accuracy
    (``edges[i] <= acc < edges[i + 1]``): per bin the probes, mean training loss, mean tr(Sigma),
    mean |G|^2, B = mean tr(Sigma) / mean |G|^2 (the ratio of averages, McCandlish et al.'s
    recommendation for noisy estimates) and the median and range of the probes' B_simple."""
    probes = [(float(m[2]), float(m[3]), float(m[4]), float(m[5]), int(m[6]))
              for m in (ROW.match(line) for line in lines) if m]
    out = ["| val acc | probes | train loss | tr(Sigma) | abs(G)^2 | B (ratio of means) "
           "| B_simple median (range) |", "|---|---|---|---|---|---|---|"]
    for lo, hi in zip(edges, edges[1:], strict=False):
        sel = [p for p in probes if lo <= p[0] < hi]
        if not sel:
            continue
        tr, g2 = np.mean([p[2] for p in sel]), np.mean([p[3] for p in sel])
        b = sorted(p[4] for p in sel)
        out.append(f"| {lo:.3f}-{hi:.3f} | {len(sel)} | {np.mean([p[1] for p in sel]):.3f} "
                   f"| {tr:.1f} | {g2:.4f} | **{tr / g2:.0f}** | {b[len(b) // 2]} "
                   f"({b[0]}-{b[-1]}) |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tasks", type=int, nargs="+", default=[5, 20, 50, 100, 150, 200, 300])
    parser.add_argument("--examples", type=int, default=32768)
    parser.add_argument("--config", default="average|adam lr=0.01")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256],
                        help="hidden widths of the model (256: bench/specs/text_mlp.json)")
    parser.add_argument("--task-seconds", type=float, default=TASK_SECONDS,
                        help="one task's device seconds (the clock of the printed times)")
    parser.add_argument("--at-accuracy", type=float, nargs="*", default=[],
                        help="also probe at the first merge whose validation accuracy reaches "
                             "each of these levels (the run goes on to the largest --tasks)")
    parser.add_argument("--save-dir", help="save every probe's weights here (.npy)")
    parser.add_argument("--init-weights", metavar="FILE",
                        help="start from these weights (a --save-dir file) instead of the seed's "
                             "initialisation")
    parser.add_argument("--summary", metavar="FILE", nargs="+",
                        help="instead of a run: bin the probes printed in these files by "
                             "validation accuracy (--bins edges)")
    parser.add_argument("--bins", type=float, nargs="+",
                        default=[0.29, 0.315, 0.345, 0.37, 0.385, 0.40, 0.43])
    args = parser.parse_args(argv)
    if args.summary:
        lines = [line for name in args.summary for line in Path(name).read_text().splitlines()]
        print("\n".join(summary(lines, args.bins)))
        return 0
    sim = load_sim()
    data = sim.load_text_data()
    model = sim.EmbedMlp(hidden=tuple(args.hidden))
    size = sum(int(np.prod(s)) for s in model.shapes)
    init = sim.load_weights(args.init_weights, size) if args.init_weights else None
    save = Path(args.save_dir) if args.save_dir else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    pick = np.random.default_rng(12345)
    probes = sorted(args.tasks)
    levels = sorted(args.at_accuracy)
    rows: list[str] = []

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
        train = loss(model, flat, data.examples(index[:4096]), data.y[index[:4096]])
        rows.append(f"| {updates} | {time:.0f} | {acc:.3f} | {train:.3f} | {trace:.3g} "
                    f"| {g2:.3g} | **{b:.0f}** | {speedup(b, cfg.batch, 8):.1f} "
                    f"| {speedup(b, cfg.batch, 16):.1f} |")
        print(rows[-1], flush=True)

    cfg = sim.Config.parse(args.config)
    print(f"# seed {args.seed}, {args.config}, hidden {args.hidden}, {args.examples} windows "
          f"per probe" + (f", from {args.init_weights}" if args.init_weights else ""))
    print(f"| tasks | s (x {args.task_seconds:g}) | val acc | train loss | tr(Sigma) | abs(G)^2 "
          f"| B_simple | ideal step speedup 8 x {cfg.batch} | 16 x {cfg.batch} |")
    print("|---|---|---|---|---|---|---|---|---|")
    sim.simulate(cfg, 1, args.seed, data, model, 2.0, max(probes),
                 timing=sim.Timing(task_seconds=args.task_seconds, until=max(probes) * 10.0),
                 on_merge=probe, init_weights=init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
