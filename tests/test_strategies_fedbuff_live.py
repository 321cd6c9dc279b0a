"""fedbuff_live: rounds of one delta per live client; a round closes when every client of the last
round has contributed or one repeats. Worked examples computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from support.strategies import checkpoint

from webnn.merge import (
    ModelState,
    ParamError,
    StrategyError,
    StrategyState,
    Update,
    create_strategy,
)
from webnn.merge.fedbuff_live import FedBuffLive


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(client: str, weights: np.ndarray, base: np.ndarray, staleness: int = 0,
           base_steps: int = 0) -> Update:
    return Update(weights=weights.copy(), base_version=0, base_steps=base_steps, local_steps=10,
                  staleness=staleness, client=client, base_weights=base.copy())


def test_worked_example_two_clients_then_one_leaves() -> None:
    model = ModelState(f32(0, 0, 0))
    strategy = FedBuffLive(server_lr=1.0)  # constant weights by default
    v0 = model.weights.copy()
    # a1: delta (2, 0, 0); no previous round, so the round {a} closes at once: x = (2, 0, 0)
    assert strategy.merge(model, update("a", f32(2, 0, 0), v0)) is True
    np.testing.assert_array_equal(model.weights, f32(2, 0, 0))
    v1 = model.weights.copy()
    # b1 from v0: delta (0, 4, 0); the previous round {a} is not complete: buffered
    assert strategy.merge(model, update("b", f32(0, 4, 0), v0, staleness=1)) is False
    np.testing.assert_array_equal(model.weights, v1)
    # a2 from v1: delta (0, 0, 2); {b, a} covers {a}: x = (2,0,0) + ((0,4,0) + (0,0,2)) / 2
    assert strategy.merge(model, update("a", f32(2, 0, 2), v1)) is True
    np.testing.assert_array_equal(model.weights, f32(2, 2, 1))
    assert strategy.report() == {"liveClients": 2}
    v2 = model.weights.copy()
    # b has left. a3 from v2: delta (1, 0, 0); {a} does not cover {b, a}: buffered
    assert strategy.merge(model, update("a", f32(3, 2, 1), v2)) is False
    # a4 from v2: a repeats, so the round {a} closes first: x = (2,2,1) + (1,0,0) = (3,2,1);
    # a4 opens the next round, which covers the last one ({a}) and closes too: + (0,0,2)
    assert strategy.merge(model, update("a", f32(2, 2, 3), v2, staleness=0)) is True
    np.testing.assert_array_equal(model.weights, f32(3, 2, 3))
    assert strategy.report() == {"liveClients": 1}


def test_server_lr_staleness_weights_and_steps() -> None:
    model = ModelState(f32(1, 1), steps=30)
    strategy = FedBuffLive(server_lr=0.5, staleness_fn="polynomial", a=1.0)
    base = model.weights.copy()
    assert strategy.merge(model, update("a", f32(3, 1), base, base_steps=30)) is True
    np.testing.assert_allclose(model.weights, f32(2, 1))  # 1 + 0.5 * 2 * s(0) / 1
    assert model.steps == 40
    after = model.weights.copy()
    # b from the first base, 1 version stale: s = 1/2; a fresh: s = 1; round {b, a} closes
    assert strategy.merge(model, update("b", f32(1, 5), base, staleness=1, base_steps=30)) is False
    assert strategy.merge(model, update("a", f32(2, 3), after, base_steps=40)) is True
    # x = (2, 1) + 0.5 * ((0, 4) * 1/2 + (0, 2) * 1) / 2 = (2, 2)
    np.testing.assert_allclose(model.weights, f32(2, 2))
    assert model.steps == 50


def test_one_client_with_half_server_lr_is_average() -> None:
    """With one client every update is fresh and closes its round: x += 0.5 (w - x), which is
    `average` (W_n = (W_{n-1} + W_p) / 2)."""
    rng = np.random.default_rng(0)
    live, average = ModelState(f32(0, 0, 0, 0)), ModelState(f32(0, 0, 0, 0))
    a, b = FedBuffLive(), create_strategy("average", {})  # server_lr 0.5 by default
    for _ in range(5):
        w = (live.weights + rng.normal(size=4)).astype(np.float32)
        assert a.merge(live, update("c", w, live.weights))
        b.merge(average, update("c", w, average.weights))
        live.version += 1
        average.version += 1
    np.testing.assert_allclose(live.weights, average.weights, rtol=1e-6)


def test_state_round_trips_mid_round() -> None:
    model = ModelState(f32(0, 0))
    strategy = FedBuffLive(server_lr=1.0)
    base = model.weights.copy()
    strategy.merge(model, update("a", f32(1, 0), base))
    after = model.weights.copy()
    strategy.merge(model, update("b", f32(0, 2), base, staleness=1))
    restored = FedBuffLive(server_lr=1.0)
    restored.load_state(checkpoint(strategy.state()))
    for s in (strategy, restored):
        m = ModelState(after.copy())
        assert s.merge(m, update("a", f32(1, 2), after)) is True
        np.testing.assert_allclose(m.weights, f32(1, 2))  # (1,0) + ((0,2) + (0,2)) / 2


def test_bad_parameters_and_state_are_refused() -> None:
    with pytest.raises(ParamError, match="server_lr"):
        FedBuffLive(server_lr=0)
    strategy = FedBuffLive()
    with pytest.raises(StrategyError, match="meta.round must be a list of client names"):
        strategy.load_state(StrategyState({}, {"round": "a"}))
    with pytest.raises(StrategyError, match="arrays.delta_sum is missing"):
        strategy.load_state(StrategyState({}, {"round": ["a"]}))
    with pytest.raises(StrategyError, match="names a client twice"):
        strategy.load_state(StrategyState({"delta_sum": f32(0)}, {"round": ["a", "a"]}))
    model = ModelState(f32(0, 0))
    with pytest.raises(StrategyError, match="needs the weights of the version"):
        strategy.merge(model, Update(f32(1, 1), 0, 0, 1, 0, "a"))
    assert strategy.round == [] and strategy.previous == []


def test_usable_by_reference() -> None:
    strategy = create_strategy("webnn.merge.fedbuff_live:FedBuffLive", {"server_lr": "0.5"})
    assert isinstance(strategy, FedBuffLive) and strategy.server_lr == 0.5
