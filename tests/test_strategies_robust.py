"""Robust aggregation: coordinate median, trimmed mean, clipping (fixed, adaptive), buffer state."""

from __future__ import annotations

import uuid

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
from webnn.merge.robust import Robust, coordinate_median, mean, trim_count, trimmed_mean


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(delta: np.ndarray, base: np.ndarray, base_steps: int = 0,
           client: str | None = None) -> Update:
    """An update of `delta` from `base`; each from its own client unless `client` is given."""
    return Update(weights=(base + delta).astype(np.float32), base_version=0,
                  base_steps=base_steps, local_steps=5, staleness=0,
                  client=client or f"c-{uuid.uuid4().hex[:8]}", base_weights=base.copy())


def test_trim_count_is_floor_of_trim_times_k_but_at_least_one() -> None:
    assert trim_count(5, 0.2) == 1
    assert trim_count(10, 0.1) == 1
    assert trim_count(10, 0.15) == 1
    assert trim_count(20, 0.15) == 3
    assert trim_count(100, 0.29) == 29  # 0.29 * 100 is 28.999999999999996 in floating point
    assert trim_count(4, 0.0) == 0
    # fewer rows than 1/trim: a bare floor would trim nothing (a plain mean)
    assert trim_count(4, 0.1) == 1
    assert trim_count(3, 0.1) == 1
    # one value always survives
    assert trim_count(2, 0.1) == 0
    assert trim_count(1, 0.4) == 0
    assert trim_count(5, 0.45) == 2
    with pytest.raises(ValueError, match=r"trim must be in \[0, 0.5\), got 0.5"):
        trim_count(10, 0.5)


def test_coordinate_median_odd_and_even() -> None:
    stack = np.array([[1, 9, -3], [5, 2, 0], [3, 4, 8]], dtype=np.float32)
    out = np.empty(3, dtype=np.float32)
    coordinate_median(stack, out)
    assert np.array_equal(out, f32(3, 4, 0))
    stack = np.array([[1, 9], [5, 2], [3, 4], [10, 0]], dtype=np.float32)
    coordinate_median(stack, out[:2])
    assert np.array_equal(out[:2], f32(4, 3))  # (3 + 5) / 2, (2 + 4) / 2


