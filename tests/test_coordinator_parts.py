"""The coordinator's collaborators that took over its bookkeeping, on real parts: the traffic
counters (`webnn.server.traffic`), the checkpoint state built from values and applied back
(`webnn.server.checkpointing`, through a real `Store` and JSON), the status blocks
(`webnn.server.status`), the run's lifecycle (`webnn.server.lifecycle`) and the cut-off rule
(`webnn.server.cut_off`)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from webnn.data import load_data_module
from webnn.data.partition import PartitionConfig, partition
from webnn.merge import create_strategy
from webnn.merge.base import ModelState, Update
from webnn.server.admission import Admission, AdmissionLimits
from webnn.server.batch_feed import BatchFeed
from webnn.server.checkpointing import (
    STATE_FORMAT,
    RunCounters,
    build_state,
    data_state,
    restore,
    restore_data,
    write,
)
from webnn.server.cut_off import INVALID_UPDATE_CODES, CutOff
from webnn.server.errors import ProtocolError
from webnn.server.evaluation import EvaluationSchedule
from webnn.server.lifecycle import RunLifecycle
from webnn.server.sessions import SessionRegistry
from webnn.server.shards import ShardAssigner
from webnn.server.status import capacity_status, partition_status
from webnn.server.store import StateError, Store
from webnn.server.traffic import Traffic
from webnn.server.versions import Snapshot, SnapshotPool, VersionSnapshots
from webnn.weights import WeightLayout, WeightSpec

LAYOUT = WeightLayout([WeightSpec("d/kernel", (3, 2)), WeightSpec("d/bias", (2,))])
SEED = 1
PARTITION = {"kind": "shards", "shards": 4, "classes": 1}
STATE_FIELDS = ["format", "name", "fingerprint", "manifest", "strategy", "screening", "version",
                "steps", "merges", "updatesAccepted", "clientsJoined", "state", "endReason",
                "history", "data", "evaluation", "traffic", "elapsed", "savedAt"]
"""``state.json``'s fields as the coordinator wrote them before `checkpointing` existed."""


@pytest.fixture(scope="module")
def digits(digits_data):
    return load_data_module(digits_data, {})


def _shards(digits) -> list[np.ndarray]:
    return partition(PartitionConfig.from_mapping(PARTITION), SEED, labels=digits.y_train)


def _fedbuff_with_one_buffered_update():
    strategy = create_strategy("fedbuff", {"k": 3})
    model = ModelState(weights=np.zeros(LAYOUT.size, np.float32), steps=0, version=0)
    base = model.weights.copy()
    update = Update(weights=np.full(LAYOUT.size, 0.5, np.float32), base_version=0, base_steps=0,
                    local_steps=2, staleness=0, client="c1", base_weights=base, examples=16)
    assert strategy.merge(model, update) is False  # buffered: the state holds it
    return strategy


# ------------------------------------------------------------------------------------ traffic

def test_traffic_summary_and_state_round_trip():
    traffic = Traffic()
    traffic.record_update("q8", 300)
    traffic.record_update("q8", 100)
    traffic.record_update("f32", 4000)
    traffic.record_weights("f16", 50)
    assert traffic.summary() == {
        "updates": {"f32": {"count": 1, "bytes": 4000, "meanBytes": 4000.0},
                    "q8": {"count": 2, "bytes": 400, "meanBytes": 200.0}},
        "weights": {"f16": {"count": 1, "bytes": 50, "meanBytes": 50.0}}}
    saved = json.loads(json.dumps(traffic.state()))
    assert list(saved) == ["updates", "updateBytes", "weights", "weightBytes"]
    again = Traffic()
    again.load(saved)
    assert again.summary() == traffic.summary()
    again.record_weights("f16", 150)  # the counts go on from the stored ones
    assert again.summary()["weights"]["f16"] == {"count": 2, "bytes": 200, "meanBytes": 100.0}


