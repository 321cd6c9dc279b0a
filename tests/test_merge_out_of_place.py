"""The out-of-place average and the model's weights aliasing the newest snapshot.

`fused_average.screened_average` writes ``(W + W_p) * 1/2`` into the new version's buffer and the
model's weights become that (read-only) snapshot; every in-place writer makes them private first
(`MergeWorker.own_weights`). Checked here on the real parts (`MergeWorker`, `SnapshotPool`,
`VersionSnapshots`, a served model over HTTP): the result against numpy's own formula bit for
bit, and that no published snapshot ever changes, whatever path the next merge takes.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.merge.base import ModelState, Strategy, Update
from webnn.merge.fused_average import screened_average
from webnn.merge.screening import Screen, ScreeningConfig
from webnn.merge.webnn_strategies import WebNNAverage, WebNNMimic, WebNNWeighted
from webnn.server.app import create_app
from webnn.server.ingest import check_weights
from webnn.server.merging import MERGE_NOT_FINITE, MergeOutcome, MergeWorker
from webnn.server.versions import SnapshotPool, VersionSnapshots
from webnn.weights import WeightLayout, WeightSpec

SIZE = 300_007  # two whole ingest chunks and a partial one


def _reference_average(weights: np.ndarray, update: np.ndarray) -> np.ndarray:
    """What the issue asks for, in numpy's whole-array form: (w + u) * 0.5 in float32."""
    return (weights + update) * np.float32(0.5)


def _wide(size: int, seed: int) -> np.ndarray:
    """float32 values over a wide range of exponents, with subnormals, zeros of both signs and
    values near the top of the range whose sums do not overflow."""
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(size) * 2.0 ** rng.integers(-140, 120, size)).astype(np.float32)
    values[::97] = np.float32(1e-45)
    values[1::97] = -0.0
    values[2::97] = np.float32(1.5e38)
    return values


@pytest.mark.parametrize("block", [1, 1000, 1 << 17])
def test_the_pass_is_numpys_average_bit_for_bit(block: int) -> None:
    size = 20_011 if block == 1 else SIZE
    weights, update = _wide(size, 1), _wide(size, 2)
    reference = update - np.float32(1e-3)
    before = weights.copy()
    out = np.empty_like(weights)
    result = screened_average(weights, update, out, reference=reference, norm=True, block=block)
    assert result.merged
    assert out.tobytes() == _reference_average(weights, update).tobytes()
    assert weights.tobytes() == before.tobytes()  # read only: the average went to `out`
    if block == 1 << 17:
        assert result.norm == check_weights(update, reference, norm=True).norm


# --- the worker, as the coordinator drives it ----------------------------------------------------


class Served:
    """A model driven the way the coordinator does it: the current version's snapshot passed to
    each merge, a new version advanced into a real `VersionSnapshots`; each published snapshot's
    bytes are recorded when it is published. Every version is held unless `keep` is False, so
    all of them stay readable for the check."""

    def __init__(self, strategy: Strategy, screening: ScreeningConfig | None,
                 keep: bool = True, fused: bool = True) -> None:
        self.layout = WeightLayout([WeightSpec("a", (SIZE - 7,)), WeightSpec("b", (7,))])
        self.pool = SnapshotPool(SIZE, keep=4)
        self.screen = Screen(screening, self.layout) if screening is not None else None
        self.worker = MergeWorker(strategy, self.screen, self.layout, self.pool, fused=fused)
        initial = np.random.default_rng(0).standard_normal(SIZE).astype(np.float32)
        self.model = ModelState(weights=initial, steps=1)
        self.versions = VersionSnapshots(0, self.worker.snapshot(self.model), self.pool)
        self.published: dict[int, bytes] = {0: self.current().tobytes()}
        self.keep = keep
        if keep:
            self.versions.hold(0)

    def current(self) -> np.ndarray:
        snapshot = self.versions.get(self.model.version)
        assert snapshot is not None
        return snapshot.array()

    def with_worker(self, strategy: Strategy, fused: bool = True) -> None:
        """Another strategy (or path) on the same model, pool and screen from now on."""
        self.worker = MergeWorker(strategy, self.screen, self.layout, self.pool, fused=fused)

    def merge(self, weights: np.ndarray, base: int | None = None) -> MergeOutcome:
        snapshot = None if base is None else self.versions.get(base)
        current = self.versions.get(self.model.version)
        assert current is not None
        update = Update(weights=weights.copy(), base_version=base or 0, base_steps=1,
                        local_steps=1, staleness=0, client="c")
        outcome = self.worker.run(self.model, update,
                                  None if snapshot is None else snapshot.array(), current)
        del snapshot, current, update
        if outcome.changed and not outcome.refused:
            assert outcome.snapshot is not None
            self.model.version += 1
            self.versions.advance(self.model.version, outcome.snapshot)
            self.published[self.model.version] = outcome.snapshot.array().tobytes()
            if self.keep:
                self.versions.hold(self.model.version)
        return outcome

    def assert_nothing_published_changed(self) -> None:
        held = 0
        for version, data in self.published.items():
            snapshot = self.versions.get(version)
            if snapshot is not None:
                held += 1
                assert not snapshot.array().flags.writeable
                assert snapshot.array().tobytes() == data, f"version {version} changed"
        if self.keep:
            assert held == len(self.published)
        # the model holds the current version's values, whether it aliases it or not
        assert self.model.weights.tobytes() == self.published[self.model.version]


