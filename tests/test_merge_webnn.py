"""WebNN's average, weighted and mimic: worked examples by hand, properties, t bookkeeping."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from webnn.merge import ModelState, Update, WebNNAverage, WebNNMimic, WebNNWeighted
from webnn.merge.webnn_rules import (
    average_into,
    merged_steps,
    mimic_into,
    mimic_step,
    weighted_fraction,
    weighted_into,
)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(weights: np.ndarray, base_steps: int, local_steps: int, base_version: int = 0) -> Update:
    return Update(weights=weights, base_version=base_version, base_steps=base_steps,
                  local_steps=local_steps, staleness=0, client="c1")


def random_weights(seed: int, size: int = 257) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=size).astype(np.float32)


# worked examples -----------------------------------------------------------------------------

def test_average_worked_example() -> None:
    model = ModelState(f32(1, 2, 3, -4), steps=10, version=5)
    changed = WebNNAverage().merge(model, update(f32(3, 0, 3, 4), base_steps=4, local_steps=3))
    assert changed is True
    np.testing.assert_array_equal(model.weights, f32(2, 1, 3, 0))
    assert model.steps == 10  # max(10, 4 + 3)
    assert model.version == 5  # the coordinator bumps versions, not the strategy


def test_weighted_worked_example() -> None:
    # W = [1, 2], t = 3; W_p = [5, -2], t_p = 0 + 1: ([1,2]*3 + [5,-2]*1) / 4 = [2, 1]
    model = ModelState(f32(1, 2), steps=3)
    WebNNWeighted().merge(model, update(f32(5, -2), base_steps=0, local_steps=1))
    np.testing.assert_array_equal(model.weights, f32(2, 1))
    assert model.steps == 3


def test_weighted_takes_the_update_when_the_model_has_no_steps() -> None:
    model = ModelState(f32(1, 2), steps=0)
    WebNNWeighted().merge(model, update(f32(5, -2), base_steps=0, local_steps=4))
    np.testing.assert_array_equal(model.weights, f32(5, -2))
    assert model.steps == 4


def test_weighted_counting_tasks_as_webnn_did() -> None:
    # unit=tasks: t_p = base t + 1 whatever the local steps. W = [1, 2], t = 3 (tasks);
    # the update started from t = 3 and trained 10 local steps: t_p = 4, not 13:
    # ([1,2]*3 + [5,-2]*4) / 7 = [23/7, -2/7]
    model = ModelState(f32(1, 2), steps=3)
    WebNNWeighted(unit="tasks").merge(model, update(f32(5, -2), base_steps=3, local_steps=10))
    np.testing.assert_allclose(model.weights, f32(23 / 7, -2 / 7), rtol=1e-6)
    assert model.steps == 4


def test_mimic_counting_tasks_takes_a_step_of_one_half_for_a_fresh_update() -> None:
    # unit=tasks: a fresh update (base t = model t = 5) is one ahead: k = 1, W += (W_p - W) / 2;
    # counted in steps it would be 10 ahead and move by 1/11
    model = ModelState(f32(0, 0), steps=5)
    WebNNMimic(unit="tasks").merge(model, update(f32(4, -2), base_steps=5, local_steps=10))
    np.testing.assert_allclose(model.weights, f32(2, -1))
    assert model.steps == 6


def test_mimic_worked_example_update_ahead() -> None:
    # d = 12 - 10 = 2, k = 2, D = W_p - W = [3, -3]: W_n = [0, 4] + [3, -3] / 3 = [1, 3]
    model = ModelState(f32(0, 4), steps=10)
    WebNNMimic().merge(model, update(f32(3, 1), base_steps=9, local_steps=3))
    np.testing.assert_allclose(model.weights, f32(1, 3), rtol=1e-6)
    assert model.steps == 12


def test_mimic_worked_example_update_behind() -> None:
    # d = 7 - 10 = -3, k = 3, D = W - W_p = [-3, 3]: W_n = [0, 4] + [-3, 3] / 4 = [-0.75, 4.75]
    model = ModelState(f32(0, 4), steps=10)
    WebNNMimic().merge(model, update(f32(3, 1), base_steps=5, local_steps=2))
    np.testing.assert_array_equal(model.weights, f32(-0.75, 4.75))
    assert model.steps == 10


def test_mimic_worked_example_update_level() -> None:
    # d = 0, so k = 1, D = W - W_p = [-3, 3]: W_n = [0, 4] + [-3, 3] / 2 = [-1.5, 5.5]
    model = ModelState(f32(0, 4), steps=10)
    WebNNMimic().merge(model, update(f32(3, 1), base_steps=8, local_steps=2))
    np.testing.assert_array_equal(model.weights, f32(-1.5, 5.5))
    assert model.steps == 10


# properties ----------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [(0, 0), (0, 5), (7, 0), (3, 3), (100, 1), (1, 100)])
def test_merging_equal_weights_changes_nothing(steps: tuple[int, int]) -> None:
    model_steps, update_steps = steps
    base = random_weights(1)
    for merge in (lambda m, u: average_into(m, u),
                  lambda m, u: weighted_into(m, u, model_steps, update_steps)):
        model = base.copy()
        merge(model, base.copy())
        np.testing.assert_array_equal(model, base)


@pytest.mark.parametrize("t", [0, 1, 10, 12345])
def test_weighted_with_equal_t_is_the_average(t: int) -> None:
    a, b = random_weights(2), random_weights(3)
    averaged, weighted = a.copy(), a.copy()
    average_into(averaged, b.copy())
    weighted_into(weighted, b.copy(), t, t)
    np.testing.assert_array_equal(weighted, averaged)


@pytest.mark.parametrize(("model_steps", "update_steps"), [(3, 1), (1, 3), (0, 9), (9, 0)])
def test_weighted_matches_the_formula(model_steps: int, update_steps: int) -> None:
    a, b = random_weights(4), random_weights(5)
    expected = ((a.astype(np.float64) * model_steps + b.astype(np.float64) * update_steps)
                / (model_steps + update_steps))
    model = a.copy()
    weighted_into(model, b.copy(), model_steps, update_steps)
    np.testing.assert_allclose(model, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 5, 40])
def test_mimic_moves_toward_an_update_that_is_ahead_by_one_over_k_plus_one(d: int) -> None:
    w, wp = random_weights(6), random_weights(7)
    model = w.copy()
    mimic_into(model, wp.copy(), 100, 100 + d)
    gap = wp.astype(np.float64) - w
    np.testing.assert_allclose(model - w.astype(np.float64), gap / (d + 1), rtol=1e-4, atol=1e-6)
    # strictly closer to the update wherever they differ
    assert np.all(np.abs(wp - model) <= np.abs(wp - w))


@pytest.mark.parametrize(("d", "k"), [(0, 1), (-1, 1), (-3, 3), (-50, 50)])
def test_mimic_moves_away_from_an_update_that_is_not_ahead(d: int, k: int) -> None:
    w, wp = random_weights(8), random_weights(9)
    model = w.copy()
    mimic_into(model, wp.copy(), 100, 100 + d)
    gap = wp.astype(np.float64) - w
    np.testing.assert_allclose(model - w.astype(np.float64), -gap / (k + 1), rtol=1e-4, atol=1e-6)
    assert np.all(np.abs(wp - model) >= np.abs(wp - w))


def test_step_coefficients() -> None:
    assert mimic_step(10, 12) == pytest.approx(1 / 3)
    assert mimic_step(10, 10) == pytest.approx(-1 / 2)
    assert mimic_step(10, 6) == pytest.approx(-1 / 5)
    assert weighted_fraction(0, 0) == 0.5
    assert weighted_fraction(3, 1) == 0.25
    assert merged_steps(4, 9) == 9 and merged_steps(9, 4) == 9


@pytest.mark.parametrize("strategy", [WebNNAverage, WebNNWeighted, WebNNMimic])
def test_no_nan_when_every_t_is_zero(strategy: type) -> None:
    model = ModelState(random_weights(10), steps=0)
    strategy().merge(model, update(random_weights(11), base_steps=0, local_steps=0))
    assert np.isfinite(model.weights).all()
    assert model.steps == 0


@pytest.mark.parametrize("strategy", [WebNNAverage, WebNNWeighted, WebNNMimic])
def test_steps_bookkeeping_over_a_sequence(strategy: type) -> None:
    """t_n = max(t_{n-1}, t_p) through a run of merges, fresh and stale."""
    model = ModelState(random_weights(12), steps=0)
    s = strategy()
    expected = 0
    for base_steps, local_steps in [(0, 5), (0, 5), (5, 10), (3, 1), (15, 10), (2, 2)]:
        s.merge(model, update(random_weights(base_steps + local_steps), base_steps, local_steps))
        expected = max(expected, base_steps + local_steps)
        assert model.steps == expected
        assert np.isfinite(model.weights).all()


@pytest.mark.parametrize("strategy", [WebNNAverage, WebNNWeighted, WebNNMimic])
def test_merge_is_in_place_without_a_model_sized_temporary(strategy: type) -> None:
    size = 1 << 20  # 4 MiB of float32
    weights = random_weights(13, size)
    model = ModelState(weights, steps=3)
    incoming = update(random_weights(14, size), base_steps=2, local_steps=5)
    tracemalloc.start()
    try:
        strategy().merge(model, incoming)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.weights is weights
    assert peak < size  # well under the 4 MiB a temporary copy would take


# bad input -----------------------------------------------------------------------------------

def test_update_rejects_negative_steps_and_wrong_buffers() -> None:
    with pytest.raises(ValueError, match="local_steps must be an integer >= 0, got -1"):
        update(f32(1), base_steps=0, local_steps=-1)
    with pytest.raises(ValueError, match="weights must be a flat float32 array, got float64"):
        update(np.zeros(3), base_steps=0, local_steps=1)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        update(np.zeros((2, 2), np.float32), base_steps=0, local_steps=1)


@pytest.mark.parametrize("strategy", [WebNNAverage, WebNNWeighted, WebNNMimic])
def test_size_mismatch_is_refused_and_changes_nothing(strategy: type) -> None:
    model = ModelState(f32(1, 2, 3), steps=4)
    with pytest.raises(ValueError, match="update holds 2 weights; the model has 3"):
        strategy().merge(model, update(f32(1, 2), base_steps=1, local_steps=1))
    np.testing.assert_array_equal(model.weights, f32(1, 2, 3))
    assert model.steps == 4


def test_webnn_strategies_are_stateless() -> None:
    s = WebNNMimic()
    assert s.state().empty
    s.load_state(s.state())
