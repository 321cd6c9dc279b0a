"""A heap census of a running ``wnn serve``, for the load benchmark (never part of the product).

`bench/load.py --census FILE` starts the server through `install` (the server process imports this
module before ``webnn.cli``): a daemon thread appends one JSON line to FILE every `every` seconds
with what the process holds, so the server needs no debug endpoint:

- ``rss``: ``/proc/self/smaps_rollup`` (Rss, Anonymous, ...) and the ``[heap]`` mapping's resident
  bytes (the main malloc arena, grown with ``brk``) against the anonymous mappings (``mmap``'d
  chunks and the worker threads' arenas);
- ``malloc``: glibc's ``mallinfo2`` summed over the arenas: ``in_use`` (bytes handed out by malloc,
  ``mmap``'d chunks included), ``free`` (bytes malloc holds but nobody uses: fragmentation and
  trimmable tops), ``mmapped`` (chunks of their own mappings, returned to the kernel when freed);
- ``arenas`` (glibc's ``malloc_info``): the arenas (the main one and the threads'), each with
  ``system`` (bytes it holds from the kernel) and ``free`` (of those, bytes nobody uses), and the
  ``mmap`` chunks (count, bytes): where `malloc`'s free bytes sit;
- ``trim`` (only with ``WEBNN_CENSUS_TRIM=1``): each census first calls ``malloc_trim(0)`` and
  records how long it took (``ms`` wall, ``cpu_ms`` of the census thread) and the RSS it gave
  back (``released_kB``): what a periodic trim would cost and gain;
- ``server``: the coordinator's books found with ``gc.get_objects`` (tasks kept, open, finished,
  lease heap, sessions, versions and snapshot bytes, the body and snapshot pools' free and allocated
  buffers, bodies in flight);
- ``transports``: open asyncio transports and the bytes waiting in their write buffers and in the
  aiohttp request readers;
- ``gc``: the collector's counts and collections per generation; with ``WEBNN_CENSUS_COLLECT=1``
  the census also runs a full collection and records what it freed (bytes malloc no longer has in
  use) and the readers left: what cyclic garbage was holding;
- ``garbage`` (only with ``WEBNN_CENSUS_GARBAGE=1``): the collector keeps what it finds
  unreachable (``gc.DEBUG_SAVEALL``) and each census counts it by type, then lets it go: which
  objects only the cyclic collector frees;
- ``tracemalloc`` (only with ``WEBNN_CENSUS_TRACEMALLOC=1``: it slows the server several times):
  the Python heap and numpy's data (its own tracemalloc domain) by allocating line, largest first.

The environment carries the settings (``WEBNN_CENSUS``: the file; ``WEBNN_CENSUS_EVERY``: seconds,
default 10), so `install` is a no-op in a process started without them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import re
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

NUMPY_DOMAIN = 389047
"""numpy's tracemalloc domain for array data (``np.lib.tracemalloc_domain``)."""


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_info() -> dict[str, int] | None:
    """Bytes malloc holds, summed over its arenas (None where glibc has no mallinfo2)."""
    try:
        call = _libc().mallinfo2
    except (OSError, AttributeError):
        return None
    call.restype = MallInfo2
    info = call()
    return {"arena": info.arena, "mmapped": info.hblkhd, "mmapped_chunks": info.hblks,
            "in_use": info.uordblks + info.hblkhd, "in_use_heap": info.uordblks,
            "free": info.fordblks, "free_chunks": info.ordblks, "top_trimmable": info.keepcost}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def arenas() -> dict[str, Any] | None:
    """Per-arena bytes from glibc's ``malloc_info`` XML (None where glibc has none): ``count``,
    ``system`` and ``free`` summed, ``by_arena`` (``[system, free]`` per arena, the main arena
    first), ``mmap_chunks`` and ``mmap_bytes``."""
    try:
        libc = _libc()
        fopen, fclose, info = libc.fopen, libc.fclose, libc.malloc_info
    except (OSError, AttributeError):
        return None
    fopen.restype = ctypes.c_void_p
    fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    fclose.argtypes = (ctypes.c_void_p,)
    info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    with tempfile.NamedTemporaryFile(suffix=".xml") as file:
        stream = fopen(file.name.encode(), b"w")
        if not stream:
            return None
        info(0, stream)
        fclose(stream)
        root = ElementTree.parse(file.name).getroot()
    by_arena = []
    for heap in root.findall("heap"):
        system = sum(int(e.get("size", 0)) for e in heap.findall("system")
                     if e.get("type") == "current")
        free = sum(int(e.get("size", 0)) for e in heap.findall("total")
                   if e.get("type") in ("fast", "rest"))
        by_arena.append([system, free])
    mmap = [e for e in root.findall("total") if e.get("type") == "mmap"]
    return {"count": len(by_arena), "system": sum(a[0] for a in by_arena),
            "free": sum(a[1] for a in by_arena), "by_arena": by_arena,
            "mmap_chunks": int(mmap[0].get("count", 0)) if mmap else 0,
            "mmap_bytes": int(mmap[0].get("size", 0)) if mmap else 0}