def _near(weights: np.ndarray, seed: int, scale: float = 0.01) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(weights.size).astype(np.float32)
    return (weights + noise * np.float32(scale)).astype(np.float32)


def test_after_a_fused_merge_the_model_is_the_new_snapshot_and_the_old_one_is_unchanged() -> None:
    served = Served(WebNNAverage(), None)
    before = served.model.weights.copy()
    update = _near(before, 1)
    outcome = served.merge(update)
    assert outcome.changed and outcome.snapshot is not None
    # the model's weights are the new version's snapshot (no copy), read-only
    assert served.model.weights is outcome.snapshot.array()
    assert not served.model.weights.flags.writeable
    assert served.model.weights.tobytes() == _reference_average(before, update).tobytes()
    served.merge(_near(served.model.weights, 2))
    served.assert_nothing_published_changed()
    # a writer that forgot the rule fails loudly instead of changing a published version
    with pytest.raises(ValueError, match="read-only"):
        served.model.weights += np.float32(1.0)
    served.assert_nothing_published_changed()


def test_fallback_merges_after_fused_ones_write_no_published_snapshot() -> None:
    """Clipped (the fused pass stops above the bound, then the straightforward path), refused
    (not finite) and accepted updates in a row, against a straightforward worker on its own
    model: the same verdicts and weights, and every version as published."""
    served = Served(WebNNAverage(), ScreeningConfig(norm_bound=20.0, action="clip"))
    plain = Served(WebNNAverage(), ScreeningConfig(norm_bound=20.0, action="clip"), fused=False)
    for i in range(10):
        update = _near(served.model.weights, 10 + i)
        if i in (2, 6, 7):
            update += np.float32(5.0)       # norm far above 20: clipped
        if i == 4:
            update[SIZE - 2] = np.nan       # refused: not finite
        outcomes = [served.merge(update), plain.merge(update)]
        assert outcomes[0].verdict == outcomes[1].verdict
        assert served.model.weights.tobytes() == plain.model.weights.tobytes()
        assert served.model.steps == plain.model.steps
        served.assert_nothing_published_changed()
        if i in (2, 6, 7):
            assert outcomes[0].verdict.action == "clipped"
            assert served.model.weights.flags.writeable  # made private before the merge
        elif i == 4:
            assert outcomes[0].verdict.reason == "not_finite"
        else:
            assert outcomes[0].verdict.action == "accepted"
            assert not served.model.weights.flags.writeable  # the new snapshot itself
    assert served.model.version == plain.model.version == 9