def test_traffic_from_an_older_or_malformed_checkpoint(caplog):
    traffic = Traffic()
    traffic.load(None)  # a checkpoint from before the counters
    assert traffic.summary() == {"updates": {}, "weights": {}}
    with caplog.at_level(logging.WARNING, logger="webnn.server"):
        traffic.load({"updates": {"f32": 2}, "updateBytes": {"f32": -1},
                      "weights": {"f32": True}})
    assert traffic.state() == {"updates": {"f32": 2}, "updateBytes": {}, "weights": {},
                               "weightBytes": {}}
    assert "traffic.updateBytes is not a table of counts" in caplog.text
    assert "traffic.weights is not a table of counts" in caplog.text


# ------------------------------------------------------------------------------ checkpointing

def _run_state(strategy, feed, assigner, schedule, traffic) -> dict:
    taken = [feed.take(s) for s in (0, 0, 2, 2, 2)]
    feed.give_back(taken[1])  # shard 0's batch 1 came back unfinished
    leased = [taken[3]]  # shard 2's batch 1 is out on lease
    counters = RunCounters(version=7, steps=30, merges=9, updates_accepted=8, clients_joined=3,
                           state="paused", end_reason=None, elapsed=12.5)
    public = PartitionConfig.from_mapping(PARTITION).public()
    return build_state(name="digits", layout=LAYOUT, strategy=strategy.name, screening=None,
                       counters=counters, history=[{"version": 5, "valAccuracy": 0.5}],
                       data=data_state(feed, leased, public, assigner),
                       evaluation=schedule.state(), traffic=traffic.state(), saved_at=99.0)


def test_a_checkpoint_built_from_values_is_applied_back(digits, tmp_path):
    shards = _shards(digits)
    public = PartitionConfig.from_mapping(PARTITION).public()
    strategy = _fedbuff_with_one_buffered_update()
    feed = BatchFeed(digits, 16, SEED, shards)
    assigner = ShardAssigner(feed.count)
    assert [assigner.assign(v) for v in ("a", "b", None)] == [0, 1, 2]
    schedule = EvaluationSchedule(5, None)
    schedule.seq, schedule.last_merges, schedule.last_elapsed = 2, 5, 10.0
    traffic = Traffic()
    traffic.record_update("f32", 40)
    state = _run_state(strategy, feed, assigner, schedule, traffic)

    assert list(state) == STATE_FIELDS and state["format"] == STATE_FORMAT
    assert state["data"] == {
        "nextBatch": 2, "outstanding": [1], "batchExamples": 16, "seed": SEED,
        "partition": public,
        "shards": [{"nextBatch": 2, "outstanding": [1]}, {"nextBatch": 0, "outstanding": []},
                   {"nextBatch": 3, "outstanding": [1]}, {"nextBatch": 0, "outstanding": []}],
        "assignment": {"count": 4, "volunteers": {"a": 0, "b": 1}}}
    weights = np.arange(LAYOUT.size, dtype=np.float32)
    store = Store(tmp_path)
    write(store, state, weights, strategy, {"modelTopology": {}}, LAYOUT)
    loaded = store.load(LAYOUT)
    assert loaded is not None
    assert json.loads(json.dumps(loaded.state)) == loaded.state  # plain JSON

    fresh = create_strategy("fedbuff", {"k": 3})
    feed2 = BatchFeed(digits, 16, SEED, shards)
    schedule2, traffic2 = EvaluationSchedule(5, None), Traffic()
    restored = restore(loaded, strategy=fresh, screen=None, schedule=schedule2, feed=feed2,
                       traffic=traffic2, partition=public, state_dir=tmp_path)
    assert restored.counters == RunCounters(7, 30, 9, 8, 3, "paused", None, 12.5)
    assert restored.history == [{"version": 5, "valAccuracy": 0.5}]
    np.testing.assert_array_equal(restored.weights, weights)
    assert fresh.state().meta == strategy.state().meta
    np.testing.assert_array_equal(fresh.state().arrays["delta_sum"],
                                  strategy.state().arrays["delta_sum"])
    assert (schedule2.seq, schedule2.last_merges, schedule2.last_elapsed) == (2, 5, 10.0)
    assert traffic2.summary() == traffic.summary()
    assert restored.assigner is not None and restored.assigner.volunteers == {"a": 0, "b": 1}
    assert feed2.positions == [2, 0, 3, 0]
    assert [feed2.take(0).index, feed2.take(0).index] == [1, 2]  # handed back first, then on
    assert [feed2.take(2).index, feed2.take(2).index] == [1, 3]


