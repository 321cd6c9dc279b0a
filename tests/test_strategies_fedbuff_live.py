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


def test_server_adam_worked_example_two_rounds() -> None:
    """FedAdam (Reddi et al. 2021, Algorithm 2) on each round's mean delta D, by hand with
    beta1 0.5, beta2 0.75, tau 2 (v starts at tau^2 = 4), server_lr 1:
    round 1 {a}: D = (2, -2); m = 0.5 D = (1, -1); v = 0.75 * 4 + 0.25 D^2 = (4, 4);
    x += m / (sqrt(v) + 2) = (0.25, -0.25).
    round 2 {b, a}: D = ((4, 0) + (0, 4)) / 2 = (2, 2); m = 0.5 (1, -1) + 0.5 (2, 2) = (1.5, 0.5);
    v = 0.75 * 4 + 0.25 * 4 = (4, 4); x += (1.5, 0.5) / 4 = (0.625, -0.125)."""
    model = ModelState(f32(0, 0), steps=10)
    strategy = FedBuffLive(server_optimizer="adam", server_lr=1.0, beta1=0.5, beta2=0.75, tau=2.0)
    v0 = model.weights.copy()
    assert strategy.merge(model, update("a", f32(2, -2), v0, base_steps=10)) is True
    np.testing.assert_array_equal(model.weights, f32(0.25, -0.25))
    assert model.steps == 20 and strategy.server_steps == 1
    v1 = model.weights.copy()
    assert strategy.merge(model, update("b", v0 + f32(4, 0), v0, staleness=1,
                                        base_steps=10)) is False
    np.testing.assert_array_equal(model.weights, v1)
    assert strategy.merge(model, update("a", v1 + f32(0, 4), v1, base_steps=20)) is True
    np.testing.assert_array_equal(model.weights, f32(0.625, -0.125))
    assert model.steps == 30 and strategy.server_steps == 2
    state = strategy.state()
    np.testing.assert_array_equal(state.arrays["momentum"], f32(1.5, 0.5))
    np.testing.assert_array_equal(state.arrays["second"], f32(4, 4))
    assert state.meta["server_steps"] == 2 and "delta_sum" not in state.arrays


def test_server_momentum_worked_example() -> None:
    """avgm, beta1 0.5, server_lr 1: round 1 D = (2, -2): m = D, x = (2, -2); round 2 D = (2, 2):
    m = 0.5 (2, -2) + (2, 2) = (3, 1), x = (5, -1)."""
    model = ModelState(f32(0, 0))
    strategy = FedBuffLive(server_optimizer="avgm", server_lr=1.0, beta1=0.5)
    v0 = model.weights.copy()
    strategy.merge(model, update("a", f32(2, -2), v0))
    v1 = model.weights.copy()
    strategy.merge(model, update("b", v0 + f32(4, 0), v0, staleness=1))
    strategy.merge(model, update("a", v1 + f32(0, 4), v1))
    np.testing.assert_array_equal(model.weights, f32(5, -1))
    assert set(strategy.state().arrays) == {"momentum"}


def test_no_server_optimizer_is_the_plain_step() -> None:
    """Unset and ``none`` are today's step, server_lr 0.5 by default, with no moments kept; the
    default server_lr follows the optimiser (fedopt's defaults) and is reported."""
    assert FedBuffLive().effective_params()["server_lr"] == 0.5
    named_none = create_strategy("fedbuff_live", {"server_optimizer": "none"})
    assert isinstance(named_none, FedBuffLive) and named_none.server_optimizer is None
    assert FedBuffLive(server_optimizer="adam").effective_params()["server_lr"] == 0.01
    assert FedBuffLive(server_optimizer="avgm").effective_params()["server_lr"] == 1.0
    plain, named = ModelState(f32(0, 0)), ModelState(f32(0, 0))
    a = FedBuffLive(server_lr=1.0)
    b = create_strategy("fedbuff_live", {"server_lr": "1", "server_optimizer": "none"})
    for model, strategy in ((plain, a), (named, b)):
        v0 = model.weights.copy()
        strategy.merge(model, update("a", f32(2, 0), v0))
        v1 = model.weights.copy()
        strategy.merge(model, update("b", f32(0, 4), v0, staleness=1))
        strategy.merge(model, update("a", v1 + f32(0, 0.5), v1))
        np.testing.assert_array_equal(model.weights, f32(2, 2.25))
        state = strategy.state()
        assert state.arrays == {} and state.meta["server_steps"] == 0


