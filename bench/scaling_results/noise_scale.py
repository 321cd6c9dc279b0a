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
Printed per probe: tasks, seconds, validation accuracy, training loss, B_simple,
and the best step speedup (synchronous large batch, no staleness) it allows for 8 and 16 clients
of batch 32 over one.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python bench/scaling_results/noise_scale.py \\
        --seed 1 --tasks 5 20 50 100 150 200 300
"""

from __future__ import annotations

import argparse
import sys
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
    args = parser.parse_args(argv)
    sim = load_sim()
    data = sim.load_text_data()
    model = sim.EmbedMlp(hidden=tuple(args.hidden))
    pick = np.random.default_rng(12345)
    probes = sorted(args.tasks)
    rows: list[str] = []

    def probe(time: float, updates: int, weights: np.ndarray) -> None:
        if updates not in probes:
            return
        flat = weights.copy()
        index = pick.choice(len(data.y), args.examples, replace=False)
        b, trace, g2 = noise_scale(model, flat, data, index)
        acc = model.accuracy(flat, data.xv, data.yv)
        train = loss(model, flat, data.examples(index[:4096]), data.y[index[:4096]])
        rows.append(f"| {updates} | {time:.0f} | {acc:.3f} | {train:.3f} | {trace:.3g} "
                    f"| {g2:.3g} | **{b:.0f}** | {speedup(b, 32, 8):.1f} "
                    f"| {speedup(b, 32, 16):.1f} |")
        print(rows[-1], flush=True)

    print(f"# seed {args.seed}, {args.config}, hidden {args.hidden}, {args.examples} windows "
          f"per probe")
    print(f"| tasks | s (x {args.task_seconds:g}) | val acc | train loss | tr(Sigma) | abs(G)^2 "
          "| B_simple | ideal step speedup 8 x 32 | 16 x 32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    cfg = sim.Config.parse(args.config)
    sim.simulate(cfg, 1, args.seed, data, model, 2.0, max(probes),
                 timing=sim.Timing(task_seconds=args.task_seconds, until=max(probes) * 10.0),
                 on_merge=probe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
