"""The capacity bookkeeping in isolation: the lease book's indexes, last-seen session order, the
version store's fetch holds, budget trim and buffer pool, the one-pass weight check, the follow-up
frame pieces, join buckets and client addresses."""

from __future__ import annotations

import numpy as np
import pytest
from support.protocol_client import decode_frame as client_decode

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.screening import delta_norm
from webnn.server.addresses import address_group, address_key, client_address
from webnn.server.admission import TokenBuckets
from webnn.server.follow_up import follow_up_pieces, split_frame
from webnn.server.frames import encode_frame
from webnn.server.ingest import CHUNK, BufferPool, check_weights
from webnn.server.merging import MergeWorker
from webnn.server.sessions import SessionRegistry
from webnn.server.tasks import TaskBook, TrainWork
from webnn.server.versions import Snapshot, SnapshotPool, VersionSnapshots
from webnn.weights import WeightLayout, WeightSpec


def _work(index: int = 0) -> TrainWork:
    return TrainWork(index=index, frame=b"frame", examples=10)


def test_due_leases_come_from_the_expiry_index_oldest_first() -> None:
    book = TaskBook(keep_seconds=100)
    late = book.issue("train", _work(1), 0, 0, "s", now=0, lease=30)
    early = book.issue("train", _work(2), 0, 0, "s", now=0, lease=10)
    done = book.issue("evaluate", _work(3), 0, 0, "s", now=0, lease=5)  # type: ignore[arg-type]
    book.finish(done, "done", now=1, result={})
    assert book.open_count() == 2 and book.open_count("train") == 2
    assert book.open_count("evaluate") == 0
    assert book.due(9) == []
    assert book.due(31) == [early, late]  # the finished one was skipped (lazy deletion)
    assert book.due(31) == []             # popped once; closing them is the caller's job


def test_a_lease_being_submitted_is_not_due_until_its_submission_ended() -> None:
    book = TaskBook(keep_seconds=100)
    task = book.issue("train", _work(), 0, 0, "s", now=0, lease=1)
    task.pending = object()  # type: ignore[assignment]
    assert book.due(5) == [] and book.due(6) == []
    task.pending = None
    assert book.due(7) == [task]


def test_finished_tasks_are_pruned_in_finish_order_and_drop_their_batch() -> None:
    book = TaskBook(keep_seconds=10)
    first = book.issue("train", _work(1), 0, 0, "s", now=0, lease=60)
    second = book.issue("train", _work(2), 0, 0, "s", now=0, lease=60)
    book.finish(first, "done", now=1, result={"accepted": True})
    book.finish(second, "expired", now=5)
    assert first.work.frame == b"" and second.work.frame == b"frame"  # expired work goes back
    book.prune(now=11.5)
    assert book.get(first.id) is None and book.get(second.id) is second
    book.prune(now=16)
    assert book.get(second.id) is None and len(book) == 0


def test_idle_sessions_are_found_from_the_oldest_only() -> None:
    registry = SessionRegistry()
    a, b, c = (registry.join({}, now=0) for _ in range(3))
    registry.touch(a, now=50)           # a moves to the young end
    c.open_tasks.add("t-1")             # idle but holding a lease: kept
    assert registry.idle(now=40, timeout=30) == [b]
    assert registry.idle(now=90, timeout=30) == [b, a]


def _array(value: float, size: int = 4) -> np.ndarray:
    return np.full(size, value, dtype=np.float32)


def test_fetch_holds_keep_a_version_until_its_session_fetched_it() -> None:
    versions = VersionSnapshots(0, Snapshot(_array(0), 0))
    versions.expect_fetch(0, "alice")
    versions.expect_fetch(0, "bob")
    versions.advance(1, Snapshot(_array(1), 1))
    versions.fetched(0, "alice")
    assert 0 in versions                 # bob has not fetched it yet
    versions.fetched(0, "alice")         # alice again: she holds nothing more
    assert 0 in versions
    versions.forget_fetch(0, "bob")      # bob's lease ended
    assert 0 not in versions and versions.nbytes == 16