def trim() -> dict[str, float] | None:
    """``malloc_trim(0)`` timed (``ms`` wall, ``cpu_ms`` of this thread) with the resident bytes
    it gave back (``released_kB``, from ``/proc/self/statm``); None where glibc has none."""
    try:
        call = _libc().malloc_trim
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_size_t,)
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    before = int(Path("/proc/self/statm").read_text().split()[1])
    wall, cpu = time.perf_counter(), time.thread_time()
    call(0)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    after = int(Path("/proc/self/statm").read_text().split()[1])
    return {"ms": round(wall * 1000, 2), "cpu_ms": round(cpu * 1000, 2),
            "released_kB": (before - after) * page_kb}


def smaps() -> dict[str, int]:
    """kB figures of ``smaps_rollup`` and the resident kB of ``[heap]`` and of anonymous mappings
    by size: under 1 MiB, 1-64 MiB ("mid": the thread arenas' heaps, whose 64 MiB reservations
    show as a read-write part and a PROT_NONE rest, Python's 1 MiB object arenas, thread stacks
    and malloc's ``mmap``'d chunks, so model-sized buffers under `webnn.server.allocator`), 64 MiB
    and over. ``arenas`` (`arenas`) tells malloc's share of "mid" apart."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key.strip()] = int(value.split()[0])
    region = ""
    size_kb = 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            size_kb = (high - low) // 1024
            name = fields[5] if len(fields) > 5 else ""
            region = ("heap" if name == "[heap]" else
                      "" if name else
                      "anon_small" if size_kb < 1024 else
                      "anon_mid" if size_kb < 65536 else "anon_arena")
        elif line.startswith("Rss:") and region:
            key = f"rss_{region}_kB"
            out[key] = out.get(key, 0) + int(line.split()[1])
            out[f"regions_{region}"] = out.get(f"regions_{region}", 0) + 1
    return out


def _pool(pool: Any) -> dict[str, int]:
    return {"free": len(pool._free), "lent": len(getattr(pool, "_lent", ())), "keep": pool.keep,
            "allocated": pool.allocated}


def server_books(objects: list[Any]) -> list[dict[str, Any]]:
    """What each coordinator in `objects` keeps (counts and bytes; read without locks: a census
    taken between two bytecodes of the event loop, good enough to see what grows)."""
    found = []
    for obj in objects:
        if type(obj).__name__ != "Coordinator" or not hasattr(obj, "tasks"):
            continue
        tasks = obj.tasks
        states: dict[str, int] = {}
        frames = follow_ups = 0
        for task in list(tasks._tasks.values()):
            states[task.state] = states.get(task.state, 0) + 1
            frame = getattr(task.work, "frame", b"")
            frames += len(frame) if isinstance(frame, bytes | bytearray) else 0
            follow_ups += task.follow_up is not None
        found.append({
            "tasks": len(tasks._tasks), "by_state": states, "finished_queue": len(tasks._finished),
            "lease_heap": len(tasks._expiry), "task_frame_bytes": frames,
            "with_follow_up": follow_ups, "sessions": len(obj.sessions),
            "versions": len(obj.versions), "snapshot_bytes": obj.versions.nbytes,
            "snapshot_pool": _pool(obj.pool), "half_pool": _pool(obj.half_pool),
            "body_pool": _pool(obj.ingest.pool) | {"size": obj.ingest.pool.size},
            "bodies_in_flight": obj.admission.bodies.count,
            "body_bytes": obj.admission.bodies.used,
        })
    return found


def transports(objects: list[Any]) -> dict[str, int]:
    """Open asyncio transports, bytes in their write buffers, bytes buffered by request readers."""
    count = write_bytes = read_bytes = readers = 0
    for obj in objects:
        name = type(obj).__name__
        if name.endswith("SocketTransport") and hasattr(obj, "_buffer"):
            count += 1
            buffer = obj._buffer
            write_bytes += (len(buffer) if isinstance(buffer, bytearray)
                            else sum(len(piece) for piece in buffer))
        elif name == "StreamReader" and hasattr(obj, "_size"):
            readers += 1
            read_bytes += obj._size
    return {"transports": count, "write_buffer_bytes": write_bytes, "readers": readers,
            "reader_bytes": read_bytes}


def traced(limit: int = 25) -> dict[str, Any]:
    """tracemalloc's totals (Python heap and numpy data apart) and its largest allocating lines."""
    snapshot = tracemalloc.take_snapshot()
    numpy_filter = tracemalloc.DomainFilter(True, NUMPY_DOMAIN)
    python = snapshot.filter_traces([tracemalloc.DomainFilter(False, NUMPY_DOMAIN)])
    arrays = snapshot.filter_traces([numpy_filter])
    top = [{"where": str(stat.traceback[0]), "bytes": stat.size, "count": stat.count}
           for stat in snapshot.statistics("lineno")[:limit]]
    return {"python_bytes": sum(s.size for s in python.statistics("filename")),
            "numpy_bytes": sum(s.size for s in arrays.statistics("filename")),
            "numpy_arrays": sum(s.count for s in arrays.statistics("filename")), "top": top}


