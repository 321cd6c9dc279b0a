"""Per-strategy summary of a comparison, computed from the runs' time series.

For each strategy label, over its runs that finished with at least one validation:
- final accuracy = `val_accuracy` of the last row; reported as mean, sample standard deviation
  (ddof = 1; 0 for a single run), min and max over seeds;
- time / merges to target = `time` / `merges` of the first row with `val_accuracy >= target`;
  means over the runs that reached it, and how many did;
- updates merged / rejected = `updates_accepted` / `updates_rejected` of the last row,
  mean over runs;
- mean staleness = `mean_staleness` of the last row (the server's mean over the run),
  mean over runs;
- final accuracy's 95 % percentile-bootstrap interval of the mean over seeds;
- time / merges to target as Kaplan-Meier medians: a run that never reached the target counts as
  censored at its end instead of being dropped (None: over half the runs never got there);
- AUC = mean validation accuracy over merges ``[0, H]``, with H the fewest merges any finished run
  of the comparison reached (one horizon for all, see `webnn.compare.stats`), not counting runs
  that ended on the timeout (a diverged model: their last accuracy holds to H);
- final worst-class accuracy = `worst_class_accuracy` of the last row (the lowest per-class
  accuracy of that evaluation); mean and sample standard deviation over the runs that have it
  (NaN when none has: the clients sent no per-class counts);
- against the reference strategy (the first in the config): paired differences by seed of final
  accuracy, AUC and final worst-class accuracy, each with its bootstrap interval;
- the validation size n (examples in the runs' last evaluation) and what it resolves: the
  binomial standard error ``sqrt(p (1 - p) / n)`` of one accuracy figure at p = the mean final
  accuracy over all finished runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from webnn.compare.results import Run, SeriesRow
from webnn.compare.stats import (
    Interval,
    area_under_curve,
    bootstrap_interval,
    kaplan_meier_median,
    paired_difference,
)


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
    final_accuracy_ci: tuple[float, float] = (math.nan, math.nan)
    time_to_target_median: float | None = None  # Kaplan-Meier, censored runs counted
    merges_to_target_median: float | None = None
    auc: float = math.nan  # mean accuracy over merges [0, auc_horizon]
    auc_horizon: float = math.nan
    reference: str | None = None  # the label the differences below are against
    final_accuracy_diff: Interval | None = None
    auc_diff: Interval | None = None
    update_bytes_mean: float = math.nan  # body bytes per accepted update (server's traffic)
    update_encodings: str = ""  # the update encodings the runs' servers received
    worst_class_mean: float = math.nan  # final worst-class accuracy, mean over runs having it
    worst_class_std: float = math.nan  # its sample standard deviation (0 for one run)
    worst_class_runs: int = 0  # runs whose last evaluation had per-class figures
    worst_class_diff: Interval | None = None


@dataclass(frozen=True)
class ValidationSize:
    """The examples one validation covered and the standard error of one accuracy figure at
    `accuracy`: ``sqrt(p (1 - p) / n)`` (binomial; the validation set is a sample too)."""

    examples: int
    accuracy: float

    @property
    def standard_error(self) -> float:
        p = min(max(self.accuracy, 0.0), 1.0)
        return math.sqrt(p * (1.0 - p) / self.examples)

    def note(self) -> str:
        return (f"Validation: {self.examples} examples per evaluation; standard error of one "
                f"accuracy figure at {self.accuracy:.3f}: {self.standard_error:.3f} (a larger "
                "split: data_options.validation_fraction).")


def validation_size(runs: Sequence[Run]) -> ValidationSize | None:
    """`ValidationSize` from the finished runs' final status (``lastEvaluation.examples``, the
    most common value), at their mean final accuracy; None when no run reports it."""
    counts: dict[int, int] = {}
    finals = []
    for run in runs:
        if run.record.status != "ok" or not run.rows:
            continue
        finals.append(run.rows[-1].val_accuracy)
        examples = (run.record.final_status.get("lastEvaluation") or {}).get("examples")
        if isinstance(examples, int) and not isinstance(examples, bool) and examples > 0:
            counts[examples] = counts.get(examples, 0) + 1
    accuracy = _mean(finals)
    if not counts or math.isnan(accuracy):
        return None
    return ValidationSize(max(counts, key=lambda n: (counts[n], n)), accuracy)


def auc_horizon(finished: Sequence[Run]) -> float:
    """H: the fewest merges any finished run reached, leaving out runs that ended on the
    runner's timeout (a diverged model whose clients were cut off: no merges come any more, and
    its last accuracy holds to H) unless every run did."""
    stopped = [r for r in finished if r.record.stopped_by != "timeout"] or list(finished)
    return float(min((r.rows[-1].merges for r in stopped), default=0))


def first_reaching(rows: Sequence[SeriesRow], target: float) -> SeriesRow | None:
    """The first row whose validation accuracy is at least `target`."""
    return next((r for r in rows if r.val_accuracy >= target), None)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof = 1; 0 for one value) and count of the finite
    values (NaN, NaN, 0 when there are none)."""
    finite = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if not finite.size:
        return math.nan, math.nan, 0
    sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return float(finite.mean()), sd, int(finite.size)