def test_trim_drops_the_oldest_versions_kept_only_for_a_fetch() -> None:
    versions = VersionSnapshots(0, Snapshot(_array(0), 0))
    for version in range(1, 5):
        versions.expect_fetch(version - 1, f"s{version}")
        versions.advance(version, Snapshot(_array(version), version))
    versions.hold(2)                     # an evaluation of version 2
    assert len(versions) == 5 and versions.nbytes == 80
    assert versions.trim(budget=40) == [0, 1, 3]
    assert sorted(v for v in range(5) if v in versions) == [2, 4]


def test_snapshot_buffers_are_reused_only_when_nothing_reads_them() -> None:
    pool = SnapshotPool(size=4, keep=4)
    versions = VersionSnapshots(0, Snapshot(pool.acquire(), 0), pool)
    versions.advance(1, Snapshot(pool.acquire(), 1))      # version 0's buffer is free again
    assert pool.allocated == 2
    reader = versions.get(1).wire()                         # a response still writing version 1
    versions.advance(2, Snapshot(pool.acquire(), 2))      # reuses version 0's buffer
    versions.advance(3, Snapshot(pool.acquire(), 3))      # version 1 is still read: not reused
    assert pool.allocated == 3
    del reader
    versions.advance(4, Snapshot(pool.acquire(), 4))
    assert pool.allocated == 3


def test_body_pool_reuses_model_sized_buffers() -> None:
    pool = BufferPool(size=1000, keep=2)
    first = pool.acquire(900)
    pool.give_back(first)
    assert pool.acquire(1000) is first and pool.allocated == 1
    big = pool.acquire(5000)              # a one-off: not kept
    pool.give_back(big)
    assert pool.acquire(10) is not big


def test_check_weights_finds_the_first_bad_value_and_the_delta_norm() -> None:
    rng = np.random.default_rng(0)
    size = 3 * CHUNK + 17
    weights = rng.normal(size=size).astype(np.float32)
    reference = rng.normal(size=size).astype(np.float32)
    result = check_weights(weights, reference, norm=True)
    assert result.finite and result.norm == pytest.approx(delta_norm(weights, reference),
                                                          rel=1e-5)
    assert check_weights(weights).norm is None
    huge = np.full(size, 3e38, dtype=np.float32)     # finite, but sums and squares overflow
    result = check_weights(huge, -huge, norm=True)
    assert result.finite and result.norm == pytest.approx(delta_norm(huge, -huge), rel=1e-5)
    weights[CHUNK + 5] = np.nan
    weights[2 * CHUNK] = -np.inf
    result = check_weights(weights)
    assert (result.finite, result.bad, result.first) == (False, 2, CHUNK + 5)


def test_follow_up_pieces_make_the_frame_the_codec_would() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.array([1, 0, 2], dtype=np.int32)
    batch = encode_frame({"kind": "train", "index": 7, "examples": 3}, {"x": x, "y": y})
    weights = np.arange(5, dtype=np.float32)  # 20 bytes: padded to 24
    answer = {"protocol": 1, "accepted": True, "next": {"task": {"id": "t-2"}}}
    frame = b"".join(bytes(p) for p in follow_up_pieces(answer, memoryview(weights).cast("B"),
                                                        split_frame(batch)))
    header, tensors = client_decode(frame)
    assert header == {**answer, "batch": {"kind": "train", "index": 7, "examples": 3}}
    np.testing.assert_array_equal(tensors["weights"], weights)
    np.testing.assert_array_equal(tensors["x"], x)
    np.testing.assert_array_equal(tensors["y"], y)


def test_join_buckets_refill_at_their_rate() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=2)
    assert [buckets.take("a", 0) for _ in range(3)] == [0, 0, 1.0]
    assert buckets.take("a", 1.5) == 0          # refilled
    assert buckets.take("b", 0) == 0 and buckets.take("c", 0) == 0
    assert buckets.take("a", 1.5) == 0          # forgotten (least recently used): full again


