"""The server's update ingest against a plain memory copy of the same bytes, in one run.

For an update frame of N float32 weights (default 1M and 10M), times, median of `--repeat` runs:

- ``copy``: ``np.copyto`` of the frame's bytes into a preallocated buffer (one read + one write of
  every byte: the memory-bandwidth reference);
- ``decode+check``: what the server does with a body already in its pooled buffer
  (`updates.decode_update`: the frame decoded in place, a float32 view; `ingest.check_weights`:
  finiteness in one chunked pass);
- ``decode+check+norm``: the same with the delta norm against a reference (screening on);
- ``receive+decode+check``: the body arriving as 64 KiB chunks (as aiohttp hands them over) copied
  into the pooled buffer, then decode+check: the whole per-request path short of the socket;
- ``old path``: the path before issue 11 (a growing bytearray, ``bytes()`` of it, a decoded
  ``astype`` copy and a float64-sum finiteness check), for comparison.

Each line prints milliseconds, GB/s of frame bytes and the bandwidth ratio to ``copy`` (the
target for ``decode+check`` is >= 0.25).

With ``--http N``, also the receiving alone through HTTP: a server process (pinned to
``--server-cpu``) whose handler only reads each body into one pooled buffer with the server's own
`ingest._read_into` (nothing decoded, merged or sent back beyond a 2-byte answer), fed N bodies of
each size over loopback by this process, 10 at a time; it prints the server's CPU time per body
(``time.process_time`` in the server) and the bandwidth that would give on one core: the ceiling
of any HTTP ingest on one core, before any of the server's own work.

    .venv/bin/python bench/ingest.py [--floats 1000000 10000000] [--repeat 9] [--http 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import numpy as np

from webnn.merge.screening import all_finite
from webnn.server.frames import decode_frame, encode_frame
from webnn.server.ingest import check_weights
from webnn.server.updates import decode_update
from webnn.weights import WeightLayout, WeightSpec

CHUNK_BYTES = 1 << 16


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(floats: int, repeat: int) -> list[tuple[str, float]]:
    layout = WeightLayout([WeightSpec("w", (floats,))])
    rng = np.random.default_rng(0)
    weights = rng.normal(size=floats).astype(np.float32)
    reference = rng.normal(size=floats).astype(np.float32)
    frame = encode_frame({"baseVersion": 0, "steps": 5, "loss": 1.0, "accuracy": 0.5,
                          "timings": {"compute": 0.5}}, {"weights": weights})
    source = np.frombuffer(frame, dtype=np.uint8)
    pooled = np.empty(source.size, dtype=np.uint8)
    chunks = [frame[i:i + CHUNK_BYTES] for i in range(0, len(frame), CHUNK_BYTES)]

    def copy() -> None:
        np.copyto(pooled, source)

    def decode_check(norm: bool = False) -> None:
        view, _ = decode_update(memoryview(pooled), layout,  # type: ignore[arg-type]
                                task_id="t", task_version=0, max_steps=5)
        assert isinstance(view, np.ndarray)  # float32 frames decode to a view
        assert check_weights(view, reference if norm else None, norm=norm).finite

    def receive() -> None:
        view = memoryview(pooled)  # type: ignore[arg-type]  # numpy buffer
        at = 0
        for chunk in chunks:
            view[at:at + len(chunk)] = chunk
            at += len(chunk)
        decode_check()

    def old_path() -> None:
        data = bytearray()
        for chunk in chunks:
            data += chunk
        body = bytes(data)
        tensor = decode_frame(body).tensors["weights"]
        assert all_finite(tensor.reshape(-1).astype(np.float32, copy=True))

    copy()
    results = [("copy", median_seconds(copy, repeat))]
    results.append(("decode+check", median_seconds(decode_check, repeat)))
    results.append(("decode+check+norm", median_seconds(lambda: decode_check(True), repeat)))
    results.append(("receive+decode+check", median_seconds(receive, repeat)))
    results.append(("old path", median_seconds(old_path, repeat)))
    return results


Variant = tuple[str, str, int, str]
"""An ``--http`` server: event loop, runner, KiB per socket read, body reader."""


def variant_name(variant: Variant) -> str:
    loop, runner, read_kib, reader = variant
    return f"{loop}/{runner}/{read_kib}K" + ("" if reader == "stall" else f"/{reader}")


async def _read_timeout_per_chunk(request: Any, buffer: np.ndarray, timeout: float = 10.0) -> int:
    """The body read before `ingest._Stall` (kept here for comparison, ``--readers timeout``):
    the same chunk copies, each chunk awaited inside its own ``asyncio.timeout`` scope."""
    import asyncio

    view = memoryview(buffer)  # type: ignore[arg-type]  # numpy buffer
    length = 0
    content = request.content
    while True:
        async with asyncio.timeout(timeout):
            chunk, _ = await content.readchunk()
        if not chunk:
            if content.at_eof():
                return length
            continue
        view[length:length + len(chunk)] = chunk
        length += len(chunk)


def _http_server(nbytes: int, cpu: int, ports: Any, loop: str, runner_kind: str,
                 read_kib: int, reader: str) -> None:
    """The receiving server of ``--http`` (a child process) on event loop `loop`, run by
    `WebnnRunner` (``webnn``, what ``wnn serve`` runs) or aiohttp's ``web.AppRunner`` (``plain``),
    reading `read_kib` KiB per socket read (asyncio's loop only: its transport's ``max_size``,
    256 KiB by default, set for this child process; uvloop reads 256 KiB at a time)."""
    from asyncio import selector_events

    from aiohttp import web

    from webnn.server.ingest import _read_into
    from webnn.server.runner import WebnnRunner, run

    os.sched_setaffinity(0, {cpu})
    selector_events._SelectorSocketTransport.max_size = read_kib << 10  # type: ignore[attr-defined]
    buffer = np.empty(nbytes + (1 << 16), dtype=np.uint8)

    async def receive(request: web.Request) -> web.Response:
        if reader in ("stall", "chunks"):  # chunks: aiohttp's chunks only, no recv_into
            await _read_into(request, buffer, buffer.size, buffer.size,
                             direct=reader == "stall")
        else:
            await _read_timeout_per_chunk(request, buffer)
        return web.Response(text="ok")

    async def cpu_time(request: web.Request) -> web.Response:
        return web.Response(text=repr(time.process_time()))

    async def serve() -> None:
        import asyncio

        app = web.Application(client_max_size=buffer.size)
        app.router.add_post("/update", receive)
        app.router.add_get("/cpu", cpu_time)
        runner = WebnnRunner(app, models=[]) if runner_kind == "webnn" else web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    run(serve(), loop)


def http_receive(nbytes: int, bodies: int, cpu: int, variants: list[Variant],
                 rounds: int) -> dict[Variant, list[float]]:
    """Server CPU seconds per `nbytes` body received over loopback HTTP (see ``--http``), for
    each (loop, runner, read KiB) variant: one server process per variant, all started first,
    measured in turn `rounds` times (interleaved, so a change in the machine's load hits every
    variant)."""
    import asyncio
    import multiprocessing

    import aiohttp

    context = multiprocessing.get_context("spawn")
    servers, urls = [], {}
    for variant in variants:
        ports = context.Queue()
        server = context.Process(target=_http_server, args=(nbytes, cpu, ports, *variant),
                                 daemon=True)
        server.start()
        servers.append(server)
        urls[variant] = f"http://127.0.0.1:{ports.get(timeout=60)}"
    body = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32).tobytes()

    async def measure(http: aiohttp.ClientSession, base: str) -> float:
        async def post() -> None:
            async with http.post(base + "/update", data=body) as answer:
                await answer.read()

        async def server_cpu() -> float:
            async with http.get(base + "/cpu") as answer:
                return float(await answer.text())

        for _ in range(10):
            await post()
        before = await server_cpu()
        for _ in range(bodies // 10):
            await asyncio.gather(*(post() for _ in range(10)))
        return (await server_cpu() - before) / (bodies // 10 * 10)

    async def run_all() -> dict[Variant, list[float]]:
        results: dict[Variant, list[float]] = {v: [] for v in variants}
        async with aiohttp.ClientSession() as http:
            for _ in range(rounds):
                for variant in variants:
                    results[variant].append(await measure(http, urls[variant]))
        return results

    try:
        return asyncio.run(run_all())
    finally:
        for server in servers:
            server.terminate()
            server.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floats", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--http", type=int, default=0, metavar="N",
                        help="also time receiving N bodies of each size over loopback HTTP")
    parser.add_argument("--server-cpu", type=int, default=0,
                        help="the CPU the --http server is pinned to (the sender avoids it)")
    parser.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"), default=None,
                        help="event loops of the --http servers [asyncio, and uvloop where "
                             "installed]")
    parser.add_argument("--runners", nargs="+", choices=("webnn", "plain"), default=["webnn"],
                        help="--http servers run by WebnnRunner (as wnn serve) and/or "
                             "aiohttp's plain AppRunner")
    parser.add_argument("--read-kib", type=int, nargs="+", default=[256],
                        help="KiB per socket read of the --http servers on asyncio's loop "
                             "(its default: 256)")
    parser.add_argument("--readers", nargs="+", choices=("stall", "chunks", "timeout"),
                        default=["stall"],
                        help="body readers of the --http servers (webnn runner only): the "
                             "server's (past the first read, recv_into the buffer; one progress "
                             "timer per body), the same through aiohttp's chunks only (the "
                             "server's read before recv_into), and/or the one before that "
                             "(chunks, an asyncio.timeout per chunk)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="--http measurements per variant, interleaved")
    args = parser.parse_args()
    loops = args.loops or ["asyncio"] + (["uvloop"] if find_spec("uvloop") else [])
    variants = [(loop, runner, read, reader) for runner in args.runners for loop in loops
                for read in (args.read_kib if loop == "asyncio" else [256])
                for reader in (args.readers if runner == "webnn" else ["stall"])]
    for floats in args.floats:
        nbytes = floats * 4
        results = bench(floats, args.repeat)
        copy_seconds = results[0][1]
        print(f"{floats:,} float32 ({nbytes / 1e6:.1f} MB frame), median of {args.repeat}:")
        for name, seconds in results:
            print(f"  {name:22s} {seconds * 1e3:8.3f} ms  {nbytes / seconds / 1e9:6.2f} GB/s  "
                  f"{copy_seconds / seconds:5.2f} x copy")
        if args.http:
            others = sorted(os.sched_getaffinity(0) - {args.server_cpu})
            if others:
                os.sched_setaffinity(0, others)
            received = http_receive(nbytes, args.http, args.server_cpu, variants, args.rounds)
            first = statistics.median(received[variants[0]])
            print(f"  HTTP receive, server CPU per body (median of {args.rounds} rounds of "
                  f"{args.http // 10 * 10} bodies; ratio to {variant_name(variants[0])}):")
            for variant, times in received.items():
                seconds = statistics.median(times)
                each = ", ".join(f"{t * 1e3:.2f}" for t in times)
                print(f"    {variant_name(variant):28s} {seconds * 1e3:8.3f} ms  "
                      f"{nbytes / seconds / 1e9:6.2f} GB/s  {copy_seconds / seconds:5.2f} x copy"
                      f"  {first / seconds:5.2f} x {variant_name(variants[0])}  ({each})")


if __name__ == "__main__":
    main()