def census(started: float) -> dict[str, Any]:
    """One reading (see the module docstring); ``census_ms``: how long it held the interpreter
    (the server's threads wait meanwhile)."""
    trimmed = trim() if os.environ.get("WEBNN_CENSUS_TRIM") == "1" else None
    began = time.perf_counter()
    objects = gc.get_objects()
    try:
        record: dict[str, Any] = {
            "t": round(time.time() - started, 2), "rss": smaps(), "malloc": malloc_info(),
            "arenas": arenas(),
            "server": server_books(objects), "transports": transports(objects),
            "gc_objects": len(objects)}
    finally:
        del objects
    record["census_ms"] = round((time.perf_counter() - began) * 1000, 1)
    if trimmed is not None:
        record["trim"] = trimmed
    if tracemalloc.is_tracing():
        record["tracemalloc"] = traced()
    record["gc"] = {"counts": gc.get_count(),
                    "collections": [stat["collections"] for stat in gc.get_stats()]}
    if os.environ.get("WEBNN_CENSUS_COLLECT") == "1":
        before = record["malloc"]["in_use"] if record["malloc"] else 0
        record["gc"]["collected"] = gc.collect()
        after = malloc_info()
        record["gc"]["collect_freed"] = before - after["in_use"] if after else None
        record["gc"]["after"] = transports(gc.get_objects())
    if os.environ.get("WEBNN_CENSUS_GARBAGE") == "1":
        gc.collect()
        kinds: dict[str, int] = {}
        for obj in gc.garbage:
            name = f"{type(obj).__module__}.{type(obj).__qualname__}"
            kinds[name] = kinds.get(name, 0) + 1
        record["garbage"] = dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:40])
        gc.garbage.clear()
    return record


def _loop(path: Path, every: float) -> None:
    started = time.time()
    while True:
        time.sleep(every)
        try:
            line = json.dumps(census(started))
        except Exception as error:  # noqa: BLE001 - a census must never stop the server
            line = json.dumps({"t": round(time.time() - started, 2), "error": repr(error)})
        with path.open("a") as out:
            out.write(line + "\n")


def install() -> None:
    """Start the census thread when ``WEBNN_CENSUS`` names a file (else do nothing)."""
    target = os.environ.get("WEBNN_CENSUS")
    if not target:
        return
    if os.environ.get("WEBNN_CENSUS_TRACEMALLOC") == "1":
        tracemalloc.start(1)
    if os.environ.get("WEBNN_CENSUS_GARBAGE") == "1":
        gc.set_debug(gc.DEBUG_SAVEALL)  # cyclic garbage kept in gc.garbage, counted by type
    every = float(os.environ.get("WEBNN_CENSUS_EVERY", "10"))
    threading.Thread(target=_loop, args=(Path(target), every), name="census",
                     daemon=True).start()