def test_another_strategy_is_refused_and_changes_nothing(digits, tmp_path):
    strategy = _fedbuff_with_one_buffered_update()
    feed = BatchFeed(digits, 16, SEED, _shards(digits))
    state = _run_state(strategy, feed, ShardAssigner(feed.count), EvaluationSchedule(5, None),
                       Traffic())
    store = Store(tmp_path)
    write(store, state, LAYOUT.zeros(), strategy, {}, LAYOUT)
    loaded = store.load(LAYOUT)
    assert loaded is not None
    feed2, traffic2 = BatchFeed(digits, 16, SEED), Traffic()
    with pytest.raises(StateError, match="trained with strategy 'fedbuff', not 'average'"):
        restore(loaded, strategy=create_strategy("average"), screen=None,
                schedule=EvaluationSchedule(5, None), feed=feed2, traffic=traffic2,
                partition=None, state_dir=tmp_path)
    assert feed2.positions == [0] and traffic2.state()["updates"] == {}


def test_a_changed_partition_starts_the_shards_over(digits, caplog):
    shards = _shards(digits)
    feed = BatchFeed(digits, 16, SEED, shards)
    feed.take(1)
    public = PartitionConfig.from_mapping(PARTITION).public()
    data = json.loads(json.dumps(data_state(feed, [], public, ShardAssigner(feed.count))))
    other = BatchFeed(digits, 16, SEED, shards)
    changed = dict(public, classes=2)
    with caplog.at_level(logging.WARNING, logger="webnn.server"):
        assert restore_data(data, other, changed) is None
    assert other.positions == [0, 0, 0, 0] and "the partition changed" in caplog.text
    again = BatchFeed(digits, 16, SEED, shards)
    assigner = restore_data(data, again, public)
    assert assigner is not None and again.positions == [0, 1, 0, 0]


def test_a_checkpoint_from_before_partitions_continues_the_iid_sequence(digits, caplog):
    feed = BatchFeed(digits, 16, SEED)
    data = {"nextBatch": 4, "outstanding": [2], "batchExamples": 32, "seed": SEED}
    with caplog.at_level(logging.WARNING, logger="webnn.server"):
        assigner = restore_data(data, feed, None)
    assert "batch size or seed changed" in caplog.text  # 32 examples then, 16 now
    assert assigner is not None and assigner.volunteers == {}
    assert [feed.take().index, feed.take().index] == [2, 4]


def test_counters_of_an_older_state_take_their_starting_values():
    old = {"version": 3, "steps": 12, "merges": 4}
    assert RunCounters.from_state(old) == RunCounters(version=3, steps=12, merges=4)
    with pytest.raises(KeyError):
        RunCounters.from_state({"version": 3, "steps": 12})


# ------------------------------------------------------------------------------------- status

def test_partition_status_iid_and_partitioned(digits):
    iid = BatchFeed(digits, 16, SEED)
    iid.take()
    unread = iter(())  # an iid run never walks its sessions
    assert partition_status(None, iid, 5, unread, digits.num_train, 0) == {
        "kind": "iid", "shards": 1,
        "perShard": [{"shard": 0, "examples": digits.num_train, "batches": 1, "sessions": 5}],
        "volunteers": 0}
    shards = _shards(digits)
    feed = BatchFeed(digits, 16, SEED, shards)
    feed.take(3)
    public = PartitionConfig.from_mapping(PARTITION).public()
    block = partition_status(public, feed, 3, [3, None, 3], digits.num_train, 2)
    assert block["kind"] == "shards" and block["shards"] == 4 and block["volunteers"] == 2
    assert [(s["batches"], s["sessions"]) for s in block["perShard"]] == [
        (0, 0), (0, 0), (0, 0), (1, 2)]
    assert [s["examples"] for s in block["perShard"]] == [len(s) for s in shards]
    assert public == PartitionConfig.from_mapping(PARTITION).public()  # not modified