def test_forwarded_addresses_are_believed_only_from_trusted_proxies() -> None:
    trusted = frozenset({"10.0.0.1", "10.0.0.2"})
    assert client_address("10.0.0.1", "203.0.113.9, 10.0.0.2", trusted) == "203.0.113.9"
    assert client_address("198.51.100.4", "203.0.113.9", trusted) == "198.51.100.4"
    assert client_address("10.0.0.1", None, trusted) == "10.0.0.1"
    assert client_address(None, None, frozenset()) == "unknown"


def test_per_address_limits_count_an_ipv6_client_as_its_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2::7") \
        == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:198.51.100.4") == address_key("198.51.100.4") == "198.51.100.4"
    assert address_key("unknown") == "unknown"
    # the evaluation quorum's groups are the same keys, loopback and unparsable exempt
    assert address_group("2001:db8:1:2::7") == "2001:db8:1:2::/64"
    assert address_group("::1") is None and address_group("::ffff:127.0.0.1") is None
    assert address_group("unknown") is None and address_group(None) is None


class _Counting(Strategy):
    """A plug-in strategy with state: adds the update to the model and counts its merges."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def merge(self, model: ModelState, update: Update) -> bool:
        self.count += 1
        model.weights += update.weights
        model.steps += update.local_steps
        return True

    def state(self) -> StrategyState:
        return StrategyState({}, {"count": self.count})

    def load_state(self, state: StrategyState) -> None:
        self.count = state.meta["count"]


def test_a_non_finite_merge_is_rolled_back_with_the_plug_ins_state() -> None:
    layout = WeightLayout([WeightSpec("w", (8,))])
    strategy = _Counting()
    worker = MergeWorker(strategy, None, layout, SnapshotPool(8))
    model = ModelState(weights=np.ones(8, dtype=np.float32), steps=3, version=0)
    current = worker.snapshot(model)

    def update(value: float) -> Update:
        return Update(weights=np.full(8, value, dtype=np.float32), base_version=0, base_steps=3,
                      local_steps=2, staleness=0, client="c-1")

    assert worker.save_state  # not one of webnn's strategies: its state is saved per merge
    outcome = worker.run(model, update(3.0e38), None, current)
    assert outcome.changed and not outcome.refused and strategy.count == 1
    current = outcome.snapshot
    outcome = worker.run(model, update(3.0e38), None, current)  # 6e38 overflows float32
    assert outcome.refused and outcome.verdict.reason == "merge_not_finite"
    assert strategy.count == 1 and model.steps == 5
    np.testing.assert_array_equal(model.weights, current.array())
    nan = update(0.0)
    nan.weights[3] = np.nan
    outcome = worker.run(model, nan, None, current)
    assert outcome.verdict.reason == "not_finite" and "w[3]" in outcome.verdict.message
    assert strategy.count == 1


def test_busy_retry_after_grows_with_the_overload() -> None:
    from webnn.server.admission import Admission, AdmissionLimits, RateMeter
    from webnn.server.errors import ProtocolError

    meter = RateMeter(tau=5.0)
    for t in range(50):
        meter.tick(t * 0.1)                   # 10 events a second for 5 s
    assert 5 < meter.rate(5.0) < 10 and meter.rate(60.0) < 0.01
    clock = [0.0]
    admission = Admission(AdmissionLimits(body_budget=100, snapshot_budget=100),
                          lambda: clock[0])
    admission.admit_body(100, 0)                # the budget is now full
    waits = []
    for step in range(200):                     # 20 refusals a second, none admitted
        clock[0] = step * 0.05
        with pytest.raises(ProtocolError) as refused:
            admission.admit_body(10, 0)
        waits.append(int(refused.value.headers["Retry-After"]))
    assert waits[0] <= 4 and 15 <= max(waits[-20:]) <= 30
