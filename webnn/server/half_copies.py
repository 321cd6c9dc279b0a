"""Which versions get a float16 copy, and which version an f16 session starts a task from.

Sessions that negotiated ``f16`` weights (`webnn.server.encodings`) are sent a float16 copy of
a version's weights. numpy's float32-to-float16 cast has no SIMD path (about 3 ms per million
values), so a copy for every version cost a 1M-parameter server about a third of its CPU per
update at saturation, where every merge makes a version (docs/capacity.md, *Compressed
updates*). The rule here:

- a new version gets its copy (in the merge's worker thread) only if the last copy was made at
  least `interval` seconds ago (`due`): at most ``1 / interval`` copies a second, however fast
  the merges come;
- an f16 session's training task starts from the newest version with a copy (`lease_version`)
  if that copy is at most ``2 * interval`` old; otherwise (merges paused, or none made yet) from
  the current version, whose copy is then made when it is first sent
  (`VersionSnapshots.half_wire`). The policy holds that version in the version store while it
  is the newest with a copy, and releases it when the last f16 session leaves (`forget`).

What it costs: an f16 task may start up to the merges of about one `interval` behind the newest
version, a staleness those merges add to what the task already has. It applies to models
above `MIN_VALUES` values (`HALF_COPY_INTERVAL`); smaller ones copy every version at once (the
copy takes microseconds), so their tasks start from the newest version as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from webnn.server.versions import VersionSnapshots

HALF_COPY_INTERVAL = 0.05
"""Seconds between float16 copies of new versions for models above `MIN_VALUES`: at most 20
copies a second (a 1M-parameter server at 100 merges a second makes one for every fifth
version instead of each)."""
MIN_VALUES = 1 << 16
"""Models of at most this many values copy every version (`interval` 0)."""


@dataclass(eq=False)
class HalfCopies:
    """The newest version with a float16 copy (`version`, held in `versions` while it is) and
    when it was made; see the module docstring for the rule."""

    versions: VersionSnapshots
    interval: float
    version: int | None = None
    made_at: float = -math.inf

    @classmethod
    def for_model(cls, versions: VersionSnapshots, values: int) -> HalfCopies:
        """The policy for a model of `values` values."""
        return cls(versions, HALF_COPY_INTERVAL if values > MIN_VALUES else 0.0)

    def due(self, now: float) -> bool:
        """Whether a version made at `now` (monotonic seconds) gets its copy."""
        return now - self.made_at >= self.interval

    def made(self, version: int, now: float) -> None:
        """`version` got its float16 copy at `now`: it becomes the version f16 tasks start from
        (held in the store), the former one is released."""
        if version == self.version:
            return
        if self.version is not None and self.version > version:
            return  # a copy made lazily for an older version: the newer one stays
        self.versions.hold(version)
        if self.version is not None:
            self.versions.release(self.version)
        self.version, self.made_at = version, now

    def forget(self) -> None:
        """No f16 session is left: release the version kept for its copy."""
        if self.version is not None:
            self.versions.release(self.version)
        self.version, self.made_at = None, -math.inf

    def lease_version(self, current: int, now: float) -> int:
        """The version an f16 session's training task starts from at `now`: the newest with a
        copy if it is at most ``2 * interval`` old, else `current` (always, for interval 0)."""
        recent = self.interval > 0 and now - self.made_at <= 2 * self.interval
        return self.version if recent and self.version is not None else current
