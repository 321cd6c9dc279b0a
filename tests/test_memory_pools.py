"""What keeps a server's memory flat under load (docs/capacity.md): the snapshot pool reuses a
dropped version's buffer once its last reader lets go, so the buffers a server makes reach a
plateau (kept + read + free) instead of growing with the merges; and a closed connection is freed
by reference counting at once, not left to the cyclic collector with its unread body."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from webnn.server.versions import Snapshot, SnapshotPool, VersionSnapshots


def test_a_lent_buffer_is_reused_once_its_reader_goes() -> None:
    pool = SnapshotPool(size=4, keep=2)
    versions = VersionSnapshots(0, Snapshot(pool.acquire(), 0), pool)
    reader = versions.get(0).wire()                   # a response still writing version 0
    versions.advance(1, Snapshot(pool.acquire(), 1))  # version 0 dropped while read: lent
    assert (pool.allocated, pool.lent, pool.free) == (2, 1, 0)
    first = versions.get(1).data
    del reader
    buffer = pool.acquire()                           # version 0's buffer, not a new one
    assert pool.allocated == 2 and pool.lent == 0 and buffer is not first
    assert buffer.flags.writeable


def test_buffers_plateau_at_kept_plus_read_plus_free() -> None:
    """A hundred versions, each read by a response that lasts three more merges: the pool makes
    the current one, the three read ones, the one being filled and no more."""
    pool = SnapshotPool(size=16, keep=2)
    versions = VersionSnapshots(0, Snapshot(pool.acquire(), 0), pool)
    readers: list[memoryview] = []
    for version in range(1, 101):
        readers.append(versions.get(version - 1).wire())
        if len(readers) > 3:
            readers.pop(0)
        buffer = pool.acquire()
        buffer[:] = version
        buffer.flags.writeable = False
        versions.advance(version, Snapshot(buffer, version))
    assert pool.allocated <= 1 + 3 + 1
    assert float(versions.get(100).data[0]) == 100.0
    for view in readers:            # what a reader sees is never overwritten while it reads
        values = np.frombuffer(view, dtype=np.float32)
        assert np.all(values == values[0])


def test_buffers_beyond_the_recent_peak_plus_keep_are_let_go() -> None:
    """Reclaimed together, the lent buffers of a burst are kept for the next one (no buffer made
    again); once the use stays lower for `settle` acquires per buffer, those beyond the new peak
    plus `keep` are let go."""
    pool = SnapshotPool(size=4, keep=1, settle=3)
    versions = VersionSnapshots(0, Snapshot(pool.acquire(), 0), pool)
    readers = []
    for version in range(1, 4):
        readers.append(versions.get(version - 1).wire())
        versions.advance(version, Snapshot(pool.acquire(), version))
    assert (pool.allocated, pool.lent) == (4, 3)
    readers.clear()
    buffer = pool.acquire()
    assert (pool.allocated, pool.lent, pool.free) == (4, 0, 2)   # one reused, two kept
    for _ in range(20):                 # the use at once stays at 2 (current + the one filled)
        pool.give_back(buffer)
        buffer = pool.acquire()
    assert pool.allocated == 4 and pool.alive == 2 + 1 and pool.free == 1


def test_a_burst_of_readers_again_makes_no_buffer() -> None:
    """Bursts of responses reading dropped versions (up to 6 at once, then none), as at think 0
    with a follow-up frame per client: the pool makes the burst's buffers once, not per burst."""
    pool = SnapshotPool(size=8, keep=2)
    versions = VersionSnapshots(0, Snapshot(pool.acquire(), 0), pool)
    readers: list[memoryview] = []
    for version in range(1, 301):
        readers.append(versions.get(version - 1).wire())
        if len(readers) > 6:
            readers.clear()
        buffer = pool.acquire()
        buffer[:] = version
        buffer.flags.writeable = False
        versions.advance(version, Snapshot(buffer, version))
    assert pool.allocated <= 1 + 7 + 1
    for view in readers:
        values = np.frombuffer(view, dtype=np.float32)
        assert np.all(values == values[0])


