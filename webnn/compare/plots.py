"""Validation accuracy against time and against merges: one line per strategy, seeds shaded.

Each run's series is a step function (accuracy holds from one validation to the next and after the
run's last one). On the union of the strategy's x values the line is the mean over seeds and the
shaded band spans the min and max over seeds (NaN before a seed's first validation is ignored).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from webnn.compare.results import Run


def step_values(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """y of the last point with x <= grid value (NaN before the first); xs sorted ascending."""
    idx = np.searchsorted(xs, grid, side="right") - 1
    out = np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)
    return out.astype(float)


def band(series: Sequence[tuple[np.ndarray, np.ndarray]],
         until: float | None = None) -> tuple[np.ndarray, ...]:
    """(grid, mean, low, high) of several step series over the union of their x values.

    `until` extends the grid (each series holding its last value) so lines end at a common x.
    """
    extra = [np.array([until])] if until is not None else []
    grid = np.unique(np.concatenate([xs for xs, _ in series] + extra))
    stacked = np.vstack([step_values(xs, ys, grid) for xs, ys in series])
    with warnings.catch_warnings():  # all-NaN columns (before any seed's first point) stay NaN
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(stacked, axis=0)
        low = np.nanmin(stacked, axis=0)
        high = np.nanmax(stacked, axis=0)
    return grid, mean, low, high


def accuracy_figure(runs: Sequence[Run], x: str, order: Sequence[str] = (),
                    target: float | None = None, title: str = "", fmt: str = "png") -> bytes:
    """Validation accuracy against `x` ("time" or "merges") as `fmt` ("png" or "svg") bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.add_subplot()
    labels = list(dict.fromkeys([*order, *(r.record.label for r in runs)]))
    colors = matplotlib.colormaps["tab10"]
    drawn = 0
    ends = [getattr(r.rows[-1], x) for r in runs if r.record.status == "ok" and r.rows]
    until = float(max(ends)) if ends else None
    for label in labels:
        series = []
        for run in runs:
            if run.record.label != label or run.record.status != "ok" or not run.rows:
                continue
            xs = np.array([getattr(row, x) for row in run.rows], dtype=float)
            ys = np.array([row.val_accuracy for row in run.rows], dtype=float)
            keep = np.argsort(xs, kind="stable")
            series.append((xs[keep], ys[keep]))
        if not series:
            continue
        grid, mean, low, high = band(series, until)
        color = colors(drawn % 10)
        name = f"{label} ({len(series)} seed{'s' if len(series) > 1 else ''})"
        ax.plot(grid, mean, drawstyle="steps-post", color=color, label=name, linewidth=1.8)
        if len(series) > 1:
            ax.fill_between(grid, low, high, step="post", color=color, alpha=0.2, linewidth=0)
        drawn += 1
    if target is not None:
        ax.axhline(target, color="0.4", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel("seconds since the run started" if x == "time" else "merges (updates merged)")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if drawn or target is not None:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    # a fixed SVG hash salt and no date keep re-rendered SVGs identical
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def write_plots(out_dir: Path, runs: Sequence[Run], order: Sequence[str] = (),
                target: float | None = None, title: str = "") -> dict[str, bytes]:
    """Write ``accuracy_vs_{time,merges}.{png,svg}``; returns bytes by name."""
    import matplotlib

    images = {}
    with matplotlib.rc_context({"svg.hashsalt": "webnn"}):
        for x in ("time", "merges"):
            for fmt in ("png", "svg"):
                name = f"accuracy_vs_{x}.{fmt}"
                images[name] = accuracy_figure(runs, x, order, target, title, fmt)
                (Path(out_dir) / name).write_bytes(images[name])
    return images
