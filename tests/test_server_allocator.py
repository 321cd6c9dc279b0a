"""`webnn.server.allocator`: on glibc, `pin_malloc` makes model-sized buffers go back to the
kernel when freed (measured in fresh interpreters, reading /proc/self/statm and the census's
malloc_info); elsewhere it does nothing; ``wnn serve`` applies it unless ``--no-pin-malloc``."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap

import pytest
from support.serve_cli import DIGITS_DATA, DIGITS_SPEC, ROOT, ServeProcess, start_serve

from webnn.server.allocator import MallocPolicy, glibc, pin_malloc

pytestmark = pytest.mark.skipif(glibc() is None, reason="needs Linux with glibc")

MB = 1 << 20

# A fresh interpreter allocates one 4 MB block and frees it (under glibc's dynamic threshold this
# raises the mmap threshold above 4 MB), then 16 more, each followed by a 100 KB block that stays
# (so the big blocks cannot go back as the top of a heap), touches every page, frees the big ones
# and prints resident bytes before, at the peak and after.
PROGRAM = textwrap.dedent("""
    import ctypes, json, os, sys
    from webnn.server.allocator import pin_malloc
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    page = os.sysconf("SC_PAGE_SIZE")
    def resident():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page
    pinned = pin_malloc() if sys.argv[1] == "pin" else None
    size = 4 << 20
    first = libc.malloc(size)
    ctypes.memset(first, 1, size)
    libc.free(first)
    before = resident()
    blocks = []
    for _ in range(16):
        big = libc.malloc(size)
        ctypes.memset(big, 1, size)
        small = libc.malloc(100_000)
        ctypes.memset(small, 1, 100_000)
        blocks.append((big, small))
    peak = resident()
    for big, _ in blocks:
        libc.free(big)
    print(json.dumps({"before": before, "peak": peak, "after": resident(),
                      "applied": pinned.applied if pinned else None}))
""")


def run_program(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def test_pinned_malloc_returns_freed_model_sized_buffers_to_the_kernel() -> None:
    pinned = run_program("pin")
    assert pinned["applied"] is True
    assert pinned["peak"] - pinned["before"] >= 60 * MB  # 16 x 4 MB were resident
    assert pinned["after"] - pinned["before"] < 8 * MB  # ... and all went back (1.6 MB stays)


def test_without_pinning_glibc_keeps_the_freed_buffers() -> None:
    """The behaviour `pin_malloc` changes: after one free of a 4 MB mapping, glibc serves 4 MB
    from the heap and keeps what is freed between live blocks."""
    default = run_program("default")
    assert default["peak"] - default["before"] >= 60 * MB
    assert default["after"] - default["before"] >= 56 * MB


def test_pin_malloc_reports_glibc_and_what_it_set() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from webnn.server.allocator import MallocPolicy, pin_malloc; "
                               "print(pin_malloc(MallocPolicy(arena_max=4)))"],
        capture_output=True, text=True, timeout=120, check=True)
    assert "applied=True" in done.stdout and "libc='glibc 2." in done.stdout
    assert ("mmap threshold 1048576 bytes, trim threshold 4194304 bytes, at most 4 arenas"
            in done.stdout)


def dynamic_loader() -> str:
    """The path of this process's dynamic loader (``ld-linux-*.so``): a real shared library,
    without dependencies, that is not a C library (no ``gnu_get_libc_version``, no ``mallopt``),
    as musl's libc has no ``gnu_get_libc_version``."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/ld-linux" in line}
    assert paths, "no ld-linux mapping in /proc/self/maps"
    return sorted(paths)[0]


def test_a_no_op_where_the_c_library_is_not_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    other = ctypes.CDLL(dynamic_loader())
    assert glibc(other) is None
    outcome = pin_malloc(libc=other)
    assert not outcome.applied and outcome.libc == "not glibc"
    assert "no glibc mallopt" in outcome.detail
    # ... and on any platform other than Linux (macOS, Windows)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert glibc() is None
    assert pin_malloc().applied is False


@pytest.mark.parametrize(("values", "message"), [
    ({"mmap_threshold": 100}, "mmap_threshold: expected 4096 to 33554432 bytes, got 100"),
    ({"mmap_threshold": 64 << 20}, "got 67108864"),
    ({"arena_max": 0}, "arena_max: expected at least 1, got 0"),
    ({"trim_threshold": 100}, "trim_threshold: expected at least 4096 bytes, got 100"),
])
def test_a_policy_out_of_range_is_refused(values: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MallocPolicy(**values)


@pytest.mark.parametrize(("flag", "line"), [
    ("--pin-malloc", "malloc pinned: mmap threshold 1048576 bytes"), ("--no-pin-malloc", None)])
def test_wnn_serve_pins_malloc_unless_told_not_to(processes: list[ServeProcess], flag: str,
                                                   line: str | None) -> None:
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "-v", flag)
    processes.append(served)
    assert (served.find("malloc pinned") is not None) == (line is not None), served.output()
    if line is not None:
        assert line in served.output()


CENSUS_PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, "bench")
    import memory_census
    from webnn.server.allocator import pin_malloc
    if sys.argv[1] == "pin":
        pin_malloc()
    np.ones(1 << 20, np.float32)  # one model-sized buffer allocated and freed first
    kept = [np.ones(1 << 20, np.float32) for _ in range(4)]
    print(json.dumps(memory_census.arenas()))
""")


@pytest.mark.parametrize("mode", ["pin", "default"])
def test_the_census_tells_mapped_buffers_from_arena_memory(mode: str) -> None:
    """bench/memory_census.py's `arenas` (glibc's malloc_info): with the pin, four live 4 MiB
    arrays are four mmapped chunks; without it they sit in the main arena."""
    done = subprocess.run([sys.executable, "-c", CENSUS_PROGRAM, mode], capture_output=True,
                          text=True, timeout=120, check=True, cwd=ROOT)
    arenas = json.loads(done.stdout)
    assert arenas["count"] >= 1 and len(arenas["by_arena"]) == arenas["count"]
    if mode == "pin":
        assert arenas["mmap_chunks"] >= 4 and arenas["mmap_bytes"] >= 16 * MB
        assert arenas["system"] < 16 * MB
    else:
        assert arenas["mmap_bytes"] < 4 * MB
        assert arenas["system"] >= 16 * MB