def test_give_back_and_acquire_from_two_threads_lose_nothing() -> None:
    """The merge thread acquires while the event loop gives back: once the readers are gone,
    no lent buffer is left behind."""
    pool = SnapshotPool(size=8, keep=64)
    held: list[np.ndarray] = []
    views: list[memoryview] = []
    done = threading.Event()

    def merge_thread() -> None:
        while not done.is_set():
            pool.acquire()

    thread = threading.Thread(target=merge_thread)
    thread.start()
    try:
        for _ in range(2000):
            array = np.empty(8, dtype=np.float32)
            views.append(memoryview(array))
            held.append(array)
            pool.give_back(held.pop())
            if len(views) > 8:
                views.pop(0)
    finally:
        done.set()
        thread.join()
    del array
    views.clear()
    pool.acquire()
    assert pool.lent == 0


# ------------------------------------------------------------- closed connections go at once


async def test_a_closed_connection_is_freed_without_the_cyclic_collector() -> None:
    """A connection's handler, transport and last request body are freed by reference counting
    once the connection closes: nothing waits for the cyclic collector (which runs by object
    counts, not bytes: at a few hundred closed connections a second, the unread bodies and
    sockets it would hold reached 170 MB in the load benchmark)."""
    import gc
    import weakref

    import aiohttp
    from aiohttp import web

    from webnn.server.runner import JsonRequestHandler, WebnnRunner

    handlers: list[weakref.ref] = []

    async def echo(request: web.Request) -> web.Response:
        assert isinstance(request.protocol, JsonRequestHandler)
        handlers.append(weakref.ref(request.protocol))
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", echo)
    runner = WebnnRunner(app, models=[])
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = runner.server
    assert server is not None
    gc.collect()
    gc.disable()
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                async with client.post(f"http://127.0.0.1:{port}/", data=b"x" * 1000,
                                       headers={"Connection": "close"}) as answer:
                    assert await answer.text() == "ok"
        assert len(handlers) == 3
        for _ in range(100):            # loop turns until the server saw every close
            if not server.connections and all(ref() is None for ref in handlers):
                break
            await asyncio.sleep(0)
        assert not server.connections
        assert [ref() for ref in handlers if ref() is not None] == []
    finally:
        gc.enable()
        await runner.cleanup()


async def test_a_weights_answer_hands_the_snapshot_to_the_transport_uncopied() -> None:
    """``GET weights`` on a real loopback server: the transport gets the headers with the body's
    first `HEAD_BYTES` (aiohttp joins those), then the rest as a view of the snapshot, never a
    model-sized bytes object (a join of headers and body: a fresh 4 MB mapping per fetch)."""
    import aiohttp
    from aiohttp import web

    from webnn.server.answers import HEAD_BYTES, weights_answer

    weights = np.arange(1 << 20, dtype=np.float32)
    written: list[tuple[type, int]] = []

    async def handler(request: web.Request) -> web.Response:
        transport = request.transport
        assert transport is not None
        write = transport.write

        def recording(data: bytes | memoryview) -> None:
            written.append((type(data), len(data)))
            write(data)

        transport.write = recording  # type: ignore[method-assign]
        response, sent = weights_answer(request, version=7, steps=3, encoding="f32",
                                        data=memoryview(weights).cast("B"))
        assert sent
        return response

    app = web.Application()
    app.router.add_get("/weights", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with (aiohttp.ClientSession() as client,
                    client.get(f"http://127.0.0.1:{port}/weights") as answer):
            body = await answer.read()
            assert answer.headers["Content-Type"] == "application/octet-stream"
            assert answer.headers["ETag"] == '"v7"'
        assert body == weights.tobytes()
        copies = [size for kind, size in written if kind is not memoryview]
        assert copies and max(copies) < HEAD_BYTES + 4096          # headers + the head only
        assert sum(size for _, size in written) >= weights.nbytes
    finally:
        await runner.cleanup()
