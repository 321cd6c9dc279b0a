"""Per-strategy summary of a comparison, computed from the runs' time series.

For each strategy label, over its runs that finished with at least one validation:
- final accuracy = `val_accuracy` of the last row; reported as mean, sample standard deviation
  (ddof = 1; 0 for a single run), min and max over seeds;
- time / merges to target = `time` / `merges` of the first row with `val_accuracy >= target`;
  means over the runs that reached it, and how many did;
- updates merged / rejected = `updates_accepted` / `updates_rejected` of the last row,
  mean over runs;
- mean staleness = `mean_staleness` of the last row (the server's mean over the run),
  mean over runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from webnn.compare.results import Run, SeriesRow


@dataclass(frozen=True)
class StrategySummary:
    label: str
    strategy: str
    runs: int  # runs with data
    failed: int  # runs that failed or have no validation
    final_accuracy_mean: float
    final_accuracy_std: float
    final_accuracy_min: float
    final_accuracy_max: float
    final_loss_mean: float
    target_accuracy: float | None
    reached_target: int
    time_to_target_mean: float
    merges_to_target_mean: float
    merges_mean: float
    updates_merged_mean: float
    updates_rejected_mean: float
    mean_staleness: float


def first_reaching(rows: Sequence[SeriesRow], target: float) -> SeriesRow | None:
    """The first row whose validation accuracy is at least `target`."""
    return next((r for r in rows if r.val_accuracy >= target), None)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(runs: Sequence[Run], target: float | None,
              order: Sequence[str] = ()) -> list[StrategySummary]:
    """One `StrategySummary` per label, in `order` first, then in order of appearance."""
    labels = [*order, *(r.record.label for r in runs)]
    labels = list(dict.fromkeys(label for label in labels if any(r.record.label == label
                                                                 for r in runs)))
    summaries = []
    for label in labels:
        mine = [r for r in runs if r.record.label == label]
        good = [r for r in mine if r.record.status == "ok" and r.rows]
        finals = [r.rows[-1] for r in good]
        acc = np.array([f.val_accuracy for f in finals], dtype=float)
        reached = [first_reaching(r.rows, target) for r in good] if target is not None else []
        hits = [h for h in reached if h is not None]
        summaries.append(StrategySummary(
            label=label,
            strategy=mine[0].record.strategy,
            runs=len(good),
            failed=len(mine) - len(good),
            final_accuracy_mean=float(acc.mean()) if acc.size else math.nan,
            final_accuracy_std=float(acc.std(ddof=1)) if acc.size > 1 else (
                0.0 if acc.size else math.nan),
            final_accuracy_min=float(acc.min()) if acc.size else math.nan,
            final_accuracy_max=float(acc.max()) if acc.size else math.nan,
            final_loss_mean=_mean([f.val_loss for f in finals]),
            target_accuracy=target,
            reached_target=len(hits),
            time_to_target_mean=_mean([h.time for h in hits]),
            merges_to_target_mean=_mean([float(h.merges) for h in hits]),
            merges_mean=_mean([float(f.merges) for f in finals]),
            updates_merged_mean=_mean([float(f.updates_accepted) for f in finals]),
            updates_rejected_mean=_mean([float(f.updates_rejected) for f in finals]),
            mean_staleness=_mean([f.mean_staleness for f in finals]),
        ))
    return summaries


def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table_rows(summaries: Sequence[StrategySummary]) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by the terminal, Markdown and HTML tables."""
    target = next((s.target_accuracy for s in summaries if s.target_accuracy is not None), None)
    header = ["strategy", "runs", "final acc (mean ± sd)", "min – max"]
    if target is not None:
        header += [f"reached {target:g}", "time to target (s)", "merges to target"]
    header += ["merges", "updates merged", "rejected", "mean staleness"]
    rows = []
    for s in summaries:
        runs = f"{s.runs}" + (f" (+{s.failed} failed)" if s.failed else "")
        row = [s.label, runs,
               f"{_num(s.final_accuracy_mean)} ± {_num(s.final_accuracy_std)}",
               f"{_num(s.final_accuracy_min)} – {_num(s.final_accuracy_max)}"]
        if target is not None:
            row += [f"{s.reached_target}/{s.runs}", _num(s.time_to_target_mean, 1),
                    _num(s.merges_to_target_mean, 1)]
        row += [_num(s.merges_mean, 1), _num(s.updates_merged_mean, 1),
                _num(s.updates_rejected_mean, 1), _num(s.mean_staleness, 2)]
        rows.append(row)
    return header, rows


def format_table(summaries: Sequence[StrategySummary]) -> str:
    """A plain-text table for the terminal."""
    header, rows = table_rows(summaries)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def to_markdown(summaries: Sequence[StrategySummary], title: str = "") -> str:
    header, rows = table_rows(summaries)
    lines = [f"# {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_json(summaries: Sequence[StrategySummary]) -> str:
    """JSON with NaN written as null."""
    def clean(d: dict) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
    return json.dumps({"strategies": [clean(asdict(s)) for s in summaries]}, indent=2) + "\n"
