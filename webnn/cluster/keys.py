"""The Redis keys of one run, all under ``wnn:<run>:`` (a single Redis instance, not Redis
Cluster: the Lua scripts touch keys they compute from a prefix)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunKeys:
    """Key names for run `run`; see docs/scale-out.md *Data in Redis*."""

    run: str

    @property
    def prefix(self) -> str:
        return f"wnn:{self.run}:"

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def meta(self) -> str:
        """hash: the run's identity (model name, parameter count, layout fingerprint, strategy)."""
        return self.key("meta")

    @property
    def current(self) -> str:
        """hash: the newest published version (version, digest, steps, merges, time)."""
        return self.key("current")

    def version(self, number: int) -> str:
        """hash: a published version (digest, steps, merges); dropped with its blob."""
        return self.key(f"version:{number}")

    def blob(self, digest: str) -> str:
        """string: the float32 weights whose SHA-256 is `digest`."""
        return self.key(f"blob:{digest}")

    @property
    def checkpoint(self) -> str:
        """hash: the merger's checkpoint (version, digest, steps, merges, applied; ``state`` only
        in a run checkpointed before `checkpoint_state`)."""
        return self.key("checkpoint")

    @property
    def checkpoint_state(self) -> str:
        """string: the strategy's state of the checkpoint (``.npz`` bytes), renamed into place
        by the fenced publication (`scripts.PUBLISH`) from the merger's staged copy."""
        return self.key("checkpoint_state")

    def payload(self, name: str) -> str:
        """string: the model-sized array of one stream entry (the entry holds this key), written
        with its entry in one transaction and deleted by the publication that covers it."""
        return self.key(f"payload:{name}")

    def staged(self, owner: str, what: str) -> str:
        """string: a merger's copy of a new blob or state, written in the same transaction as
        its fenced publication, which renames it into place (or deletes it when the lock is
        another's)."""
        return self.key(f"staged:{owner}:{what}")

    @property
    def bases(self) -> str:
        """sorted set: stream entry id -> the base version its raw update is merged against
        (score); a version at or above the lowest score is never dropped, and the merger's
        publication removes an entry once it is applied."""
        return self.key("bases")

    @property
    def stream(self) -> str:
        """stream: accepted updates and partials, in the order the merger applies them."""
        return self.key("stream")

    @property
    def merge_log(self) -> str:
        """list: one JSON record per applied stream entry (entry id, tasks, version)."""
        return self.key("merged")

    @property
    def next_batch(self) -> str:
        """counter: the next batch number of the data sequence (shard s > 0 of a partitioned
        run: ``next_batch:<s>``; likewise ``returned:<s>``)."""
        return self.key("next_batch")

    @property
    def volunteers(self) -> str:
        """hash: volunteer id -> data shard (partitioned runs)."""
        return self.key("volunteers")

    @property
    def shard_load(self) -> str:
        """hash: shard -> its load (volunteer ids assigned plus live anonymous sessions)."""
        return self.key("shard_load")

    @property
    def returned(self) -> str:
        """list: batch numbers handed back (lease ran out), handed out again first."""
        return self.key("returned")

    @property
    def leases(self) -> str:
        """sorted set: task id -> lease (or claim) deadline, seconds since the epoch."""
        return self.key("leases")

    @property
    def task_prefix(self) -> str:
        return self.key("task:")

    def task(self, task_id: str) -> str:
        """hash: state (open, claimed, done, expired), session, index, version, steps, expires,
        owner, answer."""
        return self.task_prefix + task_id

    @property
    def session_tasks_prefix(self) -> str:
        return self.key("stasks:")

    def session_tasks(self, token: str) -> str:
        """set: a session's open task ids."""
        return self.session_tasks_prefix + token

    @property
    def session_prefix(self) -> str:
        return self.key("session:")

    def session(self, token: str) -> str:
        """hash: one session (client id, kind, name, joined, encodings, counters); expires."""
        return self.key(f"session:{token}")

    @property
    def sessions(self) -> str:
        """sorted set: session token -> last seen."""
        return self.key("sessions")

    @property
    def stats(self) -> str:
        """hash: run-wide counters (tasks issued, leases expired, durable updates, refusals;
        ``stream_entries`` written and ``stream_applied`` covered by a published checkpoint)."""
        return self.key("stats")

    @property
    def pace(self) -> str:
        """hash: the active merger's measured work per stream entry (``cost`` seconds, ``at``
        time, ``merger`` label), which the front-ends' back-pressure reads (`backlog.py`)."""
        return self.key("merger_pace")

    @property
    def lock(self) -> str:
        """string: the active merger's id (SET NX PX, renewed)."""
        return self.key("merger_lock")

    @property
    def channel(self) -> str:
        """pub/sub channel: one JSON message per published version."""
        return self.key("versions")

    @property
    def control(self) -> str:
        """hash: the run's state (state, finishing, endReason, endedElapsed) and the evaluation
        schedule's counters (schedule, JSON); see `control.py`."""
        return self.key("control")

    @property
    def evaluation(self) -> str:
        """hash: the evaluation in progress (json: `evalstate.evaluation_to_json`, rev: the
        revision of its last write); absent when none is."""
        return self.key("evaluation")

    @property
    def evaluation_rev(self) -> str:
        """counter: revisions of `evaluation` (unique across evaluations)."""
        return self.key("evaluation_rev")

    @property
    def eval_leases(self) -> str:
        """sorted set: evaluation task id -> lease deadline (the merger gives due ones back)."""
        return self.key("eval_leases")

    @property
    def history(self) -> str:
        """list: one JSON history entry per completed evaluation (the merger appends)."""
        return self.key("history")

    @property
    def parties(self) -> str:
        """hash: session token -> JSON [address group, volunteer id] (evaluation independence)."""
        return self.key("parties")

    @property
    def events(self) -> str:
        """pub/sub channel: ``{"event", "data"}`` for every front-end's event stream."""
        return self.key("events")

    def joins(self, address: str) -> str:
        """hash: the join token bucket of one client address (tokens, at); expires."""
        return self.key(f"joins:{address}")

    @property
    def frontends(self) -> str:
        """sorted set: front-end label -> its last heartbeat (seconds since the epoch); the
        live front-ends share the run's open training leases (`admission_share.py`)."""
        return self.key("frontends")

    @property
    def processes(self) -> str:
        """hash: process label -> JSON {role, host, pid, started} (written at start)."""
        return self.key("processes")

    def metrics(self, process: str) -> str:
        """string: a process's /metrics text (with its `process` label), expiring."""
        return self.key(f"metrics:{process}")

    @property
    def metrics_prefix(self) -> str:
        return self.key("metrics:")


RedisClient = Any
"""A ``redis.asyncio.Redis`` (typed loosely: the client's stubs type every reply as a union)."""
