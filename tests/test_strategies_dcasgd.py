"""DC-ASGD on deltas: each update moves the model by server_lr times its compensated delta."""

from __future__ import annotations

import numpy as np
import pytest

from webnn.merge import ModelState, StrategyError, Update, create_strategy
from webnn.merge.dcasgd import DcAsgd, compensated_delta
from webnn.merge.errors import ParamError


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(weights: np.ndarray, base: np.ndarray | None, staleness: int = 0,
           base_steps: int = 0) -> Update:
    return Update(weights=weights.copy(), base_version=0, base_steps=base_steps, local_steps=10,
                  staleness=staleness, client="c",
                  base_weights=None if base is None else base.copy())


def test_worked_example_of_the_compensated_step() -> None:
    # base (1, 2, 3), returned (2, 0, 3.5): d = (1, -2, 0.5). The model moved on to (1.5, 1, 2),
    # so x - base = (0.5, -1, -1). lambda = 0.5: d*d*(x - base) = (0.5, -4, -0.25),
    # d_c = d - 0.5 * that = (0.75, 0, 0.625); server_lr 2: x = (1.5, 1, 2) + (1.5, 0, 1.25).
    base = f32(1, 2, 3)
    model = ModelState(f32(1.5, 1, 2), steps=40)
    strategy = DcAsgd(server_lr=2.0, lam=0.5)
    assert strategy.merge(model, update(f32(2, 0, 3.5), base, staleness=2, base_steps=30))
    np.testing.assert_allclose(model.weights, f32(3.0, 1.0, 3.25), rtol=1e-6)
    assert model.steps == 40  # max(40, 30 + 10)


def test_lambda_zero_is_async_sgd_on_deltas() -> None:
    # x = (10, 10) + 1 * ((3, 5) - (1, 1)), whatever the drift.
    model = ModelState(f32(10, 10))
    DcAsgd(server_lr=1.0, lam=0.0).merge(model, update(f32(3, 5), f32(1, 1), staleness=7))
    np.testing.assert_allclose(model.weights, f32(12, 14))


def test_a_fresh_update_needs_no_compensation() -> None:
    # model == base: the correction term is zero, x = base + server_lr * d.
    base = f32(0.5, -1)
    model = ModelState(base.copy())
    DcAsgd(server_lr=0.5, lam=3.0).merge(model, update(f32(1.5, 1), base))
    np.testing.assert_allclose(model.weights, f32(1.0, 0.0))


def test_compensated_delta_leaves_base_and_model_alone() -> None:
    base, model, weights = f32(1, 1), f32(2, 0), f32(3, 1)
    out = compensated_delta(weights, base, model, 1.0)
    assert out is weights
    np.testing.assert_allclose(out, f32(2 - 4 * 1, 0))
    assert np.array_equal(base, f32(1, 1)) and np.array_equal(model, f32(2, 0))


def test_registered_and_needs_base_weights() -> None:
    strategy = create_strategy("dcasgd", {"server_lr": "0.25", "lam": "0"})
    assert isinstance(strategy, DcAsgd) and strategy.server_lr == 0.25 and strategy.lam == 0.0
    assert DcAsgd.needs_base_weights
    with pytest.raises(StrategyError, match="needs the weights of the version"):
        strategy.merge(ModelState(f32(0)), update(f32(1), None))


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ParamError, match="server_lr"):
        DcAsgd(server_lr=0)
    with pytest.raises(ParamError, match="lam"):
        DcAsgd(lam=-1)