def test_trimmed_mean_k5_trim_02_drops_one_at_each_end() -> None:
    stack = np.array([[1, 0], [2, 0], [3, 0], [4, 0], [100, 30]], dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    trimmed_mean(stack, 0.2, out)
    np.testing.assert_allclose(out, f32(3, 0))  # (2 + 3 + 4) / 3, (0 + 0 + 0) / 3
    stack = np.array([[1, 0], [2, 0], [3, 0], [4, 0], [100, 30]], dtype=np.float32)
    trimmed_mean(stack, 0.0, out)  # g = 0: the plain mean
    np.testing.assert_allclose(out, f32(22, 6))


def test_trimmed_mean_trims_a_buffer_smaller_than_one_over_trim() -> None:
    # 4 clients at the default trim 0.1: floor(0.4) = 0 would average the outlier in
    stack = np.array([[1, -50], [2, 0], [3, 1], [100, 2]], dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    trimmed_mean(stack, 0.1, out)
    np.testing.assert_allclose(out, f32(2.5, 0.5))  # (2 + 3) / 2, (0 + 1) / 2


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean"])
def test_robust_aggregators_ignore_a_single_wild_update(aggregator: str) -> None:
    rng = np.random.default_rng(11)
    base = np.zeros(200, dtype=np.float32)
    honest = [1.0 + 0.01 * rng.standard_normal(200).astype(np.float32) for _ in range(4)]
    wild = np.full(200, 1e6, dtype=np.float32)

    def run(name: str) -> np.ndarray:
        model = ModelState(base.copy())
        strategy = Robust(aggregator=name, k=5, trim=0.2)
        results = [strategy.merge(model, update(d, base)) for d in [*honest[:2], wild, *honest[2:]]]
        assert results == [False, False, False, False, True]
        return model.weights

    assert np.all(np.abs(run(aggregator) - 1.0) < 0.05)
    assert np.all(run("mean") > 1e5)  # the plain mean is dragged away by the same update


def test_robust_median_step_is_hand_computed_and_scaled_by_server_lr() -> None:
    base = f32(10, 10)
    model = ModelState(base.copy(), steps=7)
    strategy = Robust(aggregator="median", k=3, server_lr=0.5)
    for delta, base_steps in (((1, -2), 3), ((4, 0), 9), ((2, 6), 1)):
        strategy.merge(model, update(f32(*delta), base, base_steps))
    np.testing.assert_allclose(model.weights, f32(11, 10))  # 10 + 0.5 * (2, 0)
    assert model.steps == 14  # max(7, 9 + 5)


def test_mean_aggregator() -> None:
    stack = np.array([[1, 2], [3, 6]], dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    mean(stack, out)
    np.testing.assert_allclose(out, f32(2, 4))


def test_fixed_clipping_bounds_each_delta_norm() -> None:
    base = np.zeros(3, dtype=np.float32)
    model = ModelState(base.copy())
    strategy = Robust(aggregator="mean", k=1, clip="fixed", clip_norm=2.0)
    strategy.merge(model, update(f32(3, 4, 0), base))  # norm 5 -> scaled to 2
    np.testing.assert_allclose(model.weights, f32(1.2, 1.6, 0), rtol=1e-6)
    model.weights[:] = 0
    strategy.merge(model, update(f32(1, 1, 0), base))  # norm sqrt(2) < 2: unchanged
    np.testing.assert_allclose(model.weights, f32(1, 1, 0))
    assert strategy.clipped == 1


def buffered_norms(strategy: Robust) -> list[float]:
    deltas = strategy.state().arrays.get("deltas", np.zeros((0, 1), np.float32))
    return [float(np.linalg.norm(row)) for row in deltas]


def test_adaptive_clipping_follows_the_quantile_of_recent_norms() -> None:
    base = np.zeros(2, dtype=np.float32)
    model = ModelState(base.copy())
    strategy = Robust(aggregator="mean", k=20, clip="adaptive", clip_quantile=0.5,
                      clip_factor=1.0, clip_window=3, clip_min_history=3)
    for norm in (1.0, 3.0, 2.0):  # no bound before three norms are seen
        strategy.merge(model, update(f32(norm, 0), base))
    assert strategy.clip_bound() == pytest.approx(2.0)  # median of 1, 3, 2
    strategy.merge(model, update(f32(0, 10), base))  # clipped to 2
    assert buffered_norms(strategy) == pytest.approx([1, 3, 2, 2])
    # the window now holds 3, 2, 10 (raw norms): median 3
    assert strategy.clip_bound() == pytest.approx(3.0)
    strategy.merge(model, update(f32(6, 8), base))  # norm 10 -> 3, direction kept
    np.testing.assert_allclose(strategy.state().arrays["deltas"][-1], f32(1.8, 2.4), rtol=1e-6)
    # the window now holds 2, 10, 10: median 10
    assert strategy.clip_bound() == pytest.approx(10.0)

    high = Robust(k=20, clip="adaptive", clip_quantile=1.0, clip_factor=2.0, clip_min_history=2)
    for norm in (1.0, 3.0):
        high.merge(model, update(f32(norm, 0), base))
    assert high.clip_bound() == pytest.approx(6.0)  # 2 * max(1, 3)


def test_half_full_buffer_with_adaptive_norms_survives_a_restart() -> None:
    rng = np.random.default_rng(5)
    initial = rng.standard_normal(40).astype(np.float32)
    deltas = [rng.standard_normal(40).astype(np.float32) * (1 + i % 3) for i in range(9)]
    params = {"aggregator": "trimmed_mean", "k": 6, "trim": 0.2, "clip": "adaptive",
              "clip_window": 4, "clip_min_history": 2}

    straight = ModelState(initial.copy())
    uninterrupted = Robust(**params)
    expected = [uninterrupted.merge(straight, update(d, initial, 10 * i, client=f"c{i}"))
                for i, d in enumerate(deltas)]

    model = ModelState(initial.copy())
    first = Robust(**params)
    got = [first.merge(model, update(d, initial, 10 * i, client=f"c{i}"))
           for i, d in enumerate(deltas[:4])]
    fresh = Robust(**params)
    fresh.load_state(checkpoint(first.state()))
    got += [fresh.merge(model, update(d, initial, 10 * (i + 4), client=f"c{i + 4}"))
            for i, d in enumerate(deltas[4:])]

    assert got == expected == [False] * 5 + [True] + [False] * 3
    assert np.array_equal(model.weights, straight.weights)
    assert model.steps == straight.steps
    assert fresh.state().meta == uninterrupted.state().meta
    assert np.array_equal(fresh.state().arrays["deltas"], uninterrupted.state().arrays["deltas"])


def test_bad_state_is_refused() -> None:
    strategy = Robust(k=3)
    with pytest.raises(StrategyError, match=r"meta.count is 2 in 2 rows, so arrays.deltas must"):
        strategy.load_state(StrategyState({}, {"count": 2}))
    with pytest.raises(StrategyError, match="3 buffered deltas in 3 rows need k > 3"):
        strategy.load_state(StrategyState({"deltas": np.zeros((3, 4), np.float32)}, {"count": 3}))
    with pytest.raises(StrategyError, match="meta.clients and meta.counts must list each row"):
        strategy.load_state(StrategyState({"deltas": np.zeros((1, 4), np.float32)},
                                          {"count": 2, "clients": ["a"], "counts": [1]}))
    with pytest.raises(StrategyError, match="meta.norms must be a list"):
        strategy.load_state(StrategyState({}, {"norms": [1, float("nan")]}))


def test_params_and_their_errors() -> None:
    strategy = create_strategy("robust", {"aggregator": "trimmed_mean", "k": "5", "trim": "0.2",
                                          "clip": "none"})
    assert (strategy.aggregator, strategy.k, strategy.trim, strategy.clip) == (
        "trimmed_mean", 5, 0.2, None)
    assert Robust.needs_base_weights is True
    cases = [({"clip": "fixed"}, "clip_norm"),
             ({"clip_norm": 3.0}, "clip_norm"),
             ({"aggregator": "mode"}, "aggregator"),
             ({"clip": "sometimes"}, "clip"),
             ({"trim": 0.5}, "trim"),
             ({"clip": "adaptive", "clip_window": 5, "clip_min_history": 6}, "clip_min_history"),
             ({"server_lr": 0}, "server_lr")]
    for params, bad in cases:
        with pytest.raises(ParamError) as caught:
            Robust(**params)
        assert caught.value.param == bad, params


def test_update_without_base_weights_is_a_clear_error() -> None:
    bare = Update(weights=f32(1), base_version=2, base_steps=0, local_steps=1, staleness=0,
                  client="c3")
    with pytest.raises(StrategyError, match="strategy 'robust' needs the weights"):
        Robust().merge(ModelState(f32(0)), bare)


def test_a_fast_client_counts_once_per_buffer() -> None:
    """3 of K=5 deltas from one hostile client: per client (default) the median stays honest;
    counted per update, the hostile client owns the median."""
    base = np.zeros(4, dtype=np.float32)
    honest, wild = f32(1, 1, 1, 1), f32(1e3, -1e3, 1e3, -1e3)

    def run(per_client: bool) -> np.ndarray:
        model = ModelState(base.copy())
        strategy = create_strategy("robust", {"k": 5, "per_client": per_client})
        sends = [(wild, "mallory"), (honest, "alice"), (wild, "mallory"), (honest, "bob"),
                 (wild, "mallory")]
        merged = [strategy.merge(model, update(d, base, client=c)) for d, c in sends]
        assert merged == [False] * 4 + [True]
        return model.weights

    # clients: mallory (mean of her 3 = wild), alice, bob -> median per coordinate = honest
    np.testing.assert_array_equal(run(per_client=True), honest)
    np.testing.assert_array_equal(run(per_client=False), wild)


def test_client_ids_of_a_half_full_buffer_survive_a_checkpoint() -> None:
    base = np.zeros(3, dtype=np.float32)
    first = create_strategy("robust", {"k": 3, "min_clients": 2})
    model = ModelState(base.copy())
    first.merge(model, update(f32(9, 9, 9), base, client="mallory"))
    first.merge(model, update(f32(9, 9, 9), base, client="mallory"))
    second = create_strategy("robust", {"k": 3, "min_clients": 2})
    second.load_state(checkpoint(first.state()))
    assert second.merge(model, update(f32(1, 1, 1), base, client="alice"))
    # two clients: mallory's mean (9) and alice (1); median of two = 5
    np.testing.assert_array_equal(model.weights, f32(5, 5, 5))


def test_a_buffer_waits_for_min_clients_distinct_clients(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    """Two clients alone (one hostile) never move the model: their K deltas wait for a third."""
    base = np.zeros(2, dtype=np.float32)
    model = ModelState(base.copy())
    strategy = create_strategy("robust", {"k": 4})  # min_clients 3
    sends = [(f32(1e3, 1e3), "mallory"), (f32(1, 1), "alice"), (f32(1e3, 1e3), "mallory"),
             (f32(3, 3), "alice"), (f32(1e3, 1e3), "mallory")]
    assert [strategy.merge(model, update(d, base, client=c)) for d, c in sends] == [False] * 5
    assert np.array_equal(model.weights, base)
    waiting = [r.getMessage() for r in caplog.records if "waiting for 3 distinct" in r.getMessage()]
    assert waiting == ["robust: 4 deltas buffered from 2 client(s); waiting for 3 distinct "
                       "clients (min_clients) before the model moves"]
    state = strategy.state()
    assert state.meta["clients"] == ["mallory", "alice"] and state.meta["counts"] == [3, 2]
    np.testing.assert_allclose(state.arrays["deltas"], [[1e3, 1e3], [2, 2]])  # running means
    assert strategy.merge(model, update(f32(2, 2), base, client="bob"))
    np.testing.assert_allclose(model.weights, f32(2, 2))  # median of mallory, alice, bob


def test_krum_scores_worked_example() -> None:
    # Four 1-D deltas 0, 1, 2, 10 with f = 1: each row keeps its K - f - 2 = 1 nearest neighbour.
    # squared distances: 0-1: 1, 0-2: 4, 1-2: 1, to 10: 100, 81, 64 -> scores 1, 1, 1, 64
    from webnn.merge.robust import krum_scores

    stack = np.array([[0], [1], [2], [10]], dtype=np.float32)
    np.testing.assert_allclose(krum_scores(stack, 1), [1, 1, 1, 64])
    # f = 0: two neighbours each: 0: 1 + 4, 1: 1 + 1, 2: 1 + 4, 10: 64 + 81
    np.testing.assert_allclose(krum_scores(stack, 0), [5, 2, 5, 145])
    with pytest.raises(ValueError, match="krum needs K >= f \\+ 3 rows"):
        krum_scores(stack, 2)


def test_krum_picks_one_delta_and_multi_krum_averages_the_best_m() -> None:
    from webnn.merge.robust import multi_krum

    stack = np.array([[0, 0], [1, 1], [2, 2], [50, -50], [1.5, 1.5]], dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    # f = 1, K = 5: two nearest neighbours each. Scores (squared distances):
    # (0,0): 2 + 4.5 = 6.5; (1,1): 0.5 + 2 = 2.5; (2,2): 0.5 + 2 = 2.5; (1.5,1.5): 0.5 + 0.5 = 1
    assert multi_krum(stack, 1, 1, out) == [4]
    np.testing.assert_allclose(out, f32(1.5, 1.5))
    # m = K - f = 4 drops only the outlier: mean of rows 0, 1, 2, 4
    assert multi_krum(stack, 1, 4, out) == [0, 1, 2, 4]
    np.testing.assert_allclose(out, f32(1.125, 1.125))


def test_robust_multi_krum_ignores_a_wild_client() -> None:
    strategy = create_strategy("robust", {"aggregator": "multi_krum", "k": 5, "f": 1})
    base = np.zeros(3, dtype=np.float32)
    model = ModelState(weights=base.copy(), steps=0, version=0)
    deltas = [f32(1, 1, 1), f32(1.1, 0.9, 1), f32(0.9, 1.1, 1), f32(1, 1, 1.2), f32(-90, 90, 0)]
    for i, delta in enumerate(deltas):
        changed = strategy.merge(model, update(delta, base, client=f"c-{i}"))
    assert changed
    np.testing.assert_allclose(model.weights, f32(1, 1, 1.05), rtol=1e-5)


def test_robust_m_needs_multi_krum() -> None:
    with pytest.raises(ParamError, match="m is the number of deltas multi_krum averages"):
        create_strategy("robust", {"aggregator": "median", "m": 2})
