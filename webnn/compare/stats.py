"""Statistics for comparing strategies across seeds: pure functions on arrays of per-run figures.

- **Percentile bootstrap** (Efron & Tibshirani 1993): resample the n values with replacement
  ``resamples`` times, take the statistic of each resample; the ``level`` interval is the
  ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those statistics. Seeded, so a report
  re-rendered from the same runs gives the same interval.
- **Paired differences**: runs of two strategies under the same seed share the initial weights and
  the data order, so the seed is the unit of pairing: ``d_s = metric(A, s) - metric(reference, s)``
  over the seeds both finished; the mean of ``d`` with its bootstrap interval. An interval that
  excludes 0 is a difference the seeds support at that level.
- **Time to target with censoring** (Kaplan & Meier 1958): a run that never reached the target is
  censored at its end, not dropped. ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)`` over the distinct
  event times ``t_i`` (``d_i`` runs reaching the target at ``t_i``, ``n_i`` runs still at risk
  just before it: not yet reached and not censored before ``t_i``); the median is the first
  ``t_i`` with ``S(t_i) <= 0.5``, or None (``> longest run``) when over half the runs never got
  there.
- **Area under the accuracy curve**: the mean validation accuracy over ``[0, horizon]`` of the
  run's step function (each validation holds until the next one), with one horizon for every run
  compared, so faster learning scores higher even where final accuracies tie.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (NaN bounds when there is too little data)."""

    estimate: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def bootstrap_interval(values: Sequence[float], *, statistic: Callable[..., np.ndarray] = np.mean,
                       level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
                       seed: int = 0) -> Interval:
    """`statistic` of `values` with its percentile-bootstrap interval (see the module docstring).

    `statistic` must accept ``axis=1`` on a (resamples, n) array. One value gives NaN bounds.
    """
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    estimate = float(statistic(data[None, :], axis=1)[0])
    if data.size == 1:
        return Interval(estimate, math.nan, math.nan, 1)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    stats = statistic(data[picks], axis=1)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(estimate, float(low), float(high), int(data.size))


def paired_difference(values: dict[int, float], reference: dict[int, float], *,
                      level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
                      seed: int = 0) -> Interval:
    """Mean of ``values[s] - reference[s]`` over the seeds `s` both hold (finite), with its
    bootstrap interval."""
    seeds = sorted(s for s in values.keys() & reference.keys()
                   if not math.isnan(values[s]) and not math.isnan(reference[s]))
    return bootstrap_interval([values[s] - reference[s] for s in seeds], level=level,
                              resamples=resamples, seed=seed)


def kaplan_meier_median(times: Sequence[float], reached: Sequence[bool]) -> float | None:
    """Median time to an event with right-censoring (see the module docstring): `times[i]` is
    when run i reached the target (``reached[i]``) or when it ended without it. None when the
    survival curve never falls to 0.5 (more than half the runs censored before reaching)."""
    if len(times) != len(reached):
        raise ValueError(f"{len(times)} times but {len(reached)} reached flags")
    survival = 1.0
    pairs = sorted(zip(times, reached, strict=True))
    at_risk = len(pairs)
    i = 0
    while i < len(pairs):
        t = pairs[i][0]
        events = censored = 0
        while i < len(pairs) and pairs[i][0] == t:
            events += pairs[i][1]
            censored += not pairs[i][1]
            i += 1
        if events:
            survival *= 1 - events / at_risk
            if survival <= 0.5 + 1e-12:
                return float(t)
        at_risk -= events + censored
    return None


def area_under_curve(xs: Sequence[float], ys: Sequence[float], horizon: float) -> float:
    """Mean of the step function through ``(xs[i], ys[i])`` over ``[0, horizon]``; before the
    first point the curve holds the first value. NaN for no points or a horizon <= 0."""
    if not len(xs) or horizon <= 0:
        return math.nan
    order = np.argsort(np.asarray(xs, dtype=float), kind="stable")
    x = np.asarray(xs, dtype=float)[order]
    y = np.asarray(ys, dtype=float)[order]
    starts = np.clip(x, 0, horizon)
    starts[0] = 0.0
    ends = np.append(starts[1:], horizon)
    return float(np.sum(y * (ends - starts)) / horizon)
