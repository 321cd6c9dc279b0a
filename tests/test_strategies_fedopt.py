"""FedAvgM, FedAdam and FedYogi on buffered deltas (strategy ``fedopt``) against worked examples
computed by hand from Reddi et al. 2021, Algorithm 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.strategies import checkpoint

from webnn.merge import ModelState, ParamError, StrategyError, Update, create_strategy


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(delta: np.ndarray, base: np.ndarray, staleness: int = 0) -> Update:
    return Update(weights=(base + delta).astype(np.float32), base_version=0, base_steps=0,
                  local_steps=5, staleness=staleness, client="c-1", base_weights=base.copy())


def step(strategy, model: ModelState, *deltas: np.ndarray) -> bool:
    base = model.weights.copy()
    return [strategy.merge(model, update(d, base)) for d in deltas][-1]


def test_avgm_accumulates_momentum() -> None:
    strategy = create_strategy("fedopt", {"optimizer": "avgm", "k": 2, "beta1": 0.5})
    model = ModelState(weights=f32(0, 0))
    assert not strategy.merge(model, update(f32(1, 0), model.weights.copy()))
    assert step(strategy, model, f32(3, 2))  # D = mean((1,0), (3,2)) = (2, 1); m = D; x = m
    np.testing.assert_allclose(model.weights, f32(2, 1))
    step(strategy, model, f32(0, 0), f32(0, 0))  # D = 0: m = 0.5 m = (1, 0.5); x += m
    np.testing.assert_allclose(model.weights, f32(3, 1.5))


def test_adam_first_step_by_hand() -> None:
    # k=1, D = (0.1, -0.2); m = 0.1 D; v = 0.99 tau^2 + 0.01 D^2; x = eta m / (sqrt(v) + tau)
    tau, eta = 1e-3, 0.01
    strategy = create_strategy("fedopt", {"optimizer": "adam", "k": 1})
    model = ModelState(weights=f32(0, 0))
    d = np.array([0.1, -0.2])
    step(strategy, model, d.astype(np.float32))
    m = 0.1 * d
    v = 0.99 * tau ** 2 + 0.01 * d ** 2
    np.testing.assert_allclose(model.weights, eta * m / (np.sqrt(v) + tau), rtol=1e-5)


def test_yogi_second_moment_moves_additively() -> None:
    # v0 = tau^2 < D^2: yogi adds (1 - beta2) D^2, adam would give 0.99 tau^2 + 0.01 D^2
    tau = 1e-3
    yogi = create_strategy("fedopt", {"optimizer": "yogi", "k": 1})
    model = ModelState(weights=f32(0))
    step(yogi, model, f32(0.5))
    assert yogi.second[0] == pytest.approx(tau ** 2 + 0.01 * 0.25, rel=1e-5)
    # then D = 0: sign(v - 0) = 1, v -= 0: unchanged; adam would decay it by beta2
    step(yogi, model, f32(0))
    assert yogi.second[0] == pytest.approx(tau ** 2 + 0.01 * 0.25, rel=1e-5)


def test_staleness_weighting_scales_deltas() -> None:
    strategy = create_strategy("fedopt", {"optimizer": "avgm", "k": 1, "beta1": 0,
                                          "staleness_fn": "polynomial", "a": 1})
    model = ModelState(weights=f32(0))
    strategy.merge(model, update(f32(3), model.weights.copy(), staleness=2))  # s = 1/3
    np.testing.assert_allclose(model.weights, f32(1))


def test_state_round_trip_continues_identically() -> None:
    params = {"optimizer": "yogi", "k": 2}
    first, second = create_strategy("fedopt", params), create_strategy("fedopt", params)
    model_a = ModelState(weights=f32(0, 0, 0))
    step(first, model_a, f32(0.1, 0.2, 0.3), f32(0.3, 0.2, 0.1))
    first.merge(model_a, update(f32(1, 1, 1), model_a.weights.copy()))  # one buffered
    second.load_state(checkpoint(first.state()))
    model_b = ModelState(weights=model_a.weights.copy())
    base = model_a.weights.copy()
    first.merge(model_a, update(f32(-0.2, 0, 0.2), base))
    second.merge(model_b, update(f32(-0.2, 0, 0.2), base))
    np.testing.assert_array_equal(model_a.weights, model_b.weights)
    assert math.isfinite(float(model_a.weights.sum()))


def test_bad_parameters_and_state() -> None:
    with pytest.raises(ParamError, match="optimizer"):
        create_strategy("fedopt", {"optimizer": "sgd"})
    with pytest.raises(ParamError, match="tau must be > 0"):
        create_strategy("fedopt", {"optimizer": "adam", "tau": 0})
    strategy = create_strategy("fedopt", {"optimizer": "avgm"})
    from webnn.merge import StrategyState
    with pytest.raises(StrategyError, match="unknown arrays \\['second'\\]"):
        strategy.load_state(StrategyState({"second": f32(1)}, {}))
    with pytest.raises(StrategyError, match="server_steps is not 0 but arrays.momentum"):
        strategy.load_state(StrategyState({}, {"server_steps": 3}))
    adam = create_strategy("fedopt", {"optimizer": "adam"})
    with pytest.raises(StrategyError, match="arrays.second is missing"):
        adam.load_state(StrategyState({"momentum": f32(0)}, {"server_steps": 3}))


@pytest.mark.parametrize("optimizer", ["avgm", "adam", "yogi"])
def test_a_server_step_makes_no_model_sized_temporary(optimizer: str) -> None:
    import tracemalloc

    n = 1 << 20  # 4 MiB of float32
    strategy = create_strategy("fedopt", {"optimizer": optimizer, "k": 1})
    model = ModelState(weights=np.zeros(n, dtype=np.float32))
    step(strategy, model, np.full(n, 0.1, dtype=np.float32))  # allocates m, v and the sum
    base = model.weights.copy()
    incoming = update(np.full(n, 0.2, dtype=np.float32), base)
    tracemalloc.start()
    try:
        assert strategy.merge(model, incoming)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n  # well under the 4 MiB of one model copy


@pytest.mark.parametrize("optimizer", ["avgm", "adam", "yogi"])
def test_an_overflowing_step_leaves_the_moments_as_they_were(optimizer: str) -> None:
    """Two finite but huge deltas overflow the mean's step; the moments are restored (the server
    rolls the model back), and the next honest buffer steps as if the bad one never came."""
    params = {"optimizer": optimizer, "k": 2}
    strategy, reference = create_strategy("fedopt", params), create_strategy("fedopt", params)
    model, clean = ModelState(weights=f32(0, 0)), ModelState(weights=f32(0, 0))
    step(strategy, model, f32(0.1, 0.2), f32(0.3, 0.1))
    step(reference, clean, f32(0.1, 0.2), f32(0.3, 0.1))
    before = model.weights.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        assert step(strategy, model, f32(3e38, 3e38), f32(3e38, 3e38))
    assert not np.isfinite(model.weights).all()  # what the server then rolls back
    model.weights[...] = before
    assert np.isfinite(strategy.momentum).all()
    assert strategy.server_steps == 1 and strategy.count == 0
    step(strategy, model, f32(0.2, -0.1), f32(0.0, 0.1))
    step(reference, clean, f32(0.2, -0.1), f32(0.0, 0.1))
    np.testing.assert_array_equal(model.weights, clean.weights)
