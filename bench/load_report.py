"""Turning bench/load.py's raw measurements into its report (a JSON-ready dict) and a text table.

Definitions (window = [measure_from, stop_at], after the warm-up):
- merges/s = (status.merges at the last sample in the window − at the first) / their time apart;
- latency p50/p99 per request kind over the successful requests that finished in the window;
- ingest bytes/s = bytes of the accepted updates (whole frames) that finished in the window /
  window length; its ratio is to the ``np.copyto`` bandwidth of a model-sized array; the same per
  second of server CPU (ingest / mean server CPU fraction) shows the path's cost when the server
  is not saturated;
- server CPU % = Δ(utime + stime) / Δt per sample pair (100 % = one core busy);
- RSS flatness: mean RSS over the window's first vs last `span` seconds, span = min(60, window/3);
  merges/s is given over the same first and last spans too;
- errors, refusals, 503s and 429s count the whole run, warm-up included;
- bytes per update body / per answer / per weights body = mean bytes of the accepted update
  bodies (whole frames) / of their answers (follow-up frames or JSON) / of ``GET weights`` 200
  bodies that finished in the window (``--encoding`` decides their size); ``traffic`` is the
  server's final ``status.traffic`` (bodies per encoding, warm-up included).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from load_clients import ProcessResult

MB = 1e6
KINDS = ("join", "task", "weights", "batch", "update", "evaluation")
"""Request kinds always listed in the latency table (with count 0 when none finished)."""


@dataclass(frozen=True)
class Sample:
    """One monitor reading (`t` wall clock); `merges` is None when status did not answer in time.
    `capacity` is the status's ``capacity`` object when the server reports one (bodies in flight,
    merge queue, snapshots)."""

    t: float
    cpu_seconds: float | None
    rss_bytes: int | None
    merges: int | None
    version: int | None
    open_tasks: int | None
    capacity: dict | None = None


def latency_summary(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"count": int(values.size), "p50": float(p50), "p99": float(p99),
            "max": float(values.max())}


def merged_counters(results: list[ProcessResult], name: str) -> dict[str, int]:
    total: Counter = Counter()
    for result in results:
        total.update(getattr(result, name))
    return dict(sorted(total.items()))


def summed_series(results: list[ProcessResult], name: str) -> list[int]:
    length = max((len(r.series.get(name, [])) for r in results), default=0)
    total = np.zeros(length, dtype=np.int64)
    for result in results:
        values = result.series.get(name, [])
        total[:len(values)] += np.asarray(values, dtype=np.int64)
    return [int(v) for v in total]


def rates(samples: list[Sample], field: str, start: float) -> tuple[list[float], list[float]]:
    """(times since `start`, per-second rate of `field`) over consecutive samples that have it."""
    have = [s for s in samples if getattr(s, field) is not None]
    times, values = [], []
    for a, b in zip(have, have[1:], strict=False):
        if b.t > a.t:
            times.append(round(b.t - start, 3))
            values.append((getattr(b, field) - getattr(a, field)) / (b.t - a.t))
    return times, values


def field_series(samples: list[Sample], field: str, start: float) -> dict[str, list]:
    """``{"t": seconds since start, "value": ...}`` of the samples that have `field`."""
    have = [s for s in samples if getattr(s, field) is not None]
    return {"t": [round(s.t - start, 3) for s in have], "value": [getattr(s, field) for s in have]}


def window_rate(samples: list[Sample], field: str, t0: float, t1: float) -> tuple[float, float]:
    """(rate of `field` between the first and last sample in [t0, t1], their time apart)."""
    inside = [s for s in samples if t0 <= s.t <= t1 + 0.5 and getattr(s, field) is not None]
    if len(inside) < 2 or inside[-1].t <= inside[0].t:
        return float("nan"), 0.0
    first, last = inside[0], inside[-1]
    span = last.t - first.t
    return (getattr(last, field) - getattr(first, field)) / span, span


def rss_summary(samples: list[Sample], t0: float, t1: float) -> dict[str, float | None]:
    """RSS over the measured window: its maximum, the means of its first and last `span_s`
    (a minute, or a third of a shorter window), and its trend, ``slope_mb_per_min``: the
    least-squares slope of RSS against time over the window (0 for a flat curve)."""
    inside = [(s.t, s.rss_bytes) for s in samples
              if t0 <= s.t <= t1 + 0.5 and s.rss_bytes is not None]
    every = [s.rss_bytes for s in samples if s.rss_bytes is not None]
    if not inside:
        return {"max_mb": None, "first_mb": None, "last_mb": None, "span_s": None,
                "slope_mb_per_min": None,
                "max_whole_run_mb": max(every) / MB if every else None}
    span = min(60.0, (t1 - t0) / 3)
    first = [rss for t, rss in inside if t <= t0 + span]
    last = [rss for t, rss in inside if t >= t1 - span]
    return {"max_mb": max(rss for _, rss in inside) / MB,
            "first_mb": float(np.mean(first)) / MB if first else None,
            "last_mb": float(np.mean(last)) / MB if last else None,
            "span_s": span, "slope_mb_per_min": _slope_per_min(inside),
            "max_whole_run_mb": max(every) / MB}


def _slope_per_min(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of bytes against seconds, in MB per minute (None under 2 points)."""
    if len(points) < 2:
        return None
    t = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float) / MB
    if float(np.ptp(t)) == 0.0:
        return None
    return float(np.polyfit(t, y, 1)[0]) * 60.0