def _auc(run: Run, horizon: float) -> float:
    return area_under_curve([r.merges for r in run.rows], [r.val_accuracy for r in run.rows],
                            horizon)


def km_median_to_target(runs: Sequence[Run], target: float, field: str) -> float | None:
    """Kaplan-Meier median of `field` ("time" or "merges") at the first validation reaching
    `target`; a run that never reached it is censored at its last validation."""
    times, reached = [], []
    for run in runs:
        hit = first_reaching(run.rows, target)
        times.append(float(getattr(hit if hit is not None else run.rows[-1], field)))
        reached.append(hit is not None)
    return kaplan_meier_median(times, reached) if runs else None


def update_bytes(run: Run) -> tuple[float, list[str]]:
    """Mean body bytes per accepted update of a run and its encodings, from the final status's
    ``traffic.updates`` (NaN when the server did not report it)."""
    table = run.record.final_status.get("traffic", {}).get("updates", {}) or {}
    count = sum(int(v.get("count", 0)) for v in table.values())
    size = sum(float(v.get("bytes", 0)) for v in table.values())
    return (size / count if count else math.nan), sorted(table)


def summarize(runs: Sequence[Run], target: float | None,
              order: Sequence[str] = ()) -> list[StrategySummary]:
    """One `StrategySummary` per label, in `order` first, then in order of appearance; the first
    label is the reference of the paired differences."""
    labels = [*order, *(r.record.label for r in runs)]
    labels = list(dict.fromkeys(label for label in labels if any(r.record.label == label
                                                                 for r in runs)))
    finished = [r for r in runs if r.record.status == "ok" and r.rows]
    horizon = auc_horizon(finished)
    by_seed: dict[str, dict[str, dict[int, float]]] = {}
    empty: dict[str, dict[int, float]] = {"final": {}, "auc": {}, "worst": {}}
    for run in finished:
        figures = by_seed.setdefault(run.record.label, {"final": {}, "auc": {}, "worst": {}})
        figures["final"][run.record.seed] = run.rows[-1].val_accuracy
        figures["auc"][run.record.seed] = _auc(run, horizon)
        figures["worst"][run.record.seed] = run.rows[-1].worst_class_accuracy
    reference = labels[0] if labels else None
    summaries = []
    for label in labels:
        mine = [r for r in runs if r.record.label == label]
        good = [r for r in mine if r.record.status == "ok" and r.rows]
        finals = [r.rows[-1] for r in good]
        acc = np.array([f.val_accuracy for f in finals], dtype=float)
        reached = [first_reaching(r.rows, target) for r in good] if target is not None else []
        hits = [h for h in reached if h is not None]
        ci = bootstrap_interval(list(acc))
        seeds = by_seed.get(label, empty)
        ref = by_seed.get(reference or "", empty)
        compared = label != reference
        worst_mean, worst_sd, worst_runs = _mean_sd([f.worst_class_accuracy for f in finals])
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
            final_accuracy_ci=(ci.low, ci.high),
            time_to_target_median=(km_median_to_target(good, target, "time")
                                   if target is not None else None),
            merges_to_target_median=(km_median_to_target(good, target, "merges")
                                     if target is not None else None),
            auc=_mean(list(seeds["auc"].values())),
            auc_horizon=horizon,
            reference=reference if compared else None,
            final_accuracy_diff=(paired_difference(seeds["final"], ref["final"])
                                 if compared else None),
            auc_diff=paired_difference(seeds["auc"], ref["auc"]) if compared else None,
            update_bytes_mean=_mean([update_bytes(r)[0] for r in good]),
            update_encodings="/".join(sorted({e for r in good for e in update_bytes(r)[1]})),
            worst_class_mean=worst_mean,
            worst_class_std=worst_sd,
            worst_class_runs=worst_runs,
            worst_class_diff=(paired_difference(seeds["worst"], ref["worst"])
                              if compared else None),
        ))
    return summaries


def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _range(low: float, high: float, digits: int = 3) -> str:
    return "-" if math.isnan(low) or math.isnan(high) else (
        f"[{low:.{digits}f}, {high:.{digits}f}]")


def _censored(value: float | None, digits: int) -> str:
    """A Kaplan-Meier median; None means over half the runs never reached the target."""
    return "not reached" if value is None else f"{value:.{digits}f}"


def _difference(interval: Interval | None) -> str:
    if interval is None or interval.n == 0:
        return "-"
    text = f"{interval.estimate:+.3f}"
    if interval.n > 1:
        text += f" [{interval.low:+.3f}, {interval.high:+.3f}]"
        text += " *" if interval.excludes_zero else ""
    return text


