"""A front-end's part in the run's admission: its share of the open training leases, and the
traffic counters every front-end adds to the run's.

The single process bounds its open training leases by what it can work off while their clients
compute (`webnn.server.admission.Admission.train_lease_limit`). In a scale-out run the leases
are the run's (one sorted set in Redis) while the cost is each front-end's own (its CPU per
update: the body is read, decoded, screened and written to the stream where it arrives), so a
front-end applies its own limit to its share of the run's open leases,
``open_here = ceil(open_run / live_frontends)`` (the kernel spreads connections evenly over the
front-ends of a port). ``open_run`` is read with every lease handed out (`LEASE` answers it) and
each tick; ``live_frontends`` counts the front-ends whose heartbeat (each tick) is younger than
`LIVE_SECONDS`, so a killed front-end stops counting within that time.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

from webnn.cluster.keys import RedisClient, RunKeys

LIVE_SECONDS = 3.0
"""A front-end whose last heartbeat is older than this is not counted as live."""


@dataclass
class AdmissionShare:
    """The run's open training leases and live front-ends, as this front-end last read them."""

    open_run: int = 0
    frontends: int = 1

    def open_here(self) -> int:
        """This front-end's share of the run's open training leases (at least 0)."""
        return math.ceil(self.open_run / max(1, self.frontends))

    def leased(self, open_run: int | None) -> None:
        """A training lease was handed out; `open_run` the run's open leases after it (None when
        not known: counted as one more)."""
        self.open_run = self.open_run + 1 if open_run is None else open_run

    async def read(self, redis: RedisClient, keys: RunKeys, label: str,
                   now: float | None = None) -> None:
        """Heartbeat this front-end, then read the run's open leases and live front-ends."""
        now = time.time() if now is None else now
        pipe = redis.pipeline(transaction=False)
        pipe.zadd(keys.frontends, {label: now})
        pipe.zremrangebyscore(keys.frontends, "-inf", now - 10 * LIVE_SECONDS)
        pipe.zcard(keys.leases)
        pipe.zcount(keys.frontends, now - LIVE_SECONDS, "+inf")
        _, _, open_run, live = await pipe.execute()
        self.open_run, self.frontends = int(open_run), max(1, int(live))

    async def leave(self, redis: RedisClient, keys: RunKeys, label: str) -> None:
        """A clean stop: this front-end no longer counts."""
        await redis.zrem(keys.frontends, label)


@dataclass
class TrafficCounts:
    """Accepted update bodies and weights sent, by encoding (count and bytes), counted here and
    added to the run's ``stats`` hash each tick (``traffic:<table>:<encoding>`` fields), so
    status's ``traffic`` block is the run's whichever front-end answers."""

    pending: Counter[str] = field(default_factory=Counter)

    def update(self, encoding: str, nbytes: int) -> None:
        self.pending[f"traffic:updates:{encoding}"] += 1
        self.pending[f"traffic:updateBytes:{encoding}"] += nbytes

    def weights(self, encoding: str, nbytes: int) -> None:
        self.pending[f"traffic:weights:{encoding}"] += 1
        self.pending[f"traffic:weightBytes:{encoding}"] += nbytes

    async def flush(self, redis: RedisClient, stats: str) -> None:
        """Add what was counted since the last flush to the run's counters."""
        if not self.pending:
            return
        pending, self.pending = self.pending, Counter()
        pipe = redis.pipeline(transaction=False)
        for name, count in pending.items():
            pipe.hincrby(stats, name, count)
        await pipe.execute()


def traffic_summary(stats: dict[str, int]) -> dict:
    """Status's ``traffic`` block from the run's counters: ``{"updates": {enc: {"count",
    "bytes", "meanBytes"}}, "weights": {...}}`` (the single process's shape)."""
    def table(counts: str, sizes: str) -> dict:
        out = {}
        for name, count in sorted(stats.items()):
            if name.startswith(f"traffic:{counts}:") and count:
                encoding = name.split(":", 2)[2]
                nbytes = stats.get(f"traffic:{sizes}:{encoding}", 0)
                out[encoding] = {"count": count, "bytes": nbytes,
                                 "meanBytes": round(nbytes / count, 1)}
        return out

    return {"updates": table("updates", "updateBytes"),
            "weights": table("weights", "weightBytes")}
