"""What a served model's checkpoint holds (``state.json``), built from values and applied back.

The coordinator decides when to checkpoint and holds the merge lock meanwhile; this module only
turns explicit values into the JSON state (`build_state`, `data_state`), writes it with the
weights and the strategy's arrays (`write`, in a worker thread), and applies a loaded checkpoint
back to the collaborators it came from (`restore`, `restore_data`). It never sees the coordinator.

``state.json`` (format `STATE_FORMAT`), in this order: ``format``, ``name``, ``fingerprint``
(`store.layout_fingerprint`), ``manifest``, ``strategy`` (``name``, ``meta``: the strategy's
`StrategyState.meta`; its arrays go to ``strategy.npz``), ``screening`` (the screen's adaptive
window, or null), ``version``, ``steps``, ``merges``, ``updatesAccepted``, ``clientsJoined``,
``state``, ``endReason``, ``history``, ``data``, ``evaluation`` (`EvaluationSchedule.state`),
``traffic`` (`Traffic.state`), ``elapsed`` (seconds trained across restarts), ``savedAt``.

``data``: ``nextBatch`` and ``outstanding`` (shard 0's position and batches not yet merged: the
whole sequence without a partition, what checkpoints from before partitions hold),
``batchExamples``, ``seed``, ``partition`` (its public settings, null for iid), ``shards`` (per
shard ``nextBatch`` and ``outstanding``) and ``assignment`` (`ShardAssigner.state`). Resuming,
each shard continues where it stopped and its outstanding batches are handed out first; a changed
partition starts every shard over with a fresh assignment table (with a warning), and a changed
batch size or seed continues at the stored positions with the new settings (with a warning).

Optional fields a checkpoint from an older version lacks (``updatesAccepted``,
``clientsJoined``, ``history``, ``state``, ``data``, ``evaluation``, ``traffic``, ``elapsed``)
take their starting values; ``version``, ``steps`` and ``merges`` are required.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from webnn.merge.base import StrategyState
from webnn.merge.screening import Screen
from webnn.server.batch_feed import BatchFeed
from webnn.server.evaluation import EvaluationSchedule
from webnn.server.shards import ShardAssigner
from webnn.server.store import Checkpoint, StateError, Store, layout_fingerprint
from webnn.server.tasks import TrainWork
from webnn.server.traffic import Traffic
from webnn.weights import WeightLayout

log = logging.getLogger("webnn.server")

STATE_FORMAT = 1


@dataclass
class RunCounters:
    """The run's counters a checkpoint carries: the model's `version` and `steps` t, `merges`,
    `updates_accepted`, `clients_joined`, the run `state` (``running``, ``paused``, ``ended``),
    its `end_reason` and `elapsed` seconds of training across restarts."""

    version: int = 0
    steps: int = 0
    merges: int = 0
    updates_accepted: int = 0
    clients_joined: int = 0
    state: str = "running"
    end_reason: str | None = None
    elapsed: float = 0.0

    @classmethod
    def from_state(cls, state: dict) -> RunCounters:
        """The counters of a loaded ``state.json`` (module docstring: what may be missing)."""
        return cls(version=int(state["version"]), steps=int(state["steps"]),
                   merges=int(state["merges"]),
                   updates_accepted=int(state.get("updatesAccepted", 0)),
                   clients_joined=int(state.get("clientsJoined", 0)),
                   state=state.get("state", "running"), end_reason=state.get("endReason"),
                   elapsed=float(state.get("elapsed", 0.0)))


@dataclass
class Restored:
    """A checkpoint applied back: the model's `weights`, the run's `counters`, its `history`
    (entries from before replication count as not validated: `Evaluations.load`) and the
    `assigner` of the stored volunteer table (None: keep a fresh one, the partition changed)."""

    weights: np.ndarray
    counters: RunCounters
    history: list[dict] = field(default_factory=list)
    assigner: ShardAssigner | None = None


def data_state(feed: BatchFeed, leased: Iterable[TrainWork], partition: dict | None,
               assigner: ShardAssigner) -> dict:
    """The checkpoint's ``data``: the feed's positions and the batches not yet merged (queued in
    the feed, or `leased` by open training tasks), per shard; `partition` is the partition's
    public settings (None: iid)."""
    leased = list(leased)
    shards = [{"nextBatch": feed.positions[i], "outstanding": feed.outstanding(leased, i)}
              for i in range(feed.count)]
    return {"nextBatch": feed.position, "outstanding": feed.outstanding(leased),
            "batchExamples": feed.examples_per_batch, "seed": feed.seed,
            "partition": partition, "shards": shards, "assignment": assigner.state()}


def build_state(*, name: str, layout: WeightLayout, strategy: str, screening: dict | None,
                counters: RunCounters, history: list[dict], data: dict, evaluation: dict,
                traffic: dict, saved_at: float) -> dict:
    """The ``state.json`` of a checkpoint (module docstring), the strategy's ``meta`` still
    empty: `write` adds it with the lock held."""
    return {
        "format": STATE_FORMAT, "name": name,
        "fingerprint": layout_fingerprint(layout), "manifest": layout.manifest(),
        "strategy": {"name": strategy, "meta": {}},
        "screening": screening,
        "version": counters.version, "steps": counters.steps, "merges": counters.merges,
        "updatesAccepted": counters.updates_accepted, "clientsJoined": counters.clients_joined,
        "state": counters.state,
        "endReason": counters.end_reason, "history": list(history),
        "data": data,
        "evaluation": evaluation,
        "traffic": traffic,
        "elapsed": counters.elapsed, "savedAt": saved_at,
    }


def write(store: Store, state: dict, weights: np.ndarray, strategy: Any, model_json: dict,
          layout: WeightLayout) -> None:
    """In a worker thread, with the merge lock held (weights and strategy still): add the
    strategy's state (``meta`` into `state`, arrays into ``strategy.npz``) and write one atomic
    checkpoint (`Store.save`)."""
    strategy_state = strategy.state()
    state["strategy"]["meta"] = strategy_state.meta
    store.save(Checkpoint(weights=weights, state=state, model_json=model_json,
                          strategy_arrays={k: np.asarray(v) for k, v in
                                           strategy_state.arrays.items()}),
               layout)


def restore(checkpoint: Checkpoint, *, strategy: Any, screen: Screen | None,
            schedule: EvaluationSchedule, feed: BatchFeed, traffic: Traffic,
            partition: dict | None, state_dir: Path | str | None = None) -> Restored:
    """Apply `checkpoint` to the collaborators it was taken from: the strategy's state, the
    screen's window, the evaluation schedule, the feed's positions (`restore_data`) and the
    traffic counts; the rest is returned (`Restored`) for the coordinator to take. Raises
    `StateError` when the checkpoint was trained with another strategy (nothing changed then)."""
    state = checkpoint.state
    stored = state.get("strategy", {}).get("name")
    if stored != strategy.name:
        raise StateError(f"state dir {state_dir} was trained with strategy "
                         f"{stored!r}, not {strategy.name!r}; use the same strategy or "
                         "another state dir")
    strategy.load_state(StrategyState(arrays=checkpoint.strategy_arrays,
                                      meta=state["strategy"].get("meta", {})))
    if screen is not None and state.get("screening"):
        screen.load_state(state["screening"])
    counters = RunCounters.from_state(state)
    history = list(state.get("history", []))
    assigner = restore_data(state.get("data", {}), feed, partition)
    schedule.load(state.get("evaluation", {}))
    traffic.load(state.get("traffic"))
    return Restored(weights=checkpoint.weights, counters=counters, history=history,
                    assigner=assigner)


def restore_data(data: dict, feed: BatchFeed, partition: dict | None) -> ShardAssigner | None:
    """Each shard of `feed` continues where it stopped, its outstanding batches first; returns
    the stored volunteer table. A changed `partition` (public settings, None: iid) starts the
    shards over and returns None (keep a fresh table); a checkpoint from before partitions holds
    the one iid sequence."""
    if data.get("batchExamples") != feed.examples_per_batch or data.get("seed") != feed.seed:
        log.warning("batch size or seed changed since the checkpoint; the data sequence "
                    "continues at the stored position with the new settings")
    stored = data.get("partition")
    if stored is None and (partition is None or partition.get("kind") == "iid"):
        stored = partition
    if stored != partition:
        log.warning("the partition changed since the checkpoint (%s, now %s); every shard's "
                    "data sequence starts over", stored, partition)
        return None
    shards = data.get("shards") or [{"nextBatch": data.get("nextBatch", 0),
                                     "outstanding": data.get("outstanding", [])}]
    for index, entry in enumerate(shards[:feed.count]):
        feed.resume(int(entry.get("nextBatch", 0)), entry.get("outstanding", []), index)
    return ShardAssigner.from_state(data.get("assignment", {}), feed.count)