@pytest.mark.parametrize("private", [False, True])
def test_a_result_that_overflows_is_rolled_back_with_no_snapshot_written(private: bool) -> None:
    """The fused pass stops at the non-finite block, the straightforward path merges in place
    (after making the weights private) and rolls back: the model holds the current version's
    values again, nothing published changed and the update is refused. `private`: the previous
    merge took the in-place path (the model was private), else it aliased the current snapshot."""
    served = Served(WebNNAverage(), None)
    first = _near(served.model.weights, 80)
    first[SIZE // 2] = np.float32(3.0e38)
    served.with_worker(WebNNAverage(), fused=not private)
    served.merge(first)  # the model's value there becomes 1.5e38
    assert served.model.weights.flags.writeable is private
    served.with_worker(WebNNAverage())
    version, steps = served.model.version, served.model.steps
    overflow = _near(served.model.weights, 81)
    overflow[SIZE // 2] = np.float32(3.0e38)  # finite, but 1.5e38 + 3e38 is not
    outcome = served.merge(overflow)
    assert outcome.refused and outcome.verdict.reason == MERGE_NOT_FINITE
    assert (served.model.version, served.model.steps) == (version, steps)
    served.assert_nothing_published_changed()
    outcome = served.merge(_near(served.model.weights, 82))  # and the next merge goes on
    assert outcome.changed and not outcome.refused
    served.assert_nothing_published_changed()


@pytest.mark.parametrize("strategy", [WebNNWeighted, WebNNMimic, WebNNAverage])
def test_an_in_place_strategy_after_fused_merges_unaliases_first(strategy: type) -> None:
    served = Served(WebNNAverage(), None)
    for i in range(3):
        served.merge(_near(served.model.weights, 20 + i))
    aliased = served.model.weights
    assert not aliased.flags.writeable
    served.with_worker(strategy(), fused=False)
    for i in range(3):
        outcome = served.merge(_near(served.model.weights, 30 + i))
        assert outcome.changed and not outcome.refused
        assert served.model.weights.flags.writeable
        assert not any(np.shares_memory(served.model.weights, s.array())
                       for s in (served.versions.get(v) for v in served.published) if s)
        served.assert_nothing_published_changed()
    # and back to the fused average: the model aliases the newest snapshot again
    served.with_worker(WebNNAverage())
    served.merge(_near(served.model.weights, 40))
    assert not served.model.weights.flags.writeable
    served.assert_nothing_published_changed()


class _Raising(WebNNAverage):
    """Writes half the model in place, then fails (a broken plug-in)."""

    def merge(self, model: ModelState, update: Update) -> bool:
        model.weights[: model.weights.size // 2] = 7.0
        raise RuntimeError("broken strategy")


def test_a_strategy_that_raises_is_rolled_back_without_touching_a_snapshot() -> None:
    served = Served(WebNNAverage(), None)
    served.merge(_near(served.model.weights, 50))
    served.with_worker(_Raising())
    assert served.worker.fused is None  # a subclass merging differently is not fused
    with pytest.raises(RuntimeError, match="broken strategy"):
        served.merge(_near(served.model.weights, 51))
    served.assert_nothing_published_changed()
    assert served.model.steps == served.versions.get(served.model.version).steps


@pytest.mark.parametrize("action", ["refuse", "clip"])
def test_above_the_bound_the_model_stays_the_current_snapshot_or_is_copied(action: str) -> None:
    served = Served(WebNNAverage(), ScreeningConfig(norm_bound=20.0, action=action))
    served.merge(_near(served.model.weights, 60))
    current = served.model.weights
    outcome = served.merge(_near(served.model.weights, 61) + np.float32(5.0))
    served.assert_nothing_published_changed()
    if action == "refuse":
        assert outcome.refused and outcome.verdict.reason == "norm_too_large"
        assert served.model.weights is current  # nothing written, nothing copied
    else:
        assert outcome.verdict.action == "clipped" and served.model.weights is not current


def test_double_buffering_through_the_pool_reuses_buffers_and_never_the_models() -> None:
    """Versions dropped as they are superseded (no holds): the pool's buffers plateau and the
    buffer the model aliases is never handed out while it does."""
    served = Served(WebNNAverage(), ScreeningConfig(norm_bound=20.0, action="clip"), keep=False)
    for i in range(40):
        update = _near(served.model.weights, 70 + i)
        if i % 9 == 8:
            update += np.float32(5.0)  # clipped: the model becomes private for that merge
        served.merge(update)
        assert served.model.weights.tobytes() == served.current().tobytes()
        if not served.model.weights.flags.writeable:
            assert served.model.weights is served.current()
        if i == 20:
            plateau = served.pool.allocated
        served.assert_nothing_published_changed()
    assert served.pool.allocated == plateau <= 5


# --- a served model over HTTP: fetched versions stay as fetched, and a restart ------------------


async def test_served_versions_stay_as_published_across_merges_and_a_restart(
        make_config, serve, http, tmp_path) -> None:
    def config():
        return make_config(state_dir=tmp_path / "state", checkpoint_every_merges=None,
                           checkpoint_every_seconds=None, eval_every_merges=1000,
                           evaluate_initial=False,
                           screening={"norm_bound": 5.0, "action": "clip"})

    served = await serve(create_app(config()))
    client, holder = (ProtocolClient(http, served.url), ProtocolClient(http, served.url))
    await client.join()
    await holder.join()

    async def train(offset: float) -> dict:
        task = (await client.task("train"))["task"]
        weights = await client.weights_array(task["urls"]["weights"])
        update = (weights + np.float32(offset)).astype(np.float32)
        answer = await client.submit_update(task, update)
        assert answer.status == 200, answer.body
        if not answer.body["clipped"]:  # one client: its base is the version merged into
            merged = await client.weights_array()
            assert merged.tobytes() == _reference_average(weights, update).tobytes()
        return answer.body

    await train(0.001)                                   # fused
    held = (await holder.task("train"))["task"]          # its version is kept until fetched
    expected = await client.weights_array()              # that version, as published
    assert (await train(0.5))["clipped"]                 # norm above 5: the in-place path
    await train(0.002)                                   # fused again
    await train(0.003)
    fetched = await holder.weights_array(held["urls"]["weights"])
    assert fetched.tobytes() == expected.tobytes()
    before = await client.weights_array()
    await served.stop()  # writes a checkpoint

    served = await serve(create_app(config()))
    client = ProtocolClient(http, served.url)
    await client.join()
    assert (await client.weights_array()).tobytes() == before.tobytes()
    assert (await train(0.5))["clipped"]                 # the restored weights, written in place
    await train(0.001)                                   # and the fused pass after it