def test_server_adam_state_round_trips() -> None:
    """A checkpoint after one round (moments and an open round) resumes to the same weights."""
    model = ModelState(f32(0, 0))
    strategy = FedBuffLive(server_optimizer="adam", server_lr=1.0, beta1=0.5, beta2=0.75, tau=2.0)
    v0 = model.weights.copy()
    strategy.merge(model, update("a", f32(2, -2), v0))
    v1 = model.weights.copy()
    strategy.merge(model, update("b", v0 + f32(4, 0), v0, staleness=1))
    params = {"server_optimizer": "adam", "server_lr": "1", "beta1": "0.5", "beta2": "0.75",
              "tau": "2"}
    restored = create_strategy("fedbuff_live", params)
    restored.load_state(checkpoint(strategy.state()))
    for s in (strategy, restored):
        m = ModelState(v1.copy())
        assert s.merge(m, update("a", v1 + f32(0, 4), v1)) is True
        np.testing.assert_array_equal(m.weights, f32(0.625, -0.125))


def test_a_non_finite_server_step_keeps_the_moments() -> None:
    """A round whose D^2 overflows leaves v non-finite: the moments are restored (the server then
    rolls the model back and refuses the update) and the next round steps from them."""
    model = ModelState(f32(0, 0))
    strategy = FedBuffLive(server_optimizer="adam", server_lr=1.0, beta1=0.5, beta2=0.75, tau=2.0)
    strategy.merge(model, update("a", f32(2, -2), f32(0, 0)))
    before = strategy.state()
    model = ModelState(f32(0, 0), steps=5)
    with np.errstate(over="ignore"):
        assert strategy.merge(model, update("a", f32(3e38, 0), f32(0, 0), base_steps=5)) is True
    assert model.steps == 5
    after = strategy.state()
    np.testing.assert_array_equal(after.arrays["momentum"], before.arrays["momentum"])
    np.testing.assert_array_equal(after.arrays["second"], before.arrays["second"])
    assert after.meta["server_steps"] == 1


def test_server_steps_reuse_their_buffers() -> None:
    """The saved moments and adam's scratch are made once, not once per round: the buffers after
    a third round (one with an overflow rolled back among them) are the first round's."""
    strategy = FedBuffLive(server_optimizer="adam", server_lr=1.0, beta1=0.5, beta2=0.75, tau=2.0)
    strategy.merge(ModelState(f32(0, 0)), update("a", f32(2, -2), f32(0, 0)))
    first = [id(buffer) for buffer in strategy._spare]
    assert len(first) == 3
    with np.errstate(over="ignore"):
        strategy.merge(ModelState(f32(0, 0)), update("a", f32(3e38, 0), f32(0, 0)))
    strategy.merge(ModelState(f32(0, 0)), update("a", f32(1, 1), f32(0, 0)))
    assert [id(buffer) for buffer in strategy._spare] == first and strategy.server_steps == 2


def test_server_optimizer_parameters_and_state_are_checked() -> None:
    with pytest.raises(ParamError, match="server_optimizer"):
        create_strategy("fedbuff_live", {"server_optimizer": "sgd"})
    with pytest.raises(ParamError, match="tau"):
        FedBuffLive(server_optimizer="adam", tau=0)
    with pytest.raises(ParamError, match="beta2"):
        create_strategy("fedbuff_live", {"server_optimizer": "adam", "beta2": "1.5"})
    with pytest.raises(ParamError, match="server_lr"):
        FedBuffLive(server_optimizer="adam", server_lr=0)
    plain = FedBuffLive()
    with pytest.raises(StrategyError, match=r"unknown arrays \['momentum'\]"):
        plain.load_state(StrategyState({"momentum": f32(0)}, {}))
    with pytest.raises(StrategyError, match="meta.server_steps is 3 but server_optimizer is none"):
        plain.load_state(StrategyState({}, {"server_steps": 3}))
    adam = FedBuffLive(server_optimizer="adam")
    with pytest.raises(StrategyError, match="arrays.second is missing"):
        adam.load_state(StrategyState({"momentum": f32(0)}, {"server_steps": 1}))
    with pytest.raises(StrategyError, match="arrays.second holds non-finite values"):
        adam.load_state(StrategyState({"momentum": f32(0), "second": f32(np.inf)},
                                      {"server_steps": 1}))
    with pytest.raises(StrategyError, match=r"arrays of different sizes \[1, 2\]"):
        adam.load_state(StrategyState({"momentum": f32(0), "second": f32(1, 1)},
                                      {"server_steps": 1}))
    with pytest.raises(StrategyError, match="meta.server_steps must be an integer >= 0"):
        adam.load_state(StrategyState({}, {"server_steps": -1}))
    assert adam.momentum is None and adam.server_steps == 0