def merges_flatness(samples: list[Sample], t0: float, t1: float) -> dict[str, float | None]:
    """merges/s over the window's first and last `span` seconds (span as for RSS): a run whose
    throughput falls as it ages shows last < first."""
    span = min(60.0, (t1 - t0) / 3)
    first, _ = window_rate(samples, "merges", t0, t0 + span)
    last, _ = window_rate(samples, "merges", t1 - span, t1)
    return {"first": first, "last": last, "span_s": span}


def step_summary(samples: list[Sample], busy_per_s: list[int], start: float, t0: float,
                 t1: float, step: dict) -> dict[str, Any]:
    """Before and after a load step at ``t0 + step["after_s"]``: merges/s, 503s per second, RSS
    and the capacity figures; `last_503_after_step_s`: seconds from the step to the end of the
    last second with a 503 (0: none after it); `recovered_503_free_s`: the 503-free seconds
    that follow, to the end of the window."""
    at = t0 + step["after_s"]
    before, _ = window_rate(samples, "merges", t0, at)
    after, _ = window_rate(samples, "merges", at, t1)
    first = int(t0 - start)
    index = int(at - start)
    last = int(t1 - start)
    busy_before = busy_per_s[first:index]
    busy_after = busy_per_s[index:last + 1]
    late = [i for i, n in enumerate(busy_after) if n]
    last_503 = (late[-1] + 1) if late else 0
    rss_before = [s.rss_bytes for s in samples if t0 <= s.t <= at and s.rss_bytes is not None]
    rss_after = [s.rss_bytes for s in samples if s.t >= t1 - 5 and s.rss_bytes is not None]
    capacity = [s.capacity for s in samples if s.t >= t1 - 5 and s.capacity]
    return {
        "at_s": step["after_s"], "clients_after": step["clients"],
        "merges_per_s_before": before, "merges_per_s_after": after,
        "busy_503_per_s_before": (sum(busy_before) / len(busy_before) if busy_before
                                  else None),
        "busy_503_after": sum(busy_after),
        "last_503_after_step_s": last_503,
        "recovered_503_free_s": max(0, len(busy_after) - last_503),
        "rss_max_before_mb": max(rss_before) / MB if rss_before else None,
        "rss_last_5s_mb": float(np.mean(rss_after)) / MB if rss_after else None,
        "capacity_last": capacity[-1] if capacity else None,
    }


