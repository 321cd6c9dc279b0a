"""The version store: snapshots of model versions that clients may still ask for.

The model's flat buffer is merged into in place, so what clients fetch is an immutable copy made
when a version is born (in the merge's worker thread, with `np.copyto` into a pooled buffer: no
allocation and no GIL-held copy on the event loop). The wire bytes of a version are its snapshot's
memory, served without further copies.

Which versions are kept (everything else is dropped at once):

- the current version, always;
- a version held by `hold` (reference counted): an evaluation of it, an open train lease when
  the strategy needs the client's base weights (`Strategy.needs_base_weights`), or the newest
  version with a float16 copy (`half_copies.HalfCopies`);
- a version a client was leased but has not fetched yet (`expect_fetch`): strategies that need no
  base weights keep a lease's version only until its client fetched ``weights/{version}`` (or got
  it in a follow-up frame), so memory holds the versions in transit, not one per client. The hold
  ends when its session fetches that version (`fetched`) or when the lease ends (`forget_fetch`).

A snapshot may also hold a float16 copy of its weights (`Snapshot.half`) for sessions that
negotiated ``f16`` weights (`webnn.server.encodings`): made in the merge thread while such a
session is joined (for large models at most every `half_copies.HALF_COPY_INTERVAL`), else on the
first f16 fetch (`half_wire`); it goes with its version. Sessions sending ``q8`` deltas need
their base version until the update arrives: the coordinator holds their lease's version
(`hold`) like a base-weights strategy's.

`nbytes` is what the kept snapshots take (float16 copies included); `trim(budget)` drops the
oldest versions kept only for a pending fetch until the rest fits (a client that then fetches
one gets ``unknown_version`` and asks for a new task). A dropped snapshot's buffer goes back to
the pool only when nothing else (a response still being written) refers to it.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

SETTLE_ACQUIRES = 256
"""Acquires below `SnapshotPool`'s recent peak of buffers in use after which that peak falls by
one buffer (a few seconds at 40-100 merges a second)."""


class SnapshotPool:
    """Model-sized buffers (`size` values of `dtype`, float32 by default) for snapshots, reused.

    A dropped snapshot's buffer may still be read by a response being written (``GET weights``,
    a follow-up frame): it is then *lent*, tracked here until its last reader lets go, and reused
    from then on instead of being freed. Without this, at a hundred merges a second most dropped
    versions are still on their way to a client, and each merge would allocate a new model-sized
    buffer and free an old one: a churn of model-sized blocks through malloc that fragments its
    heap (the RSS creep of issue 11's 1M x 1000 run).

    Bounds: the buffers alive (`alive`) are those in use (the kept snapshots, the lent ones: at
    most one per response in progress, the one being filled) and the free ones, at most
    ``peak + keep`` in all, where ``peak`` is the most buffers in use at once lately: it rises
    with the use at once and falls by one buffer after each `settle` acquires that stay below
    it, and free buffers beyond the bound are let go then. So the lent buffers of a burst of
    responses, reclaimed together, wait for the next burst instead of being freed and made again
    (a fresh model-sized mapping, its pages faulted in, per merge: the churn `strace` showed at
    think 0, where up to one buffer per client is lent), and a pool whose use falls gives its
    buffers back within ``settle`` acquires per buffer. `allocated` counts every buffer ever
    made, so ``allocated`` that stops growing means the pool reached its plateau.

    `acquire` and `give_back` may be called from worker threads: a lent buffer is reclaimed only
    once the pool holds its last reference, and nothing else can get a new one then.
    """

    def __init__(self, size: int, keep: int = 8, dtype: str = "<f4",
                 settle: int = SETTLE_ACQUIRES) -> None:
        if settle < 1:
            raise ValueError(f"settle: expected at least 1 acquire, got {settle}")
        self.size = size
        self.keep = keep
        self.settle = settle
        self.dtype = np.dtype(dtype)
        self._free: deque[np.ndarray] = deque()
        self._lent: list[np.ndarray] = []
        # the lent list and the counts are changed by the merge thread and the event loop
        self._lock = threading.Lock()
        self.allocated = 0
        self.alive = 0          # buffers made and not let go
        self._peak = 0          # the most buffers in use at once lately
        self._below = 0         # acquires since the use at once last reached `_peak`

    @property
    def free(self) -> int:
        """Free buffers held for reuse."""
        return len(self._free)

    @property
    def lent(self) -> int:
        """Buffers of dropped snapshots still read elsewhere (reclaimed when they are not)."""
        return len(self._lent)

    def acquire(self) -> np.ndarray:
        """A writable buffer of `size` values of `dtype` (contents undefined)."""
        self._reclaim()
        with self._lock:
            try:
                buffer = self._free.pop()
            except IndexError:
                buffer = None
                self.allocated += 1
                self.alive += 1
            self._note_use()
        return np.empty(self.size, dtype=self.dtype) if buffer is None else buffer

    def _note_use(self) -> None:
        """After an acquire (under the lock): raise or decay `_peak`, let go of the free buffers
        beyond ``_peak + keep`` alive."""
        in_use = self.alive - len(self._free)
        if in_use >= self._peak:
            self._peak, self._below = in_use, 0
            return
        self._below += 1
        if self._below >= self.settle:
            self._peak, self._below = self._peak - 1, 0
            while self._free and self.alive > self._peak + self.keep:
                self._free.popleft()
                self.alive -= 1

    def give_back(self, array: Any) -> bool:
        """Return `array` for reuse when it is one of ours; True when it is free at once.

        The caller holds one reference (the dropped `Snapshot`), the parameter another and
        `sys.getrefcount` a third; any more is a memoryview or response still reading it, and then
        the buffer is lent until that reference goes (`_reclaim`).
        """
        if (not isinstance(array, np.ndarray) or array.size != self.size
                or array.dtype != self.dtype or array.base is not None):
            return False
        if sys.getrefcount(array) > 3:
            with self._lock:
                self._lent.append(array)
            return False
        with self._lock:
            self._store(array)
        return True

    def _store(self, array: np.ndarray) -> None:
        """A buffer nobody uses any more (under the lock): kept while at most ``_peak + keep``
        are alive (always true until `_peak` decays), else let go."""
        if self.alive <= self._peak + self.keep:
            array.flags.writeable = True
            self._free.append(array)
            self.alive = max(self.alive, len(self._free))  # a buffer made elsewhere is adopted
        else:
            self.alive -= 1

    def _reclaim(self) -> None:
        """Move the lent buffers nobody reads any more to the free ones (beyond `keep`, they are
        let go), O(lent). The list's reference, `array` and `getrefcount`'s argument make 3."""
        if not self._lent:
            return
        with self._lock:
            still: list[np.ndarray] = []
            for array in self._lent:
                if sys.getrefcount(array) > 3:
                    still.append(array)
                else:
                    self._store(array)
            self._lent = still


@dataclass(frozen=True)
class Snapshot:
    """One version's weights (a read-only flat float32 array, or wire bytes) and WebNN's step
    count t behind them; `half`: its float16 copy, when one was made."""

    data: Any
    steps: int
    half: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        size = int(self.data.nbytes) if isinstance(self.data, np.ndarray) else len(self.data)
        return size + (0 if self.half is None else int(self.half.nbytes))

    def wire(self, encoding: str = "f32") -> memoryview:
        """The weights' wire bytes without a copy: TF.js ``weights.bin`` (little-endian float32),
        or for ``f16`` the float16 copy (which must exist: see `VersionSnapshots.half_wire`)."""
        if encoding == "f16":
            assert self.half is not None
            return memoryview(self.half).cast("B")  # type: ignore[arg-type]  # numpy buffer
        return memoryview(self.data).cast("B")  # type: ignore[arg-type]

    def array(self) -> np.ndarray:
        """The weights as a flat float32 array (a view)."""
        if isinstance(self.data, np.ndarray):
            return self.data
        return np.frombuffer(self.data, dtype="<f4")


class VersionSnapshots:
    """Snapshots by version; see the module docstring for the keeping rule."""

    def __init__(self, current: int, snapshot: Snapshot, pool: SnapshotPool | None = None,
                 half_pool: SnapshotPool | None = None) -> None:
        self.current = current
        self.pool = pool
        self.half_pool = half_pool
        self._snapshots: dict[int, Snapshot] = {current: snapshot}
        self._refs: Counter[int] = Counter()
        self._fetch: dict[int, Counter[str]] = {}
        self._nbytes = snapshot.nbytes

    def get(self, version: int) -> Snapshot | None:
        return self._snapshots.get(version)

    def __contains__(self, version: int) -> bool:
        return version in self._snapshots

    def __len__(self) -> int:
        return len(self._snapshots)

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept snapshots."""
        return self._nbytes

    def half_wire(self, version: int, make: Any) -> memoryview | None:
        """The float16 wire bytes of `version` (None if not held); made once with
        ``make(weights, out_buffer)`` when the snapshot has no float16 copy yet."""
        snapshot = self._snapshots.get(version)
        if snapshot is None:
            return None
        if snapshot.half is None:
            out = self.half_pool.acquire() if self.half_pool is not None else None
            snapshot = Snapshot(snapshot.data, snapshot.steps, make(snapshot.array(), out))
            self._nbytes += int(snapshot.half.nbytes)  # type: ignore[union-attr]
            self._snapshots[version] = snapshot
        return snapshot.wire("f16")

    def add(self, version: int, snapshot: Snapshot) -> None:
        """Hold an older version again (e.g. version 0 for the initial evaluation on resume);
        it is dropped at its last release like any other."""
        if version not in self._snapshots:
            self._snapshots[version] = snapshot
            self._nbytes += snapshot.nbytes

    def hold(self, version: int) -> None:
        if version not in self._snapshots:
            raise KeyError(f"version {version} is not held")
        self._refs[version] += 1

    def release(self, version: int) -> None:
        self._refs[version] -= 1
        if self._refs[version] <= 0:
            del self._refs[version]
            self._maybe_drop(version)

    def expect_fetch(self, version: int, owner: str) -> None:
        """Keep `version` until `owner` (a session) fetches it or `forget_fetch(version, owner)`;
        counted, so one owner may wait for a version for several leases."""
        if version not in self._snapshots:
            raise KeyError(f"version {version} is not held")
        self._fetch.setdefault(version, Counter())[owner] += 1

    def fetched(self, version: int, owner: str) -> None:
        """`owner` fetched `version`: one of its pending fetches is satisfied. A fetch by anyone
        else (no session, or another session) leaves the holds alone."""
        waiting = self._fetch.get(version)
        if waiting:
            self._forget(version, waiting, owner)

    def forget_fetch(self, version: int, owner: str, keep: int = 0) -> None:
        """A lease of `owner` ended: it no longer keeps `version` for a fetch. `keep`: the
        owner's other open leases of `version` that may still fetch it. A fetch is not tied to
        one lease, so the ended lease may have fetched already while another has not (a client
        that asked for its next task before sending this one's update): the owner's pending
        count becomes min(count, keep), never fewer than the leases that may still fetch."""
        waiting = self._fetch.get(version)
        if not waiting:
            return
        if keep <= 0:
            self._forget(version, waiting, owner)
            return
        while waiting[owner] > keep:
            self._forget(version, waiting, owner)

    def _forget(self, version: int, waiting: Counter[str], owner: str) -> None:
        if waiting[owner] <= 0:
            waiting.pop(owner, None)
            return
        waiting[owner] -= 1
        if waiting[owner] <= 0:
            del waiting[owner]
        if not waiting:
            del self._fetch[version]
            self._maybe_drop(version)

    def advance(self, version: int, snapshot: Snapshot) -> None:
        """Make `version` the current one; the previous current goes unless referenced."""
        previous = self.current
        self.current = version
        self._snapshots[version] = snapshot
        self._nbytes += snapshot.nbytes
        self._maybe_drop(previous)

    def trim(self, budget: int) -> list[int]:
        """Drop the oldest versions kept only for a pending fetch until `nbytes <= budget`;
        returns the versions dropped (O(dropped + versions in transit))."""
        dropped: list[int] = []
        for version in sorted(self._fetch):
            if self._nbytes <= budget:
                break
            if version == self.current or self._refs[version] > 0:
                continue
            del self._fetch[version]
            self._maybe_drop(version)
            dropped.append(version)
        return dropped

    def _maybe_drop(self, version: int) -> None:
        if version == self.current or self._refs[version] > 0 or version in self._fetch:
            return
        snapshot = self._snapshots.pop(version, None)
        if snapshot is not None:
            self._nbytes -= snapshot.nbytes
            data, half = snapshot.data, snapshot.half
            del snapshot  # the buffers' own references only (see `SnapshotPool.give_back`)
            if self.pool is not None:
                self.pool.give_back(data)
            if half is not None and self.half_pool is not None:
                self.half_pool.give_back(half)
