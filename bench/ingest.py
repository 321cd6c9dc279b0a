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
        view, _ = decode_update(memoryview(pooled), layout, task_id="t", task_version=0,
                                max_steps=5)
        assert check_weights(view, reference if norm else None, norm=norm).finite

    def receive() -> None:
        view = memoryview(pooled)
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


def _http_server(nbytes: int, cpu: int, ports: Any) -> None:
    """The receiving server of ``--http`` (a child process)."""
    import asyncio

    from aiohttp import web

    from webnn.server.ingest import _read_into

    os.sched_setaffinity(0, {cpu})
    buffer = np.empty(nbytes + (1 << 16), dtype=np.uint8)

    async def receive(request: web.Request) -> web.Response:
        await _read_into(request, buffer, buffer.size, buffer.size)
        return web.Response(text="ok")

    async def cpu_time(request: web.Request) -> web.Response:
        return web.Response(text=repr(time.process_time()))

    async def serve() -> None:
        app = web.Application(client_max_size=buffer.size)
        app.router.add_post("/update", receive)
        app.router.add_get("/cpu", cpu_time)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def http_receive(nbytes: int, bodies: int, cpu: int) -> float:
    """Server CPU seconds per `nbytes` body received over loopback HTTP (see ``--http``)."""
    import asyncio
    import multiprocessing

    import aiohttp

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_http_server, args=(nbytes, cpu, ports), daemon=True)
    server.start()
    port = ports.get(timeout=60)
    body = np.random.default_rng(0).random(nbytes // 4, dtype=np.float32).tobytes()

    async def run() -> float:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
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

    try:
        return asyncio.run(run())
    finally:
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
    args = parser.parse_args()
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
            seconds = http_receive(nbytes, args.http, args.server_cpu)
            print(f"  {'HTTP receive (server CPU)':22s} {seconds * 1e3:8.3f} ms  "
                  f"{nbytes / seconds / 1e9:6.2f} GB/s  {copy_seconds / seconds:5.2f} x copy")


if __name__ == "__main__":
    main()