def build_report(*, config: dict[str, Any], samples: list[Sample],
                 results: list[ProcessResult], start: float, t0: float, t1: float,
                 memcopy_bytes_per_s: float, final_status: dict | None) -> dict[str, Any]:
    """The report of one run (see the module docstring for every figure's definition)."""
    window = t1 - t0
    merges_per_s, merge_span = window_rate(samples, "merges", t0, t1)
    cpu_mean, _ = window_rate(samples, "cpu_seconds", t0, t1)
    cpu_times, cpu_rates = rates(samples, "cpu_seconds", start)
    merge_times, merge_rates = rates(samples, "merges", start)
    in_window_cpu = [r for t, r in zip(cpu_times, cpu_rates, strict=True)
                     if t0 - start <= t <= t1 - start + 0.5]
    seen = {kind for r in results for kind in r.latencies}
    kinds = [*KINDS, *sorted(seen - set(KINDS))]
    latencies = {kind: latency_summary(np.concatenate(
        [r.latencies[kind] for r in results if kind in r.latencies] or [np.zeros(0)]))
        for kind in kinds}
    accepted_bytes = sum(r.accepted_bytes for r in results)
    accepted_updates = sum(r.accepted_updates for r in results)
    ingest = accepted_bytes / window if window > 0 else float("nan")
    answers = sum(r.answers for r in results)
    weights_bodies = sum(r.weights_bodies for r in results)
    errors = merged_counters(results, "errors")
    busy = merged_counters(results, "busy")
    step = (step_summary(samples, summed_series(results, "busy"), start, t0, t1,
                         config["step"]) if config.get("step") else None)
    return {
        **config,
        "window_s": window,
        "step_result": step,
        "merges_per_s": merges_per_s,
        "merges_window_span_s": merge_span,
        "merges_per_s_first_last": merges_flatness(samples, t0, t1),
        "accepted_updates_per_s": accepted_updates / window if window > 0 else float("nan"),
        "bytes": {
            "per_update_body": (accepted_bytes / accepted_updates if accepted_updates
                                else None),
            "per_answer": (sum(r.answer_bytes for r in results) / answers if answers
                           else None),
            "per_weights_body": (sum(r.weights_bytes for r in results) / weights_bodies
                                 if weights_bodies else None),
            "answers": answers, "weights_bodies": weights_bodies,
            "negotiated": merged_counters(results, "negotiated"),
            "traffic": (final_status or {}).get("traffic"),
        },
        "latency_s": latencies,
        "errors": errors,
        "errors_total": sum(errors.values()),
        "refused": merged_counters(results, "refused"),
        "throttled_429": merged_counters(results, "throttled"),
        "busy_503": busy,
        "busy_503_total": sum(busy.values()),
        "server": {
            "cpu_mean_pct": 100 * cpu_mean,
            "cpu_max_pct": 100 * max(in_window_cpu) if in_window_cpu else None,
            "rss": rss_summary(samples, t0, t1),
            "final_status": final_status,
        },
        "ingest": {
            "bytes_per_s": ingest,
            "memcopy_bytes_per_s": memcopy_bytes_per_s,
            "ratio_to_memcopy": ingest / memcopy_bytes_per_s,
            "bytes_per_server_cpu_s": ingest / cpu_mean if cpu_mean > 0 else None,
            "per_cpu_ratio_to_memcopy": (ingest / cpu_mean / memcopy_bytes_per_s
                                         if cpu_mean > 0 else None),
        },
        "generator": {
            "processes": len(results),
            "cpu_pct_per_process": [100 * r.cpu_seconds / r.window_seconds
                                    if r.window_seconds else None for r in results],
        },
        "series": {
            "merges_per_s": {"t": merge_times, "value": merge_rates},
            "server_cpu_pct": {"t": cpu_times, "value": [100 * v for v in cpu_rates]},
            "rss_mb": {"t": [round(s.t - start, 3) for s in samples if s.rss_bytes is not None],
                       "value": [s.rss_bytes / MB for s in samples if s.rss_bytes is not None]},
            "updates_per_s": summed_series(results, "updates"),
            "busy_503_per_s": summed_series(results, "busy"),
            "errors_per_s": summed_series(results, "errors"),
            "open_tasks": field_series(samples, "open_tasks", start),
            "capacity": field_series(samples, "capacity", start),
        },
    }


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}g}"


