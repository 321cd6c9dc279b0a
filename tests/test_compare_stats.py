"""Comparison statistics against worked examples: bootstrap, paired differences, Kaplan-Meier
median with censored runs, area under the accuracy curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from webnn.compare.stats import (
    area_under_curve,
    bootstrap_interval,
    kaplan_meier_median,
    paired_difference,
)


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible() -> None:
    values = [0.90, 0.92, 0.94, 0.96, 0.98]
    first = bootstrap_interval(values, seed=3)
    assert first.estimate == pytest.approx(0.94)
    assert first.low < 0.94 < first.high
    assert first.low >= 0.90 and first.high <= 0.98
    assert bootstrap_interval(values, seed=3) == first


def test_bootstrap_interval_of_constant_values_is_a_point() -> None:
    interval = bootstrap_interval([0.5, 0.5, 0.5])
    assert (interval.low, interval.estimate, interval.high) == (0.5, 0.5, 0.5)
    assert interval.excludes_zero


def test_bootstrap_interval_of_one_value_has_no_bounds() -> None:
    interval = bootstrap_interval([0.7])
    assert interval.estimate == 0.7 and interval.n == 1
    assert math.isnan(interval.low) and math.isnan(interval.high)


def test_paired_difference_pairs_by_seed_and_skips_unpaired() -> None:
    # B beats A by exactly 0.05 on every shared seed; seed 9 has no partner, seed 4 is NaN
    a = {1: 0.80, 2: 0.70, 3: 0.90, 4: 0.85}
    b = {1: 0.85, 2: 0.75, 3: 0.95, 4: math.nan, 9: 0.1}
    diff = paired_difference(b, a)
    assert diff.n == 3
    assert diff.estimate == pytest.approx(0.05)
    assert diff.low == pytest.approx(0.05) and diff.high == pytest.approx(0.05)
    assert diff.excludes_zero


def test_paired_difference_of_noise_includes_zero() -> None:
    a = {s: 0.9 for s in range(6)}
    b = {0: 0.92, 1: 0.88, 2: 0.91, 3: 0.89, 4: 0.90, 5: 0.90}
    assert not paired_difference(b, a).excludes_zero


def test_kaplan_meier_median_without_censoring_is_the_sample_median() -> None:
    assert kaplan_meier_median([5, 1, 3], [True, True, True]) == 3


def test_kaplan_meier_median_counts_censored_runs_instead_of_dropping_them() -> None:
    # Reached at 2 and 4; two runs ended at 3 and 10 without reaching it. Dropping them would give
    # a median of 2 or 3; with censoring: S(2) = 3/4, then 2 at risk after the censored one at 3,
    # S(4) = 3/4 * 1/2 = 3/8 <= 0.5, so the median is 4.
    assert kaplan_meier_median([2, 3, 4, 10], [True, False, True, False]) == 4


def test_kaplan_meier_median_is_none_when_most_runs_never_reach() -> None:
    assert kaplan_meier_median([2, 10, 10], [True, False, False]) is None
    assert kaplan_meier_median([], []) is None


def test_area_under_curve_weights_each_value_by_how_long_it_held() -> None:
    # 0.2 on [0, 10), 0.8 on [10, 40): (0.2 * 10 + 0.8 * 30) / 40 = 0.65
    assert area_under_curve([0, 10], [0.2, 0.8], 40) == pytest.approx(0.65)
    # a first validation after 0 holds back to 0; points past the horizon do not count
    assert area_under_curve([5, 10, 50], [0.2, 0.8, 1.0], 40) == pytest.approx(0.65)
    assert math.isnan(area_under_curve([], [], 10))


def test_area_under_curve_orders_points() -> None:
    assert area_under_curve([10, 0], [0.8, 0.2], 40) == pytest.approx(0.65)
    assert np.isfinite(area_under_curve([0], [0.5], 1))
