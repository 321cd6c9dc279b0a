"""Blocks of a served model's status JSON (``GET api/v1/status``, docs/protocol.md), rendered
from explicit values: the ``partition`` block and the ``capacity`` block. The coordinator
assembles the whole answer; these functions never see it.

``partition``: the partition's public settings (``{"kind": "iid"}`` without one), ``shards``
(the feed's shard count), ``perShard`` (per shard ``shard``, ``examples`` (the training examples
it draws from; the whole training set without a partition), ``batches`` (handed out so far) and
``sessions`` (live sessions on it; every session is on shard 0 without a partition); null past
`MAX_SHARDS_LISTED` shards) and ``volunteers`` (ids in the assignment table).

``capacity``: admission's budgets and what fills them (``bodyBytes``/``bodyBudget``,
``snapshots``/``snapshotBytes``/``snapshotBudget``, ``mergeQueue``/``mergeQueueLimit``,
``bodiesInFlight``; ``mergesTogether``: merges done in passes of several queued updates), its
latency figures (``updateCost`` s per merged update, 5 decimals;
``expectedWait`` s, 4 decimals; ``updateLatency``; ``leaseToUpload`` s, 4 decimals; null when
not measured yet), ``trainLeases``/``trainLeaseLimit`` and ``refused`` (requests turned away by
admission, by code).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from webnn.server.admission import Admission
from webnn.server.batch_feed import BatchFeed
from webnn.server.versions import VersionSnapshots

MAX_SHARDS_LISTED = 256
"""Past this many shards ``perShard`` is null (the answer stays small)."""


def partition_status(partition: dict | None, feed: BatchFeed, sessions: int,
                     session_shards: Iterable[int | None], num_train: int | None,
                     volunteers: int) -> dict:
    """The ``partition`` block (module docstring): `partition` is the partition's public
    settings (None: iid), `sessions` the number of live sessions, `session_shards` the shard of
    each (None: not assigned yet; read only with a partition, so an iid run's status does no
    work per session), `num_train` the training set's size, `volunteers` the assignment table's
    size."""
    public = dict({"kind": "iid"} if partition is None else partition)
    public["shards"] = feed.count
    live = (Counter(s for s in session_shards if s is not None) if feed.shards is not None
            else Counter({0: sessions}))
    public["perShard"] = [
        {"shard": i, "examples": (num_train if feed.shards is None
                                  else int(len(feed.shards[i]))),
         "batches": feed.positions[i], "sessions": live[i]}
        for i in range(feed.count)] if feed.count <= MAX_SHARDS_LISTED else None
    public["volunteers"] = volunteers
    return public


def capacity_status(admission: Admission, versions: VersionSnapshots, *, train_leases: int,
                    merge_queue: int, refused: Mapping[str, int],
                    merges_together: int = 0) -> dict:
    """The ``capacity`` block (module docstring): `train_leases` open training leases,
    `merge_queue` updates waiting for the merge lock, `refused` admission's refusals by code,
    `merges_together` the merges done in passes of several queued updates."""
    limits = admission.limits
    return {
        "bodyBytes": admission.bodies.used, "bodyBudget": limits.body_budget,
        "snapshots": len(versions), "snapshotBytes": versions.nbytes,
        "snapshotBudget": limits.snapshot_budget,
        "mergeQueue": merge_queue, "mergeQueueLimit": limits.merge_queue,
        "mergesTogether": merges_together,
        "bodiesInFlight": admission.bodies.count,
        "updateCost": rounded(admission.meter.cost(), 5),
        "expectedWait": rounded(admission.expected_wait(0), 4),
        "updateLatency": limits.update_latency,
        "trainLeases": train_leases,
        "trainLeaseLimit": admission.train_lease_limit(),
        "leaseToUpload": rounded(admission.lease_to_upload, 4),
        "refused": dict(refused)}


def rounded(value: float | None, digits: int) -> float | None:
    """`value` rounded to `digits` decimals; None stays None."""
    return None if value is None else round(value, digits)
