"""Pin glibc malloc's treatment of model-sized buffers when a server process starts.

Why: glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with a
mapping of its own, unmapped when freed, and anything smaller from an arena (the main heap, or an
arena of the thread's own: a process gets up to 8 per core). The threshold is *dynamic*: freeing
an mmapped chunk raises it to that chunk's size (up to 32 MiB on 64-bit) and the trim threshold to
twice that. A server that receives, merges and snapshots model-sized buffers (a 1M-parameter model
is 4 MB per update body, weight copy and snapshot) therefore moves them into the arenas after its
first free, and the merge threads of ``asyncio.to_thread`` each take an arena of their own. Freed
4 MB holes in those arenas are reused only by requests that fit and are returned to the kernel
only from the top of a heap, so the process holds more and more free memory: the 16-core capacity
run (docs/capacity.md, 1M parameters, 1000 clients) showed malloc ``in_use`` flat at 180-230 MB
while its ``free`` grew 79 -> 219 MB and its arenas 254 -> 409 MB, with 5 MB in mmapped chunks
(RSS +18.8 MB/min over five minutes).

What: `pin_malloc` calls ``mallopt(M_MMAP_THRESHOLD, threshold)`` and
``mallopt(M_TRIM_THRESHOLD, trim)`` once. Thresholds set this way are fixed (glibc no longer
adjusts them), so every allocation of `threshold` bytes or more, every model-sized buffer among
them, gets its own mapping and goes back to the kernel on free; the arenas keep only small objects.
``DEFAULT_MMAP_THRESHOLD`` is 1 MiB: below one 1M-parameter layer (about 3.9 MB) and update body
(4 MB), above the buffers every request makes (headers, JSON, socket reads), so small allocations
keep their arena speed; the server's own model-sized buffers are pooled, so few mappings are made
per update. ``DEFAULT_TRIM_THRESHOLD`` is 4 MiB: with glibc's default 128 KiB (what a fixed mmap
threshold leaves) the main heap's top grew and shrank by 0.25-1.5 MiB with ``brk`` about 30 times
a second under load (``strace``), paying page faults each time; with 4 MiB, about once a second,
and an arena keeps at most 4 MiB of free top (bounded, not growing). Pinned, the server spent
4-7 % more CPU per update than unpinned in the 2-core load runs (page faults of the model-sized
mappings that are not pooled); the figures and commands are in docs/capacity.md. Optionally
``M_ARENA_MAX`` caps the arenas (`MallocPolicy.arena_max`; None leaves glibc's 8 per core).
A periodic ``malloc_trim(0)`` instead (measured with the census's ``WEBNN_CENSUS_TRIM``: about
1 ms every 10 s) does not stop the growth (+7.2 MB/min against +9.1 untrimmed, side by side):
it gives back the holes' pages, which are faulted in again when reused, and the arenas grow.

Forked children (the cluster supervisor's front-ends and merger) inherit the setting with the
rest of the allocator's state. Elsewhere (macOS, musl, Windows: no glibc ``mallopt``) `pin_malloc`
does nothing and says so; ``wnn serve --no-pin-malloc`` leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter number for the trim threshold (``<malloc.h>``)."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (``<malloc.h>``)."""
M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the most arenas."""
DEFAULT_MMAP_THRESHOLD = 1 << 20
"""Bytes from which an allocation gets a mapping of its own (see the module docstring)."""
DEFAULT_TRIM_THRESHOLD = 4 << 20
"""Free bytes at the top of an arena beyond which glibc gives them back (see the module
docstring)."""
MAX_MMAP_THRESHOLD = 32 << 20
"""The largest threshold glibc accepts on 64-bit (``HEAP_MAX_SIZE / 2``)."""


@dataclass(frozen=True)
class MallocPolicy:
    """What to pin: `mmap_threshold` bytes (4 KiB to 32 MiB), `trim_threshold` bytes (at least
    the page size) and, when not None, `arena_max`."""

    mmap_threshold: int = DEFAULT_MMAP_THRESHOLD
    trim_threshold: int = DEFAULT_TRIM_THRESHOLD
    arena_max: int | None = None

    def __post_init__(self) -> None:
        if not 4096 <= self.mmap_threshold <= MAX_MMAP_THRESHOLD:
            raise ValueError(f"mmap_threshold: expected 4096 to {MAX_MMAP_THRESHOLD} bytes, got "
                             f"{self.mmap_threshold}")
        if self.trim_threshold < 4096:
            raise ValueError(f"trim_threshold: expected at least 4096 bytes, got "
                             f"{self.trim_threshold}")
        if self.arena_max is not None and self.arena_max < 1:
            raise ValueError(f"arena_max: expected at least 1, got {self.arena_max}")


@dataclass(frozen=True)
class MallocPinning:
    """What `pin_malloc` did: `applied` when every ``mallopt`` call returned success; `libc`
    (``glibc 2.36``, or why not glibc); `detail`: one line for a log."""

    applied: bool
    libc: str
    detail: str


def glibc(library: ctypes.CDLL | None = None) -> tuple[ctypes.CDLL, str] | None:
    """`library` (default: this process's C library) and its version when it is glibc on Linux
    (else None): found by its ``gnu_get_libc_version`` symbol, which musl and other C libraries
    lack."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = library if library is not None else ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        libc.mallopt  # noqa: B018 - present in every glibc; checked all the same
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc, version().decode()


def pin_malloc(policy: MallocPolicy | None = None, *,
               libc: ctypes.CDLL | None = None) -> MallocPinning:
    """Apply `policy` (default `MallocPolicy()`) with ``mallopt`` of `libc` (default: this
    process's C library); a no-op where that is not glibc. Call it once, early (before the
    server's threads start); calling it again sets the same values."""
    policy = policy or MallocPolicy()
    found = glibc(libc)
    if found is None:
        return MallocPinning(False, "not glibc", "malloc left as it is (no glibc mallopt here)")
    lib, version = found
    lib.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.mallopt.restype = ctypes.c_int
    done = [f"mmap threshold {policy.mmap_threshold} bytes",
            f"trim threshold {policy.trim_threshold} bytes"]
    calls = [(M_MMAP_THRESHOLD, policy.mmap_threshold), (M_TRIM_THRESHOLD, policy.trim_threshold)]
    if policy.arena_max is not None:
        calls.append((M_ARENA_MAX, policy.arena_max))
        done.append(f"at most {policy.arena_max} arenas")
    ok = all([lib.mallopt(param, value) == 1 for param, value in calls])  # every call made
    detail = ("malloc pinned: " if ok else "mallopt refused: ") + ", ".join(done)
    return MallocPinning(ok, f"glibc {version}", detail)