def difference_rows(summaries: Sequence[StrategySummary]) -> tuple[list[str], list[list[str]]]:
    """Paired differences against the reference: header and cells (empty with one strategy)."""
    compared = [s for s in summaries if s.reference is not None]
    if not compared:
        return [], []
    header = [f"strategy − {compared[0].reference}", "seeds paired",
              "final acc diff [95% CI]", "AUC diff [95% CI]"]
    rows = [[s.label, str(s.final_accuracy_diff.n if s.final_accuracy_diff else 0),
             _difference(s.final_accuracy_diff), _difference(s.auc_diff)] for s in compared]
    if _has_worst_class(summaries):
        header.append("worst-class acc diff [95% CI]")
        for s, row in zip(compared, rows, strict=True):
            row.append(_difference(s.worst_class_diff))
    return header, rows


def _has_worst_class(summaries: Sequence[StrategySummary]) -> bool:
    """Whether any strategy's runs reported a worst-class accuracy (older results: none)."""
    return any(s.worst_class_runs for s in summaries)


def table_rows(summaries: Sequence[StrategySummary]) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by the terminal, Markdown and HTML tables."""
    target = next((s.target_accuracy for s in summaries if s.target_accuracy is not None), None)
    header = ["strategy", "runs", "final acc (mean ± sd)", "95% CI", "min – max"]
    if target is not None:
        header += [f"reached {target:g}", "time to target (s)", "merges to target",
                   "median time (KM)", "median merges (KM)"]
    worst = _has_worst_class(summaries)
    if worst:
        header.append("worst-class acc (mean ± sd)")
    header += ["AUC", "merges", "updates merged", "rejected", "mean staleness"]
    traffic = any(math.isfinite(s.update_bytes_mean) for s in summaries)
    if traffic:
        header += ["encoding", "bytes/update"]
    rows = []
    for s in summaries:
        runs = f"{s.runs}" + (f" (+{s.failed} failed)" if s.failed else "")
        row = [s.label, runs,
               f"{_num(s.final_accuracy_mean)} ± {_num(s.final_accuracy_std)}",
               _range(*s.final_accuracy_ci),
               f"{_num(s.final_accuracy_min)} – {_num(s.final_accuracy_max)}"]
        if target is not None:
            row += [f"{s.reached_target}/{s.runs}", _num(s.time_to_target_mean, 1),
                    _num(s.merges_to_target_mean, 1), _censored(s.time_to_target_median, 1),
                    _censored(s.merges_to_target_median, 0)]
        if worst:
            row.append(f"{_num(s.worst_class_mean)} ± {_num(s.worst_class_std)}"
                       if s.worst_class_runs else "-")
        row += [_num(s.auc), _num(s.merges_mean, 1), _num(s.updates_merged_mean, 1),
                _num(s.updates_rejected_mean, 1), _num(s.mean_staleness, 2)]
        if traffic:
            row += [s.update_encodings or "-", _num(s.update_bytes_mean, 0)]
        rows.append(row)
    return header, rows


DIFFERENCE_NOTE = ("Differences are paired by seed (same initial weights and data order); "
                   "* marks a 95% bootstrap interval that excludes 0.")


def _plain(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [line.rstrip() for line in lines]


def format_table(summaries: Sequence[StrategySummary],
                 validation: ValidationSize | None = None) -> str:
    """Plain-text tables for the terminal: the summary, then the paired differences."""
    lines = _plain(*table_rows(summaries))
    header, rows = difference_rows(summaries)
    if rows:
        lines += ["", *_plain(header, rows), DIFFERENCE_NOTE]
    if validation is not None:
        lines.append(validation.note())
    return "\n".join(lines)


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def to_markdown(summaries: Sequence[StrategySummary], title: str = "",
                provenance: dict | None = None, validation: ValidationSize | None = None) -> str:
    lines = [f"# {title}", ""] if title else []
    lines += _markdown(*table_rows(summaries))
    header, rows = difference_rows(summaries)
    if rows:
        lines += ["", *_markdown(header, rows), "", DIFFERENCE_NOTE]
    if validation is not None:
        lines += ["", validation.note()]
    if provenance:
        lines += ["", "Provenance: " + ", ".join(f"{k} {v}" for k, v in provenance.items())]
    return "\n".join(lines) + "\n"


def to_json(summaries: Sequence[StrategySummary], provenance: dict | None = None,
            validation: ValidationSize | None = None) -> str:
    """JSON with NaN written as null."""
    def clean(value: object) -> object:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value
    payload: dict[str, object] = {"strategies": [clean(asdict(s)) for s in summaries]}
    if validation is not None:
        payload["validation"] = {"examples": validation.examples,
                                 "accuracy": validation.accuracy,
                                 "standardError": validation.standard_error}
    if provenance:
        payload["provenance"] = provenance
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"
