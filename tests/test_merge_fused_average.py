"""The one-pass average (`webnn.merge.fused_average`, `MergeWorker`'s fused path): bit-identical
weights, the same norm and the same verdicts, codes and roll-backs as the straightforward path."""

from __future__ import annotations

import numpy as np
import pytest

from webnn.merge.base import ModelState, Update
from webnn.merge.fused_average import (
    ABOVE_BOUND,
    RESULT_NOT_FINITE,
    UPDATE_NOT_FINITE,
    screened_average_into,
    screened_averages_into,
)
from webnn.merge.screening import Screen, ScreeningConfig, delta_norm
from webnn.merge.webnn_rules import average_into
from webnn.merge.webnn_strategies import WebNNAverage
from webnn.server.ingest import check_weights
from webnn.server.merging import MergeWorker
from webnn.server.versions import SnapshotPool
from webnn.weights import WeightLayout, WeightSpec


def _arrays(size: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    model = (rng.standard_normal(size) * scale).astype(np.float32)
    update = (model + rng.standard_normal(size).astype(np.float32) * np.float32(0.01))
    reference = (model + rng.standard_normal(size).astype(np.float32) * np.float32(0.001))
    return model, update.astype(np.float32), reference.astype(np.float32)


@pytest.mark.parametrize("size,block", [(1, 4), (1000, 64), (1000, 1000), (1001, 1000),
                                        (70_001, 1 << 12), (300_007, 1 << 17)])
def test_the_pass_gives_the_straightforward_weights_bit_for_bit(size: int, block: int) -> None:
    model, update, reference = _arrays(size, seed=size)
    expected = model.copy()
    average_into(expected, update)  # (W + W_p) / 2 as two whole-array passes
    original = model.copy()
    out = np.empty_like(model)
    kept = update.copy()
    result = screened_average_into(model, update, out, original, reference=reference, norm=True,
                                   block=block)
    assert result.merged and result.stopped is None
    assert model.tobytes() == expected.tobytes() and out.tobytes() == expected.tobytes()
    assert update.tobytes() == kept.tobytes()  # the update is not used as scratch
    assert result.norm == pytest.approx(delta_norm(update, reference), rel=1e-5)


def test_with_the_ingest_chunk_the_norm_is_check_weights_own() -> None:
    model, update, reference = _arrays(300_007, seed=3)
    result = screened_average_into(model, update, np.empty_like(model), model.copy(),
                                   reference=reference, norm=True)  # BLOCK == ingest.CHUNK
    assert result.norm == check_weights(update, reference, norm=True).norm


def test_without_a_norm_only_finiteness_is_checked() -> None:
    model, update, _ = _arrays(5000, seed=4)
    expected = model.copy()
    average_into(expected, update)
    result = screened_average_into(model, update, np.empty_like(model), model.copy(), block=999)
    assert result.merged and result.norm is None and model.tobytes() == expected.tobytes()


@pytest.mark.parametrize("index", [0, 2500, 4999])
def test_a_non_finite_update_stops_the_pass_with_the_model_restored(index: int) -> None:
    model, update, reference = _arrays(5000, seed=5)
    original = model.copy()
    update[index] = np.nan
    for norm in (True, False):
        result = screened_average_into(model, update, np.empty_like(model), original,
                                       reference=reference, norm=norm, block=1024)
        assert not result.merged and result.stopped == UPDATE_NOT_FINITE
        assert result.at == index // 1024 * 1024
        assert model.tobytes() == original.tobytes()


def test_a_norm_above_the_bound_stops_it_and_one_at_the_bound_does_not() -> None:
    model, update, reference = _arrays(10_000, seed=6)
    original = model.copy()
    norm = screened_average_into(model.copy(), update, np.empty_like(model), original,
                                 reference=reference, norm=True, block=1000).norm
    assert norm is not None
    below = np.nextafter(norm, 0.0)
    result = screened_average_into(model, update, np.empty_like(model), original,
                                   reference=reference, norm=True, bound=below, block=1000)
    assert not result.merged and result.stopped == ABOVE_BOUND
    assert model.tobytes() == original.tobytes()
    result = screened_average_into(model, update, np.empty_like(model), original,
                                   reference=reference, norm=True, bound=norm, block=1000)
    assert result.merged and result.norm == norm  # `norm <= bound` is accepted, as the screen


def test_a_result_that_overflows_stops_it_with_the_model_restored() -> None:
    model = np.ones(3000, dtype=np.float32)
    model[1500] = np.float32(3.0e38)
    update = model.copy()  # finite (its sums too), but W + W_p overflows float32 at 1500
    original = model.copy()
    result = screened_average_into(model, update, np.empty_like(model), original, block=1000)
    assert not result.merged and result.stopped == RESULT_NOT_FINITE and result.at == 1000
    assert model.tobytes() == original.tobytes()


def test_mismatched_arrays_are_refused_before_anything_is_written() -> None:
    model, update, _ = _arrays(100, seed=7)
    original = model.copy()
    with pytest.raises(ValueError, match="out holds 99 values"):
        screened_average_into(model, update, np.empty(99, np.float32), original)
    assert model.tobytes() == original.tobytes()


# --- MergeWorker: the fused path against the straightforward one, update by update -------------


def _run_both(screening: ScreeningConfig | None, updates: list[np.ndarray],
              base: np.ndarray | None, initial: np.ndarray) -> list[list[object]]:
    """Every update through a fused and a straightforward worker; per worker and update: the
    verdict, changed, the model's bytes and steps, the snapshot's bytes."""
    size = initial.size
    layout = WeightLayout([WeightSpec("a", (size - size // 3,)), WeightSpec("b", (size // 3,))])
    runs: list[list[object]] = []
    for fused in (True, False):
        screen = Screen(screening, layout) if screening is not None else None
        worker = MergeWorker(WebNNAverage(), screen, layout, SnapshotPool(size), fused=fused)
        assert (worker.fused is not None) is fused
        model = ModelState(weights=initial.copy(), steps=1)
        current = worker.snapshot(model)
        seen: list[object] = []
        made: list[tuple[np.ndarray, bytes]] = []
        for i, weights in enumerate(updates):
            update = Update(weights=weights.copy(), base_version=0, base_steps=i, local_steps=2,
                            staleness=0, client="c")
            outcome = worker.run(model, update, base, current)
            seen.append((outcome.verdict, outcome.changed, model.weights.tobytes(), model.steps,
                         None if outcome.snapshot is None else outcome.snapshot.array().tobytes()))
            if outcome.snapshot is not None:
                array = outcome.snapshot.array()
                assert not array.flags.writeable and array is not model.weights
                made.append((array, array.tobytes()))
                current = outcome.snapshot
        # no later merge (nor a roll-back, nor a stopped pass) wrote into an earlier version
        assert all(array.tobytes() == data for array, data in made)
        runs.append(seen)
    return runs


def _updates(initial: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(initial + rng.standard_normal(initial.size).astype(np.float32)
             * np.float32(0.01 * (1 + i % 3))).astype(np.float32) for i in range(count)]


@pytest.mark.parametrize("with_base", [True, False])
def test_the_worker_merges_clips_and_refuses_as_before(with_base: bool) -> None:
    size = 300_007  # three ingest chunks and a bit
    initial = np.random.default_rng(1).standard_normal(size).astype(np.float32)
    updates = _updates(initial, 16, seed=2)
    updates[12] = updates[12] + np.float32(50.0)   # huge norm: clipped (the default action)
    nan = updates[13].copy()
    nan[size - 5] = np.nan                          # not finite in the last, partial chunk
    updates[13] = nan
    overflow = updates[14].copy()
    overflow[7] = np.float32(1e30)                  # float32 squares overflow
    updates[14] = overflow
    config = ScreeningConfig(adaptive_quantile=0.5, adaptive_factor=10.0, adaptive_window=50,
                             adaptive_min_history=10, action="clip")
    base = initial.copy() if with_base else None
    fused, plain = _run_both(config, updates, base, initial)
    assert fused == plain
    verdicts = [v for v, *_ in fused]
    assert verdicts[12].action == "clipped" and verdicts[12].reason == "norm_too_large"
    assert verdicts[13].reason == "not_finite" and "b[" in verdicts[13].message
    assert verdicts[14].action == "clipped"
    assert all(v.action == "accepted" for v in verdicts[:12] + [verdicts[15]])


def test_the_worker_refuses_above_a_fixed_bound_and_rolls_back_an_overflow_as_before() -> None:
    size = 1000
    initial = np.full(size, 1.0, dtype=np.float32)
    updates = [initial + np.float32(0.5), initial + np.float32(3.0),
               np.full(size, 3.0e38, dtype=np.float32), initial + np.float32(0.25)]
    config = ScreeningConfig(norm_bound=40.0, action="refuse")
    fused, plain = _run_both(config, updates, None, initial)
    assert fused == plain
    assert [v.reason if v.refused else v.action for v, *_ in fused] == [
        "accepted", "norm_too_large", "norm_too_large", "accepted"]
    big = np.ones(size, dtype=np.float32)
    big[500] = np.float32(3.0e38)  # the fused pass stops at the merged block, not the update's
    for initial in (np.full(size, 3.0e38, dtype=np.float32), big):
        fused, plain = _run_both(None, [initial.copy(), initial.copy()], None, initial)
        assert fused == plain
        assert all(v.reason == "merge_not_finite" for v, *_ in fused)


def test_buffers_are_reused_through_the_pool_as_versions_are_dropped() -> None:
    """As the coordinator does: each new version advances, the one 2 versions back is dropped
    and its buffer given back; accepted, clipped (a stopped pass, then the straightforward
    path) and refused updates mixed: the pool stops allocating."""
    size = 50_000
    layout = WeightLayout([WeightSpec("w", (size,))])
    pool = SnapshotPool(size, keep=4)
    screen = Screen(ScreeningConfig(adaptive_quantile=0.5, adaptive_factor=10.0,
                                    adaptive_min_history=5, action="clip"), layout)
    worker = MergeWorker(WebNNAverage(), screen, layout, pool)
    initial = np.random.default_rng(8).standard_normal(size).astype(np.float32)
    model = ModelState(weights=initial.copy(), steps=1)
    kept = [worker.snapshot(model)]
    updates = _updates(initial, 60, seed=9)
    actions = []
    for i, weights in enumerate(updates):
        if i % 7 == 6:
            weights = weights + np.float32(100.0)  # clipped
        if i % 11 == 10:
            weights = weights.copy()
            weights[3] = np.inf  # refused
        update = Update(weights=weights, base_version=0, base_steps=i, local_steps=1,
                        staleness=0, client="c")
        outcome = worker.run(model, update, kept[-1].array(), kept[-1])
        actions.append(outcome.verdict.action if outcome.verdict else None)
        if outcome.snapshot is not None:
            kept.append(outcome.snapshot)
        while len(kept) > 2:
            array = kept.pop(0).data
            pool.give_back(array)
            del array
        if i == 20:
            plateau = pool.allocated
    assert {"accepted", "clipped", "refused"} <= set(actions)
    assert pool.allocated == plateau <= 6


# --- several queued updates in one pass (`screened_averages_into`, `MergeWorker.run_many`) ------


@pytest.mark.parametrize("size,block", [(1, 4), (1001, 64), (300_007, 1 << 17)])
def test_a_pass_over_several_updates_is_the_passes_one_by_one_bit_for_bit(size: int,
                                                                          block: int) -> None:
    model, _, reference = _arrays(size, seed=size)
    updates = _updates(model, 5, seed=size + 1)
    references: list[np.ndarray | None] = [None, reference, None, None, reference]
    one_by_one, norms = model.copy(), []
    for update, ref in zip(updates, references, strict=True):
        # a reference of None: the model as the updates before left it (the worker's default)
        result = screened_average_into(one_by_one, update, np.empty_like(model),
                                       one_by_one.copy(), reference=one_by_one if ref is None
                                       else ref, norm=True, block=block)
        norms.append(result.norm)
    original, out = model.copy(), np.empty_like(model)
    result = screened_averages_into(model, updates, out, original, references=references,
                                    norm=True, block=block)
    assert result.merged and result.norms == norms
    assert model.tobytes() == one_by_one.tobytes() and out.tobytes() == one_by_one.tobytes()


@pytest.mark.parametrize("bad, reason", [(np.nan, UPDATE_NOT_FINITE),
                                         (np.float32(3.0e38), RESULT_NOT_FINITE)])
def test_a_pass_over_several_stops_with_the_model_restored(bad: float, reason: str) -> None:
    model, _, _ = _arrays(300_007, seed=9)
    model[:] = np.float32(3.0e38) if reason == RESULT_NOT_FINITE else model
    updates = _updates(model, 3, seed=10)
    updates[2][200_000] = bad
    original = model.copy()
    result = screened_averages_into(model, updates, np.empty_like(model), original,
                                    norm=reason == UPDATE_NOT_FINITE)
    assert not result.merged and result.stopped == reason
    assert model.tobytes() == original.tobytes()


def _worker(screening: ScreeningConfig | None, size: int) -> MergeWorker:
    layout = WeightLayout([WeightSpec("a", (size - size // 3,)), WeightSpec("b", (size // 3,))])
    screen = Screen(screening, layout) if screening is not None else None
    return MergeWorker(WebNNAverage(), screen, layout, SnapshotPool(size))


def _update(weights: np.ndarray, i: int) -> Update:
    return Update(weights=weights.copy(), base_version=0, base_steps=3 * i, local_steps=2,
                  staleness=i, client="c")


ADAPTIVE = ScreeningConfig(adaptive_quantile=0.5, adaptive_factor=10.0, adaptive_window=50,
                           adaptive_min_history=10, action="clip")


@pytest.mark.parametrize("screening", [ADAPTIVE, None])
def test_the_worker_merges_a_batch_as_it_merges_its_updates_one_by_one(screening) -> None:
    size = 300_007
    initial = np.random.default_rng(5).standard_normal(size).astype(np.float32)
    updates = _updates(initial, 24, seed=6)
    base = initial.copy()
    bases = [base if i % 2 else None for i in range(8)]
    states = []
    for together in (False, True):
        worker = _worker(screening, size)
        model = ModelState(weights=initial.copy(), steps=1)
        current = worker.snapshot(model)
        for weights in updates[:16]:  # the adaptive bound's history, one by one
            current = worker.run(model, _update(weights, 0), None, current).snapshot
        batch = [_update(w, i) for i, w in enumerate(updates[16:])]
        if together:
            outcomes = worker.run_many(model, batch, bases, current)
            assert outcomes is not None and all(o.changed for o in outcomes)
            assert all(o.snapshot is None for o in outcomes[:-1])
            last = outcomes[-1].snapshot
        else:
            outcomes = [worker.run(model, u, b, current) for u, b in zip(batch, bases, strict=True)]
            last = outcomes[-1].snapshot
        states.append(([o.verdict for o in outcomes], model.weights.tobytes(), model.steps,
                       last.array().tobytes(), last.steps,
                       worker.screen.state() if worker.screen is not None else None))
    assert states[0] == states[1]
    assert all(v is None or v.action == "accepted" for v in states[0][0])


def test_a_batch_an_update_of_which_would_be_clipped_changes_nothing() -> None:
    size = 10_000
    initial = np.random.default_rng(7).standard_normal(size).astype(np.float32)
    updates = _updates(initial, 14, seed=8)
    updates[13] = updates[13] + np.float32(50.0)  # above 10x the median: clipped one by one
    worker = _worker(ADAPTIVE, size)
    model = ModelState(weights=initial.copy(), steps=1)
    current = worker.snapshot(model)
    for weights in updates[:11]:
        current = worker.run(model, _update(weights, 0), None, current).snapshot
    before = (model.weights.tobytes(), model.steps, worker.screen.state())
    batch = [_update(w, i) for i, w in enumerate(updates[11:])]
    assert worker.run_many(model, batch, [None] * 3, current) is None
    assert (model.weights.tobytes(), model.steps, worker.screen.state()) == before
    nan = updates[11].copy()
    nan[3] = np.nan
    batch = [_update(w, i) for i, w in enumerate([updates[11], nan])]
    assert worker.run_many(model, batch, [None] * 2, current) is None
    assert (model.weights.tobytes(), model.steps, worker.screen.state()) == before
