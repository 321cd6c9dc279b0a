"""Strategy state a restart or a small crowd must not weaken: the dp strategy's noise stream is
checkpointed (seeded) or drawn afresh (OS entropy), so a restart never replays noise; Krum and
multi-Krum never aggregate fewer than 2f + 3 rows (no silent fallback to a weaker rule)."""

from __future__ import annotations

import numpy as np
import pytest
from support.strategies import checkpoint

from webnn.merge import ModelState, ParamError, StrategyError, Update, create_strategy
from webnn.merge.robust import aggregate

DP = {"k": 2, "clip_norm": 1.0, "noise_multiplier": 1.0, "adaptive": False}


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(delta: np.ndarray, base: np.ndarray, client: str = "c-1") -> Update:
    return Update(weights=(base + delta).astype(np.float32), base_version=0, base_steps=0,
                  local_steps=1, staleness=0, client=client, base_weights=base.copy())


def flush(strategy, model: ModelState, rounds: int) -> None:
    """`rounds` flushes of two identical deltas each (the noise is what varies)."""
    for _ in range(rounds):
        for client in ("a", "b"):
            strategy.merge(model, update(f32(0.1, 0.1, 0.1), model.weights.copy(), client))


def test_a_seeded_dp_run_resumes_its_noise_stream_after_a_restart() -> None:
    params = {**DP, "noise_seed": 7}
    straight = create_strategy("dp", params)
    model = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(straight, model, 2)

    first = create_strategy("dp", params)
    resumed_model = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(first, resumed_model, 1)
    state = checkpoint(first.state())
    assert "rng" in state.meta
    restarted = create_strategy("dp", params)  # a new process: the generator starts at the seed
    restarted.load_state(state)
    flush(restarted, resumed_model, 1)
    # the same as never stopping: the second flush drew the stream's next noise, not its first
    np.testing.assert_array_equal(resumed_model.weights, model.weights)


def test_a_checkpoint_without_the_generator_state_does_not_replay_the_first_noise() -> None:
    params = {**DP, "noise_seed": 7}
    fresh = create_strategy("dp", params)
    first_noise = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(fresh, first_noise, 1)

    old = create_strategy("dp", params)
    old_model = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(old, old_model, 1)
    state = checkpoint(old.state())
    del state.meta["rng"]  # as written before the generator state was kept
    restarted = create_strategy("dp", params)
    restarted.load_state(state)
    after = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(restarted, after, 1)
    assert not np.array_equal(after.weights, first_noise.weights)


def test_unseeded_dp_keeps_no_generator_state_and_draws_fresh_noise() -> None:
    strategy = create_strategy("dp", DP)
    model = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(strategy, model, 1)
    state = checkpoint(strategy.state())
    assert "rng" not in state.meta  # nothing lets a checkpoint's reader predict the noise
    restarted = create_strategy("dp", DP)
    restarted.load_state(state)
    one, two = (ModelState(weights=np.zeros(3, dtype=np.float32)) for _ in range(2))
    flush(restarted, one, 1)
    again = create_strategy("dp", DP)
    again.load_state(state)
    flush(again, two, 1)
    assert not np.array_equal(one.weights, two.weights)


@pytest.mark.parametrize("bad", [{"bit_generator": "MT19937", "state": {}}, "x", [1, 2],
                                 {"bit_generator": "PCG64", "state": {"state": "1", "inc": 1}}])
def test_a_bad_generator_state_is_refused_and_changes_nothing(bad) -> None:
    params = {**DP, "noise_seed": 7}
    strategy = create_strategy("dp", params)
    model = ModelState(weights=np.zeros(3, dtype=np.float32))
    flush(strategy, model, 1)
    state = checkpoint(strategy.state())
    target = create_strategy("dp", params)
    before = target.rng.bit_generator.state
    state.meta["rng"] = bad
    with pytest.raises(StrategyError, match="meta.rng"):
        target.load_state(state)
    assert target.rng.bit_generator.state == before and target.flushes == 0


# ----------------------------------------------------------------------------------- Krum


@pytest.mark.parametrize("aggregator", ["krum", "multi_krum"])
def test_krum_with_too_small_a_buffer_is_refused(aggregator: str) -> None:
    with pytest.raises(ParamError, match=r"needs k >= 2f \+ 3 = 5"):
        create_strategy("robust", {"aggregator": aggregator, "k": 4, "f": 1})
    with pytest.raises(ParamError, match=r"2f \+ 3 = 7"):
        create_strategy("robust", {"aggregator": aggregator, "k": 6, "f": 2})
    create_strategy("robust", {"aggregator": aggregator, "k": 5, "f": 1})
    with pytest.raises(ValueError, match="at least 2f"):
        aggregate(aggregator, np.ones((2, 3), dtype=np.float32), np.empty(3, np.float32), f=0)


def test_krum_waits_for_2f_plus_3_distinct_clients_instead_of_a_weaker_rule() -> None:
    """k = 7, f = 2, min_clients = 3: two colluders with close deltas and one honest client fill
    the buffer. The old rule lowered f to 0 over 3 rows and the colluders' pair won; now the
    buffer waits for 7 distinct clients, and then the honest majority wins."""
    strategy = create_strategy("robust", {"aggregator": "krum", "k": 7, "f": 2,
                                          "min_clients": 3})
    base = np.zeros(2, dtype=np.float32)
    model = ModelState(weights=base.copy())
    evil = f32(50, -50)
    for i in range(6):  # 7 deltas from 3 clients: the buffer is full but holds 3 rows
        client = ("evil-1", "evil-2", "honest-0")[i % 3]
        delta = evil if client.startswith("evil") else f32(1, 1)
        assert not strategy.merge(model, update(delta, base, client))
    assert not strategy.merge(model, update(evil, base, "evil-1"))
    assert strategy.count == 7 and len(strategy._clients) == 3
    np.testing.assert_array_equal(model.weights, base)  # not moved
    for i in range(1, 4):  # honest clients 1..3: rows 4..6, still short of 7
        assert not strategy.merge(model, update(f32(1, 1.01 * i), base, f"honest-{i}"))
    assert strategy.merge(model, update(f32(1.02, 1), base, "honest-4"))  # the 7th client
    assert abs(model.weights[0] - 1) < 0.1 and abs(model.weights[1] - 1) < 0.1, model.weights
