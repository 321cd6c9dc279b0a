"""Update screening: staleness cutoff, non-finite values, norm bounds, clip or refuse."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webnn.merge.screening import (
    NORM_TOO_LARGE,
    NOT_FINITE,
    REASONS,
    Screen,
    ScreeningConfig,
    ScreeningConfigError,
    all_finite,
    delta_norm,
    linear_quantile,
)
from webnn.merge.staleness import TOO_STALE
from webnn.weights import WeightLayout, WeightSpec


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_and_left_untouched(bad: float) -> None:
    layout = WeightLayout([WeightSpec("dense/kernel", (2, 3)), WeightSpec("dense/bias", (3,))])
    weights = np.zeros(9, dtype=np.float32)
    weights[7] = bad
    before = weights.copy()
    result = Screen(ScreeningConfig(norm_bound=1.0, action="clip"), layout).check(weights)
    assert (result.action, result.reason, result.refused) == ("refused", NOT_FINITE, True)
    assert "1 non-finite value" in result.message and "dense/bias[1] (index 7)" in result.message
    np.testing.assert_array_equal(weights, before)


def test_not_finite_is_checked_even_without_a_norm_bound() -> None:
    result = Screen().check(f32(1, np.nan, np.inf), f32(0, 0, 0))
    assert result.reason == NOT_FINITE
    assert "2 non-finite values" in result.message and "index 1" in result.message
    assert Screen().check(f32(1, 2, 3), f32(0, 0, 0)).action == "accepted"


def test_all_finite_is_exact_at_the_edges() -> None:
    assert all_finite(np.full(1000, 3e38, dtype=np.float32))  # would overflow a float32 sum
    assert not all_finite(f32(np.inf, -np.inf))  # sums to nan
    assert not all_finite(f32(1, np.nan))


def test_norm_above_a_fixed_bound_is_refused_unchanged() -> None:
    reference = f32(1, 1)
    weights = f32(4, 5)  # delta (3, 4), norm 5
    result = Screen(ScreeningConfig(norm_bound=2.0)).check(weights, reference)
    assert (result.action, result.reason) == ("refused", NORM_TOO_LARGE)
    assert result.norm == pytest.approx(5.0) and result.bound == 2.0
    assert "norm 5" in result.message and "bound 2" in result.message
    np.testing.assert_array_equal(weights, f32(4, 5))


def test_norm_above_a_fixed_bound_is_clipped_in_place() -> None:
    reference = f32(1, 1)
    weights = f32(4, 5)
    result = Screen(ScreeningConfig(norm_bound=2.0, action="clip")).check(weights, reference)
    assert (result.action, result.reason, result.refused) == ("clipped", NORM_TOO_LARGE, False)
    np.testing.assert_allclose(weights, f32(1 + 1.2, 1 + 1.6), rtol=1e-6)
    assert delta_norm(weights, reference) == pytest.approx(2.0, rel=1e-6)


def test_a_delta_without_reference_and_a_norm_within_the_bound() -> None:
    screen = Screen(ScreeningConfig(norm_bound=5.0, action="clip"))
    delta = f32(3, 4)
    result = screen.check(delta)
    assert result.action == "accepted" and result.norm == pytest.approx(5.0)
    delta = f32(6, 8)
    assert screen.check(delta).action == "clipped"
    np.testing.assert_allclose(delta, f32(3, 4), rtol=1e-6)


def test_adaptive_bound_follows_the_quantile_of_recent_accepted_norms() -> None:
    config = ScreeningConfig(adaptive_quantile=0.5, adaptive_factor=2.0, adaptive_window=3,
                             adaptive_min_history=3)
    screen = Screen(config)
    for norm in (1.0, 3.0, 2.0):
        assert screen.check(f32(norm, 0)).action == "accepted"  # no bound until three norms
    assert screen.bound() == pytest.approx(4.0)  # 2 * median(1, 3, 2)
    assert screen.check(f32(0, 5)).reason == NORM_TOO_LARGE  # refused: not remembered
    assert screen.bound() == pytest.approx(4.0)
    assert screen.check(f32(0, 3.5)).action == "accepted"  # window slides to 3, 2, 3.5
    assert screen.bound() == pytest.approx(6.0)


@given(st.lists(st.floats(0, 1e30, allow_subnormal=False), min_size=1, max_size=60),
       st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]), st.floats(0, 1)))
def test_linear_quantile_is_numpys_default_to_the_bit(values: list[float], q: float) -> None:
    # the adaptive bound must not move when its quantile is computed without numpy
    assert linear_quantile(values, q) == float(np.quantile(np.array(values), q))


def test_adaptive_clip_remembers_the_clipped_norm_and_min_of_both_bounds() -> None:
    screen = Screen(ScreeningConfig(norm_bound=10.0, adaptive_quantile=1.0, adaptive_factor=1.0,
                                    adaptive_window=5, adaptive_min_history=1, action="clip"))
    assert screen.bound() == 10.0  # fixed bound only, before any history
    screen.check(f32(2, 0))
    assert screen.bound() == pytest.approx(2.0)  # min(10, 1 * max(2))
    delta = f32(0, 7)
    assert screen.check(delta).action == "clipped"
    np.testing.assert_allclose(delta, f32(0, 2))
    assert screen.state() == {"norms": [2.0, 2.0]}


def test_staleness_cutoff_comes_first() -> None:
    screen = Screen(ScreeningConfig(max_staleness=2))
    assert screen.check(f32(1), staleness=2).action == "accepted"
    result = screen.check(f32(np.nan), staleness=3)
    assert (result.reason, result.refused) == (TOO_STALE, True)
    assert "3 versions behind" in result.message
    assert Screen().check(f32(1), staleness=10**6).action == "accepted"  # no cutoff by default
    assert set(REASONS) == {"too_stale", "not_finite", "norm_too_large"}


def test_screen_state_round_trip() -> None:
    config = ScreeningConfig(adaptive_quantile=0.5, adaptive_min_history=2, adaptive_window=4)
    screen = Screen(config)
    for norm in (1.0, 2.0, 4.0):
        screen.check(f32(norm))
    restored = Screen(config)
    restored.load_state(screen.state())
    assert restored.bound() == screen.bound() == pytest.approx(6.0)
    with pytest.raises(ValueError, match="norms must be a list of finite numbers"):
        restored.load_state({"norms": [1.0, -2.0]})


def test_delta_norm_is_exact_across_chunks_and_huge_values() -> None:
    rng = np.random.default_rng(2)
    weights = rng.standard_normal(200_003).astype(np.float32)
    reference = rng.standard_normal(200_003).astype(np.float32)
    expected = np.linalg.norm(weights.astype(np.float64) - reference.astype(np.float64))
    assert delta_norm(weights, reference) == pytest.approx(expected, rel=1e-12)
    assert delta_norm(f32(3e30, 4e30)) == pytest.approx(5e30, rel=1e-6)  # float32 squares overflow
    with pytest.raises(ValueError, match="reference holds 2 values, the update 3"):
        delta_norm(f32(1, 2, 3), f32(1, 2))


def test_screening_allocates_no_model_sized_temporary() -> None:
    n = 2_000_000  # 8 MB
    reference = np.zeros(n, dtype=np.float32)
    weights = np.full(n, 0.01, dtype=np.float32)
    screen = Screen(ScreeningConfig(norm_bound=1.0, action="clip"))
    tracemalloc.start()
    try:
        result = screen.check(weights, reference)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.action == "clipped"
    assert peak < 2_000_000  # a chunk of scratch, not a copy of the model
    assert delta_norm(weights, reference) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"norm_bound": 0}, "norm_bound"),
        ({"norm_bound": float("inf")}, "norm_bound"),
        ({"adaptive_quantile": 1.5}, "adaptive_quantile"),
        ({"adaptive_quantile": 0}, "adaptive_quantile"),
        ({"adaptive_factor": -1}, "adaptive_factor"),
        ({"adaptive_window": 0}, "adaptive_window"),
        ({"adaptive_window": 5, "adaptive_min_history": 6}, "adaptive_min_history"),
        ({"action": "drop"}, "action"),
        ({"max_staleness": -1}, "max_staleness"),
        ({"max_staleness": True}, "max_staleness"),
    ],
)
def test_config_errors_name_the_field(settings: dict, field: str) -> None:
    with pytest.raises(ScreeningConfigError, match=rf"^{field}: "):
        ScreeningConfig(**settings)
    with pytest.raises(ScreeningConfigError, match=rf"^serve.screening.{field}: "):
        ScreeningConfig.from_mapping(settings, path="serve.screening")


def test_config_from_mapping() -> None:
    config = ScreeningConfig.from_mapping({"norm_bound": 5, "action": "clip"})
    assert (config.norm_bound, config.action, config.checks_norm) == (5, "clip", True)
    assert ScreeningConfig().checks_norm is False
    with pytest.raises(ScreeningConfigError, match=r"^screening.bound: unknown setting; known: "):
        ScreeningConfig.from_mapping({"bound": 5})
