"""Which shard of a partitioned training set each client trains on.

A volunteer that sends an id at join (``client.volunteerId``) keeps its shard for as long as the
server's state lives: the table volunteer id -> shard is checkpointed. A new volunteer, and a
session without an id, gets the least-loaded shard, where a shard's load is the number of
volunteer ids assigned to it plus the live anonymous sessions on it; ties go to the lowest shard
number. So with P shards the first P volunteers get P different shards, in the order they first
ask for training work.

The table keeps at most `MAX_VOLUNTEERS` ids (ids are strangers' strings, so it must not grow
without bound): past that the id seen least recently is forgotten, and its shard's load falls; if
that volunteer comes back it is assigned afresh, like a new one.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

MAX_VOLUNTEERS = 100_000
"""Volunteer ids the assignment table remembers (about 100 bytes each)."""


@dataclass
class ShardAssigner:
    """The assignment table of `count` shards; see the module docstring."""

    count: int
    volunteers: dict[str, int] = field(default_factory=dict)  # least recently seen first
    load: list[int] = field(default_factory=list)
    limit: int = MAX_VOLUNTEERS
    _heap: list[tuple[int, int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.load:
            self.load = [0] * self.count
        self._heap = [(n, s) for s, n in enumerate(self.load)]
        heapq.heapify(self._heap)

    def assign(self, volunteer_id: str | None) -> int:
        """The shard of `volunteer_id` (a new one gets the least-loaded); an anonymous session
        gets the least-loaded shard and counts on it until `release`d."""
        if volunteer_id is not None and volunteer_id in self.volunteers:
            shard = self.volunteers.pop(volunteer_id)
            self.volunteers[volunteer_id] = shard  # now the most recently seen
            return shard
        shard = self._least_loaded()
        self._change(shard, +1)
        if volunteer_id is not None:
            self.volunteers[volunteer_id] = shard
            if len(self.volunteers) > self.limit:
                forgotten = next(iter(self.volunteers))
                self._change(self.volunteers.pop(forgotten), -1)
        return shard

    def release(self, shard: int, volunteer_id: str | None) -> None:
        """An anonymous session on `shard` left (a volunteer's shard stays theirs)."""
        if volunteer_id is None:
            self._change(shard, -1)

    def state(self) -> dict:
        """The checkpointed part: the volunteer table (anonymous sessions do not survive)."""
        return {"count": self.count, "volunteers": dict(self.volunteers)}

    @classmethod
    def from_state(cls, state: dict, count: int) -> ShardAssigner:
        """The table of a checkpoint, for `count` shards (entries past `count` are dropped)."""
        volunteers = {str(k): int(v) for k, v in dict(state.get("volunteers", {})).items()
                      if 0 <= int(v) < count}
        load = [0] * count
        for shard in volunteers.values():
            load[shard] += 1
        return cls(count, volunteers, load)

    def _least_loaded(self) -> int:
        while True:  # lazy deletion: skip entries whose load changed since they were pushed
            load, shard = self._heap[0]
            if self.load[shard] == load:
                return shard
            heapq.heappop(self._heap)

    def _change(self, shard: int, delta: int) -> None:
        self.load[shard] += delta
        heapq.heappush(self._heap, (self.load[shard], shard))
        if len(self._heap) > 4 * self.count + 64:  # drop the stale entries now and then
            self._heap = [(n, s) for s, n in enumerate(self.load)]
            heapq.heapify(self._heap)