def test_capacity_status_fields():
    limits = AdmissionLimits(body_budget=1000, snapshot_budget=2000)
    admission = Admission(limits, clock=lambda: 0.0)
    pool = SnapshotPool(LAYOUT.size, keep=1)
    buffer = pool.acquire()
    versions = VersionSnapshots(0, Snapshot(buffer, 0), pool)
    block = capacity_status(admission, versions, train_leases=3, merge_queue=1,
                            refused={"busy": 2}, merges_together=5)
    assert list(block) == ["bodyBytes", "bodyBudget", "snapshots", "snapshotBytes",
                           "snapshotBudget", "mergeQueue", "mergeQueueLimit", "mergesTogether",
                           "bodiesInFlight",
                           "updateCost", "expectedWait", "updateLatency", "trainLeases",
                           "trainLeaseLimit", "leaseToUpload", "refused"]
    assert (block["bodyBudget"], block["snapshotBudget"], block["snapshots"]) == (1000, 2000, 1)
    assert (block["trainLeases"], block["mergeQueue"], block["refused"]) == (3, 1, {"busy": 2})
    assert block["leaseToUpload"] is None and block["mergeQueueLimit"] == limits.merge_queue
    assert block["mergesTogether"] == 5


# ---------------------------------------------------------------------------------- lifecycle

def test_lifecycle_pause_finish_end_and_frozen_elapsed():
    run = RunLifecycle(started=100.0, elapsed_before=5.0)
    assert run.elapsed(110.0) == 15.0 and not run.finishing
    assert run.pause() and not run.pause() and run.state == "paused"
    assert run.unpause() and not run.unpause() and run.state == "running"
    assert run.begin_finishing("max_merges=3 reached", 120.0)
    assert not run.begin_finishing("max_seconds=9 reached", 121.0)  # the first reason stays
    assert run.finishing and run.end_reason == "max_merges=3 reached"
    assert run.finishing_deadline(60.0) == 180.0
    assert run.end("max_merges=3 reached", 130.0)
    assert not run.end("admin", 140.0)  # ended is final
    assert (run.state, run.end_reason, run.finishing) == ("ended", "max_merges=3 reached", False)
    assert run.elapsed(1000.0) == 35.0 and run.finishing_deadline(60.0) is None
    assert not run.pause() and not run.begin_finishing("again", 1000.0)


def test_lifecycle_restore_continues_the_elapsed_seconds():
    run = RunLifecycle(started=50.0)
    run.restore("paused", None, 20.0)
    assert (run.state, run.elapsed(60.0)) == ("paused", 30.0)
    ended = RunLifecycle(started=50.0)
    ended.restore("ended", "target_accuracy=0.9 reached", 42.0)
    assert ended.elapsed(500.0) == 42.0 and not ended.end("admin", 500.0)


# ------------------------------------------------------------------------------------ cut-off

def test_a_streak_of_invalid_submissions_cuts_a_session_off():
    session = SessionRegistry().join({"kind": "python", "name": "x"}, 0.0)
    rule = CutOff(max_invalid=3, seconds=60.0)
    assert not rule.note(session, "busy", 1.0)  # the server's own refusals never count
    assert not rule.note(session, "too_stale", 1.0)
    assert [rule.note(session, "not_finite", 2.0) for _ in range(3)] == [False, False, True]
    assert (session.invalid_streak, session.cut_off_until) == (0, 62.0)
    with pytest.raises(ProtocolError) as refused:
        rule.check(session.cut_off_until, 2.5)
    error = refused.value
    assert (error.status, error.code, error.headers["Retry-After"]) == (429, "cut_off", "60")
    assert "too many invalid updates in a row (3)" in error.message
    with pytest.raises(ProtocolError) as last:
        rule.check(session.cut_off_until, 61.9)
    assert last.value.headers["Retry-After"] == "1"  # at least 1
    rule.check(session.cut_off_until, 62.0)  # served: nothing raised
    assert "evaluation_disagrees" in INVALID_UPDATE_CODES
