"""What a client-count sweep shows: per strategy and client count, the two efficiencies whose
product is the time to target.

- hardware efficiency: merges per second (a run's last validation's merges over its time),
  median over seeds;
- statistical efficiency: merges to reach the target, the Kaplan-Meier median over seeds (a run
  that never reached it is censored at its end, see `webnn.compare.stats`);
- time to target: Kaplan-Meier median over seeds;
- speedup at n clients = time to target at the smallest swept count / time to target at n
  (``None`` where either is not reached); linear scaling gives n / n_min.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from webnn.compare.results import Run
from webnn.compare.summary import first_reaching, km_median_to_target


@dataclass(frozen=True)
class SweepRow:
    strategy: str  # the entry's label without ``@clients``
    clients: int
    runs: int
    reached: int
    merges_per_second: float
    merges_to_target: float | None
    time_to_target: float | None
    speedup: float | None


def base_label(label: str) -> str:
    return label.rsplit("@", 1)[0]


def sweep_rows(runs: Sequence[Run], target: float, order: Sequence[str] = ()) -> list[SweepRow]:
    """One row per (strategy, client count) over the finished runs, strategies in `order`."""
    finished = [r for r in runs if r.record.status == "ok" and r.rows and r.record.clients]
    labels = list(dict.fromkeys([*order, *(base_label(r.record.label) for r in finished)]))
    rows = []
    for label in labels:
        mine = [r for r in finished if base_label(r.record.label) == label]
        counts = sorted({r.record.clients for r in mine})
        times: dict[int, float | None] = {}
        for clients in counts:
            group = [r for r in mine if r.record.clients == clients]
            rates = [r.rows[-1].merges / r.rows[-1].time for r in group if r.rows[-1].time > 0]
            time = times[clients] = km_median_to_target(group, target, "time")
            first = times[counts[0]]
            rows.append(SweepRow(
                strategy=label, clients=clients, runs=len(group),
                reached=sum(first_reaching(r.rows, target) is not None for r in group),
                merges_per_second=float(np.median(rates)) if rates else math.nan,
                merges_to_target=km_median_to_target(group, target, "merges"),
                time_to_target=time,
                speedup=(first / time if first is not None and time is not None and time > 0
                         else None)))
    return rows


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "not reached"
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def to_markdown(rows: Sequence[SweepRow], target: float) -> str:
    lines = [f"## Scaling with clients (target accuracy {target:g})", "",
             "| strategy | clients | runs | reached | merges/s | merges to target (KM median) "
             "| time to target, s (KM median) | speedup | linear |",
             "|---|---|---|---|---|---|---|---|---|"]
    smallest = {r.strategy: min(x.clients for x in rows if x.strategy == r.strategy)
                for r in rows}
    for r in rows:
        lines.append(
            f"| {r.strategy} | {r.clients} | {r.runs} | {r.reached}/{r.runs} | "
            f"{_cell(r.merges_per_second, 1)} | {_cell(r.merges_to_target, 0)} | "
            f"{_cell(r.time_to_target, 1)} | "
            f"{'-' if r.speedup is None else f'{r.speedup:.2f}x'} | "
            f"{r.clients / smallest[r.strategy]:g}x |")
    return "\n".join(lines) + "\n"


def speedup_figure(rows: Sequence[SweepRow], fmt: str = "png", title: str = "") -> bytes:
    """Time-to-target speedup against clients per strategy, with the linear ideal, beside merges
    to target against clients (statistical efficiency: flat is ideal)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=110)
    speed, merges = fig.subplots(1, 2)
    colors = matplotlib.colormaps["tab10"]
    labels = list(dict.fromkeys(r.strategy for r in rows))
    top = 1
    for i, label in enumerate(labels):
        mine = [r for r in rows if r.strategy == label]
        xs = [r.clients for r in mine]
        top = max(top, *xs)
        speed.plot(xs, [np.nan if r.speedup is None else r.speedup for r in mine], "o-",
                   color=colors(i % 10), label=label)
        merges.plot(xs, [np.nan if r.merges_to_target is None else r.merges_to_target
                         for r in mine], "o-", color=colors(i % 10), label=label)
    low = min((r.clients for r in rows), default=1)
    speed.plot([low, top], [1, top / low], "--", color="0.5", label="linear")
    for ax, ylabel in ((speed, "speedup in time to target"),
                       (merges, "merges to target (KM median)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training clients")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()
