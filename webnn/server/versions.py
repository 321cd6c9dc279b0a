"""Snapshots of model versions that clients may still ask for.

The model's flat buffer is merged into in place, so what clients fetch is an immutable copy made
when a version is born (the TF.js ``weights.bin`` bytes, served without further copies). The
current version is always held; an older one only while something references it: an open train
lease that started from it (its update is merged against it, and delta strategies need it as the
base) or an evaluation of it. Its last release drops it, so memory holds a handful of versions,
not the history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """One version's weights as wire bytes, and WebNN's step count t behind them."""

    data: bytes
    steps: int


class VersionSnapshots:
    """Reference-counted snapshots; see the module docstring for the holding rule."""

    def __init__(self, current: int, snapshot: Snapshot) -> None:
        self.current = current
        self._snapshots: dict[int, Snapshot] = {current: snapshot}
        self._refs: Counter[int] = Counter()

    def get(self, version: int) -> Snapshot | None:
        return self._snapshots.get(version)

    def __contains__(self, version: int) -> bool:
        return version in self._snapshots

    def __len__(self) -> int:
        return len(self._snapshots)

    def add(self, version: int, snapshot: Snapshot) -> None:
        """Hold an older version again (e.g. version 0 for the initial evaluation on resume);
        it is dropped at its last release like any other."""
        self._snapshots.setdefault(version, snapshot)

    def hold(self, version: int) -> None:
        if version not in self._snapshots:
            raise KeyError(f"version {version} is not held")
        self._refs[version] += 1

    def release(self, version: int) -> None:
        self._refs[version] -= 1
        if self._refs[version] <= 0:
            del self._refs[version]
            if version != self.current:
                self._snapshots.pop(version, None)

    def advance(self, version: int, snapshot: Snapshot) -> None:
        """Make `version` the current one; the previous current goes unless referenced."""
        previous = self.current
        self.current = version
        self._snapshots[version] = snapshot
        if self._refs[previous] <= 0:
            self._refs.pop(previous, None)
            self._snapshots.pop(previous, None)
