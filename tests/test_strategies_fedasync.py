"""FedAsync: x_t = (1 - a_t) x_{t-1} + a_t x_new, a_t = alpha * s(staleness)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from webnn.merge import ModelState, ParamError, Update, create_strategy
from webnn.merge.fedasync import FedAsync, mix_into


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(weights: np.ndarray, staleness: int = 0, base_steps: int = 0,
           local_steps: int = 10) -> Update:
    return Update(weights=weights, base_version=0, base_steps=base_steps,
                  local_steps=local_steps, staleness=staleness, client="c1")


def test_alpha_one_constant_takes_the_update_exactly() -> None:
    rng = np.random.default_rng(1)
    model = ModelState(rng.standard_normal(1000).astype(np.float32))
    new = rng.standard_normal(1000).astype(np.float32)
    expected = new.copy()
    strategy = FedAsync(alpha=1.0, staleness_fn="constant")
    assert strategy.merge(model, update(new, staleness=7)) is True
    assert np.array_equal(model.weights, expected)


def test_alpha_half_goes_halfway() -> None:
    model = ModelState(f32(0, 2, 4, -1))
    strategy = FedAsync(alpha=0.5, staleness_fn="constant")
    strategy.merge(model, update(f32(2, 2, 0, 1)))
    assert np.array_equal(model.weights, f32(1, 2, 2, 0))


def test_defaults_polynomial_weight_at_staleness_three() -> None:
    # a_t = 0.6 * (3 + 1)^-0.5 = 0.3
    strategy = FedAsync()
    assert (strategy.alpha, strategy.staleness_fn) == (0.6, "polynomial")
    assert strategy.mixing_weight(3) == pytest.approx(0.3)
    model = ModelState(f32(0, 10))
    strategy.merge(model, update(f32(10, 0), staleness=3))
    np.testing.assert_allclose(model.weights, f32(3, 7), rtol=1e-6)


def test_hinge_weight_after_b() -> None:
    # a_t = 0.6 / (10 * (5 - 4) + 1) = 0.6 / 11; within b the full alpha
    strategy = FedAsync(staleness_fn="hinge")
    assert strategy.mixing_weight(4) == pytest.approx(0.6)
    assert strategy.mixing_weight(5) == pytest.approx(0.6 / 11)
    model = ModelState(f32(0))
    strategy.merge(model, update(f32(11), staleness=5))
    np.testing.assert_allclose(model.weights, f32(0.6), rtol=1e-6)


def test_steps_follow_the_max_rule_and_every_merge_is_a_version() -> None:
    strategy = FedAsync()
    model = ModelState(f32(0, 0), steps=100)
    assert strategy.merge(model, update(f32(1, 1), base_steps=50, local_steps=10)) is True
    assert model.steps == 100
    assert strategy.merge(model, update(f32(1, 1), base_steps=100, local_steps=10)) is True
    assert model.steps == 110


def test_mix_into_allocates_no_model_sized_temporary() -> None:
    n = 1_000_000  # 4 MB
    model = np.ones(n, dtype=np.float32)
    new = np.full(n, 3.0, dtype=np.float32)
    tracemalloc.start()
    try:
        mix_into(model, new, 0.25)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n  # well under the 4 MB of one model copy
    assert np.allclose(model, 1.5)


def test_mix_into_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="update holds 3 weights; the model has 2"):
        mix_into(f32(0, 0), f32(1, 1, 1), 0.5)
    with pytest.raises(ValueError, match=r"mixing weight must be in \[0, 1\], got 1.5"):
        mix_into(f32(0), f32(1), 1.5)


def test_params_from_strings_as_the_command_line_gives_them() -> None:
    strategy = create_strategy("fedasync", {"alpha": "0.5", "staleness_fn": "hinge", "a": "1",
                                            "b": "2"})
    assert isinstance(strategy, FedAsync)
    assert strategy.mixing_weight(3) == pytest.approx(0.25)  # 0.5 * 1 / (1 * 1 + 1)


def test_bad_params_name_the_parameter() -> None:
    with pytest.raises(ParamError, match="alpha must be > 0") as caught:
        FedAsync(alpha=0)
    assert caught.value.param == "alpha"
    with pytest.raises(ParamError) as caught:
        FedAsync(staleness_fn="linear")
    assert caught.value.param == "staleness_fn"
    with pytest.raises(ParamError) as caught:
        FedAsync(alpha=1.2)
    assert caught.value.param == "alpha"
