"""Back-pressure from the merger to the front-ends: the unmerged stream is bounded by the time
the merger needs to work it off.

The merger measures its pace (`PaceMeter`): ``c``, seconds of its wall-clock work per stream
entry (reading the entry, applying it, publishing the version and checkpoint, amortised over the
read batch), weighted over about the last `PACE_ENTRIES` entries, and writes it to the run's
``merger_pace`` hash at most every `PACE_SECONDS` (`share_pace`). A read batch taken from a
backlog (a full batch) counts the read too; a batch taken as entries arrive counts from the
read's return, so the time spent waiting for entries is never work.

The unmerged stream is ``B = stream_entries - stream_applied`` (the run's counters: `COMMIT`
adds one per entry written, the fenced `PUBLISH` adds the entries its checkpoint covers, so a
deposed merger counts nothing and a takeover keeps the count). An entry a strategy only
buffered counts in ``B`` until a checkpoint covers it, so the merger publishes one once those
entries hold a quarter of the budget in its work (`merger.FLUSH_SHARE`). Each front-end reads
``B`` and ``c`` every `FOLLOW_SECONDS` (`Backlog.read`: one pipelined round trip; nothing per
request) and adds the entries it wrote since. The expected work-off time is ``W = B * c``; with
the budget ``T`` (``--merge-backlog``, seconds):

- ``W > T``: a new update body is refused before it is read, ``503 busy`` with ``Retry-After``
  (at least ``W - T``), counted as admission's refusals are (`capacity.refused.busy`);
- ``W > T / 2``: training leases are deferred (``{"task": null, "retryAfter"}``), as the single
  process defers them while half its merge queue is taken.

So the stream a standby must replay after a takeover holds about ``T`` seconds of work, and the
merge lag an acknowledged update sees is bounded the same way. Without a measured pace (a new
run before its first merge) nothing is refused; ``T = 0`` turns the bound off.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

from webnn.cluster.keys import RedisClient, RunKeys
from webnn.server.admission import busy
from webnn.server.errors import ProtocolError

PACE_ENTRIES = 256.0
"""Entries over which the merger's pace is weighted (older ones fade by e^-1 per this many)."""
PACE_SECONDS = 0.25
"""The merger writes its pace at most this often."""
FOLLOW_SECONDS = 0.25
"""A front-end reads the backlog and the pace this often."""


def _number(value: bytes | str | None) -> float | None:
    if value is None:
        return None
    try:
        found = float(value)
    except ValueError:
        return None
    return found if math.isfinite(found) and found >= 0 else None


@dataclass
class PaceMeter:
    """The merger's seconds of work per stream entry, a mean weighted toward recent entries:
    each `note` fades the sums by ``exp(-entries / PACE_ENTRIES)`` before adding its own."""

    seconds: float = 0.0
    entries: float = 0.0
    shared: float = 0.0
    """When the pace was last written to Redis (monotonic seconds)."""

    def note(self, seconds: float, entries: int) -> None:
        """`entries` stream entries took `seconds` of work."""
        if entries <= 0 or not math.isfinite(seconds) or seconds < 0:
            return
        fade = math.exp(-entries / PACE_ENTRIES)
        self.seconds = self.seconds * fade + seconds
        self.entries = self.entries * fade + entries

    def cost(self) -> float | None:
        """Seconds per entry (None before the first entry)."""
        return self.seconds / self.entries if self.entries > 0 else None

    async def share(self, redis: RedisClient, keys: RunKeys, label: str,
                    now: float | None = None) -> None:
        """Write the pace to the run's ``merger_pace`` hash (at most every `PACE_SECONDS`)."""
        cost = self.cost()
        now = time.monotonic() if now is None else now
        if cost is None or now - self.shared < PACE_SECONDS:
            return
        self.shared = now
        await redis.hset(keys.pace, mapping={"cost": repr(cost), "at": repr(time.time()),
                                             "merger": label})


@dataclass
class Backlog:
    """A front-end's view of the unmerged stream and the merger's pace (module docstring)."""

    budget: float
    """``T``: seconds of the merger's work the unmerged stream may hold (0: no bound)."""
    entries: int = 0
    """``B`` as last read (the run's entries written less those a checkpoint covers)."""
    written: int = 0
    """Entries this front-end wrote since that read."""
    cost: float | None = None
    """``c``: the merger's seconds per entry as last read (None: not measured yet)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Bodies (``busy``) and leases (``deferred``) turned away for the backlog (also counted
    with admission's in status ``capacity.refused``)."""

    def wait(self) -> float | None:
        """``W = (B + written) * c``: seconds the merger needs to work off the stream."""
        if self.cost is None:
            return None
        return (self.entries + self.written) * self.cost

    def over(self, share: float = 1.0) -> bool:
        """Whether ``W`` exceeds `share` of the budget."""
        wait = self.wait()
        return self.budget > 0 and wait is not None and wait > share * self.budget

    def deferring(self) -> bool:
        """Training leases are deferred past half the budget (counted when they are)."""
        if not self.over(0.5):
            return False
        self.refused["deferred"] += 1
        return True

    def refusal(self, retry_after: float) -> ProtocolError:
        """The ``503 busy`` of a body refused for the backlog; ``Retry-After`` at least
        `retry_after` (admission's, spread out) and at least the time past the budget."""
        wait = self.wait() or 0.0
        self.refused["busy"] += 1
        return busy(f"{self.entries + self.written} stream entries wait for the merger, "
                    f"{wait:.2f} s of its work (limit {self.budget:g} s)",
                    max(retry_after, wait - self.budget))

    def note_written(self) -> None:
        """This front-end wrote one entry."""
        self.written += 1

    async def read(self, redis: RedisClient, keys: RunKeys) -> None:
        """The run's backlog and the merger's pace, in one round trip."""
        pipe = redis.pipeline(transaction=False)
        pipe.hmget(keys.stats, "stream_entries", "stream_applied")
        pipe.hget(keys.pace, "cost")
        (entries, applied), cost = await pipe.execute()
        self.entries = max(0, int(entries or 0) - int(applied or 0))
        self.written = 0
        self.cost = _number(cost)

    def public(self) -> dict:
        """Status's ``capacity.mergeBacklog``."""
        wait = self.wait()
        return {"entries": self.entries + self.written,
                "entryCost": None if self.cost is None else round(self.cost, 5),
                "seconds": None if wait is None else round(wait, 3), "budget": self.budget,
                "refused": dict(self.refused)}
