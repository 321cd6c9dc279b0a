"""FedBuff: K staleness-weighted deltas buffered in an accumulator, then one step of their mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.strategies import checkpoint

from webnn.merge import ModelState, StrategyError, StrategyState, Update, create_strategy
from webnn.merge.fedbuff import FedBuff


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(weights: np.ndarray, base: np.ndarray, staleness: int = 0, base_steps: int = 0,
           local_steps: int = 5) -> Update:
    return Update(weights=weights.copy(), base_version=0, base_steps=base_steps,
                  local_steps=local_steps, staleness=staleness, client="c",
                  base_weights=base.copy())


def test_three_updates_make_one_version_equal_to_the_weighted_mean() -> None:
    base = f32(1, 1, 1)
    model = ModelState(base.copy(), steps=20)
    strategy = FedBuff(k=3, server_lr=1.0, normalize="weights")
    # deltas (1, 0, 2), (2, 2, 0), (0, 4, 4) at staleness 0, 1, 3 -> s = 1, 1/sqrt(2), 1/2
    assert strategy.merge(model, update(f32(2, 1, 3), base, 0, base_steps=20)) is False
    assert np.array_equal(model.weights, base)
    assert strategy.merge(model, update(f32(3, 3, 1), base, 1, base_steps=15)) is False
    assert np.array_equal(model.weights, base)
    assert strategy.merge(model, update(f32(1, 5, 5), base, 3, base_steps=10)) is True
    s = [1.0, 1 / math.sqrt(2), 0.5]
    deltas = [(1, 0, 2), (2, 2, 0), (0, 4, 4)]
    expected = [1 + sum(s[i] * deltas[i][j] for i in range(3)) / sum(s) for j in range(3)]
    np.testing.assert_allclose(model.weights, expected, rtol=1e-6)
    assert model.steps == 25  # max(20, 20 + 5, 15 + 5, 10 + 5)


def test_the_default_is_the_papers_form_where_staleness_damps_the_step() -> None:
    # two updates 3 versions stale, each delta (2, 0): s = 1/sqrt(4) = 1/2, so the step is
    # (1/2 * 2 + 1/2 * 2) / K = 1; the weights form would give (1 + 1) / (1/2 + 1/2) = 2
    base = f32(0, 0)
    model = ModelState(base.copy())
    strategy = FedBuff(k=2)
    assert strategy.normalize == "count"
    strategy.merge(model, update(f32(2, 0), base, 3))
    strategy.merge(model, update(f32(2, 0), base, 3))
    np.testing.assert_allclose(model.weights, f32(1, 0))


def test_normalize_count_divides_by_k_and_server_lr_scales() -> None:
    base = f32(0, 0)
    model = ModelState(base.copy())
    strategy = FedBuff(k=2, server_lr=0.5, normalize="count", staleness_fn="constant")
    strategy.merge(model, update(f32(2, 4), base))
    strategy.merge(model, update(f32(6, 0), base))
    np.testing.assert_allclose(model.weights, f32(2, 1))  # 0.5 * ((2, 4) + (6, 0)) / 2


def test_a_version_every_k_updates_and_none_in_between() -> None:
    rng = np.random.default_rng(3)
    model = ModelState(np.zeros(50, dtype=np.float32))
    strategy = FedBuff(k=4)
    changed = []
    for i in range(13):
        before = model.weights.copy()
        base = model.weights.copy()
        merged = strategy.merge(model, update(base + rng.standard_normal(50).astype(np.float32),
                                              base, staleness=i % 3))
        changed.append(merged)
        assert merged == (not np.array_equal(before, model.weights))
    assert [i + 1 for i, c in enumerate(changed) if c] == [4, 8, 12]


def test_deltas_are_relative_to_each_clients_base() -> None:
    # two clients started from different versions; only their progress counts
    model = ModelState(f32(10, 10))
    strategy = FedBuff(k=2, staleness_fn="constant")
    strategy.merge(model, update(f32(6, 5), f32(5, 5)))   # delta (1, 0)
    strategy.merge(model, update(f32(9, 12), f32(9, 9)))  # delta (0, 3)
    np.testing.assert_allclose(model.weights, f32(10.5, 11.5))


def test_the_buffer_is_one_accumulator_not_k_copies() -> None:
    base = np.zeros(100, dtype=np.float32)
    strategy = FedBuff(k=10)
    model = ModelState(base.copy())
    for _ in range(5):
        strategy.merge(model, update(base + 1, base))
    state = strategy.state()
    assert list(state.arrays) == ["delta_sum"]
    assert state.arrays["delta_sum"].shape == (100,)
    assert state.meta["count"] == 5


def test_half_full_buffer_survives_a_restart() -> None:
    rng = np.random.default_rng(7)
    initial = rng.standard_normal(64).astype(np.float32)
    stream = [(rng.standard_normal(64).astype(np.float32), i % 4, 10 * i) for i in range(7)]

    def feed(strategy: FedBuff, model: ModelState, items: list) -> list[bool]:
        return [strategy.merge(model, update(initial + d, initial, st, base_steps=bs))
                for d, st, bs in items]

    straight = ModelState(initial.copy())
    uninterrupted = FedBuff(k=5, staleness_fn="hinge", a=1, b=1)
    results = feed(uninterrupted, straight, stream)

    first = FedBuff(k=5, staleness_fn="hinge", a=1, b=1)
    resumed_model = ModelState(initial.copy())
    before = feed(first, resumed_model, stream[:3])
    saved = checkpoint(first.state())
    fresh = FedBuff(k=5, staleness_fn="hinge", a=1, b=1)
    fresh.load_state(saved)
    after = feed(fresh, resumed_model, stream[3:])

    assert before + after == results == [False] * 4 + [True, False, False]
    assert np.array_equal(resumed_model.weights, straight.weights)
    assert resumed_model.steps == straight.steps
    assert fresh.state().meta == uninterrupted.state().meta
    assert np.array_equal(fresh.state().arrays["delta_sum"],
                          uninterrupted.state().arrays["delta_sum"])


def test_empty_state_after_a_flush_and_loading_it_clears_the_buffer() -> None:
    base = f32(0)
    strategy = FedBuff(k=1)
    strategy.merge(ModelState(base.copy()), update(f32(1), base))
    state = strategy.state()
    assert state.arrays == {} and state.meta["count"] == 0
    other = FedBuff(k=3)
    other.merge(ModelState(base.copy()), update(f32(1), base))
    other.load_state(state)
    model = ModelState(base.copy())
    assert [other.merge(model, update(f32(3), base)) for _ in range(3)] == [False, False, True]
    np.testing.assert_allclose(model.weights, f32(3))


def test_bad_state_is_refused_with_the_field_named() -> None:
    strategy = FedBuff()
    with pytest.raises(StrategyError, match="meta.count is 2 but arrays.delta_sum is missing"):
        strategy.load_state(StrategyState({}, {"count": 2, "weight_total": 1.0}))
    with pytest.raises(StrategyError, match="meta.weight_total must be a finite number"):
        strategy.load_state(StrategyState({}, {"count": 0, "weight_total": -1}))
    with pytest.raises(StrategyError, match="delta_sum must be a flat float32 array"):
        strategy.load_state(StrategyState({"delta_sum": np.zeros((2, 2))}, {"count": 1}))
    with pytest.raises(StrategyError, match=r"unknown arrays \['deltas'\]"):
        strategy.load_state(StrategyState({"deltas": np.zeros(2, np.float32)}, {}))


def test_an_update_without_base_weights_is_a_clear_error() -> None:
    strategy = FedBuff()
    assert FedBuff.needs_base_weights is True
    bare = Update(weights=f32(1), base_version=3, base_steps=0, local_steps=1, staleness=0,
                  client="c9")
    with pytest.raises(StrategyError, match=r"update from 'c9' \(base version 3\) has none"):
        strategy.merge(ModelState(f32(0)), bare)


def test_params_from_strings_and_bad_values() -> None:
    strategy = create_strategy("fedbuff", {"k": "3", "server_lr": "0.5",
                                           "staleness_fn": "constant", "normalize": "count"})
    assert (strategy.k, strategy.server_lr, strategy.normalize) == (3, 0.5, "count")
    with pytest.raises(StrategyError, match="server_lr must be > 0"):
        FedBuff(server_lr=0)
    with pytest.raises(StrategyError, match="strategy.fedbuff.k: must be >= 1"):
        create_strategy("fedbuff", {"k": "0"})