def format_report(report: dict[str, Any]) -> str:
    """The stdout table of a report."""
    rss = report["server"]["rss"]
    flat = report["merges_per_s_first_last"]
    ingest = report["ingest"]
    generator = [v for v in report["generator"]["cpu_pct_per_process"] if v is not None]
    sizes = report.get("bytes") or {}
    lines = [
        f"model {report['params']:,} params ({report['model_bytes'] / MB:.1f} MB), "
        f"{report['clients']} clients in {report['processes']} processes, think "
        f"{report['think_s'][0]}-{report['think_s'][1]} s, strategy {report['strategy']}, "
        f"follow-up {'on' if report['follow_up'] else 'off'}",
        f"window {report['window_s']:.0f} s after {report['warmup_s']:.0f} s warm-up",
        f"encoding {report.get('encoding', 'f32')} (sessions {sizes.get('negotiated') or '-'}): "
        f"update body {_fmt(sizes.get('per_update_body'), 1 / MB, 4)} MB, answer "
        f"{_fmt(sizes.get('per_answer'), 1 / MB, 4)} MB, weights body "
        f"{_fmt(sizes.get('per_weights_body'), 1 / MB, 4)} MB (means)",
        "",
        f"merges/s            {_fmt(report['merges_per_s'], digits=4)} (first "
        f"{_fmt(flat['span_s'])} s {_fmt(flat['first'], digits=4)}, last "
        f"{_fmt(flat['last'], digits=4)})",
        f"accepted updates/s  {_fmt(report['accepted_updates_per_s'], digits=4)}",
        f"errors              {report['errors_total']}  {report['errors'] or ''}",
        f"503 busy            {report['busy_503_total']}  {report['busy_503'] or ''}",
        f"429 throttled       {report['throttled_429'] or 0}",
        f"refused             {report['refused'] or 0}",
        f"server CPU          mean {_fmt(report['server']['cpu_mean_pct'])} %, "
        f"max {_fmt(report['server']['cpu_max_pct'])} %",
        f"server RSS          max {_fmt(rss['max_mb'], digits=4)} MB, "
        f"first {_fmt(rss['span_s'])} s "
        f"{_fmt(rss['first_mb'], digits=4)} MB, last {_fmt(rss['last_mb'], digits=4)} MB, "
        f"trend {_fmt(rss.get('slope_mb_per_min'))} MB/min",
        f"ingest              {_fmt(ingest['bytes_per_s'], 1 / MB, 4)} MB/s = "
        f"{_fmt(ingest['ratio_to_memcopy'], 100, 3)} % of memcopy "
        f"({_fmt(ingest['memcopy_bytes_per_s'], 1 / MB, 4)} MB/s); per server CPU second "
        f"{_fmt(ingest['bytes_per_server_cpu_s'], 1 / MB, 4)} MB = "
        f"{_fmt(ingest['per_cpu_ratio_to_memcopy'], 100, 3)} %",
        f"generator CPU       max {_fmt(max(generator) if generator else None)} % per process",
        "",
        f"{'request':<12}{'count':>9}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for kind, row in report["latency_s"].items():
        lines.append(f"{kind:<12}{row['count']:>9}{_fmt(row['p50'], 1e3):>10}"
                     f"{_fmt(row['p99'], 1e3):>10}{_fmt(row['max'], 1e3):>10}")
    step = report.get("step_result")
    if step:
        capacity = step["capacity_last"] or {}
        lines += [
            "",
            f"load step at {step['at_s']:g} s to {step['clients_after']} clients: merges/s "
            f"{_fmt(step['merges_per_s_before'], digits=4)} -> "
            f"{_fmt(step['merges_per_s_after'], digits=4)}; 503/s "
            f"{_fmt(step['busy_503_per_s_before'])} before, {step['busy_503_after']} after, the "
            f"last {step['last_503_after_step_s']} s after the step, then "
            f"{step['recovered_503_free_s']} s without",
            f"after the step      RSS {_fmt(step['rss_max_before_mb'], digits=4)} MB max before, "
            f"{_fmt(step['rss_last_5s_mb'], digits=4)} MB in the last 5 s; bodies in flight "
            f"{capacity.get('bodyBytes', '-')} bytes, merge queue "
            f"{capacity.get('mergeQueue', '-')}",
        ]
    return "\n".join(lines)
