"""Update bodies received straight into their buffer (`runner.JsonRequestHandler.receive_into`,
`body_receive.BodyReceiver`, used by `ingest._read_into`), over real loopback HTTP, on asyncio's
loop and on uvloop where installed.

- A large body arrives whole and byte-exact, and past its first read it went around aiohttp's
  parser (the handler did not decline: the aiohttp in use has what it needs).
- The connection goes on: the next request on it, even one pipelined right behind the body in
  the same write, is parsed and answered (the parser was replaced in step).
- A body that stops after part of it came straight in is ``408 body_timeout`` naming every byte
  received; a client that goes away mid-body is a ``ConnectionResetError`` for the reader and the
  server serves the next connection.
- Bodies that must go through aiohttp's decoding (chunked transfer coding) are read as before.
"""

from __future__ import annotations

import asyncio
import importlib.util
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from webnn.server import runner as runner_module
from webnn.server.errors import ProtocolError
from webnn.server.ingest import BodyTimeout, _read_into
from webnn.server.runner import WebnnRunner

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOPS = ["asyncio", "uvloop"] if HAVE_UVLOOP else ["asyncio"]
ROOM = 8 << 20


def _payload(nbytes: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()


async def _server(timeout: float = 30.0):
    """A WebnnRunner whose ``POST /body`` reads the body with `_read_into` and answers the
    CRC32 and length of what it got (or the protocol error); every outcome and every
    `receive_into` result (True: straight in, False: declined) is queued."""
    outcomes: asyncio.Queue[object] = asyncio.Queue()
    straight: list[bool] = []
    buffer = np.empty(ROOM, dtype=np.uint8)
    original = runner_module.JsonRequestHandler.receive_into

    async def spy(self: Any, *args: Any) -> bool:
        result = await original(self, *args)
        straight.append(result)
        return result

    async def read(request: web.Request) -> web.Response:
        try:
            length = await _read_into(request, buffer, ROOM, ROOM, timeout=timeout)
        except ProtocolError as error:
            outcomes.put_nowait(error)
            return error.response()
        except BaseException as error:
            outcomes.put_nowait(error)
            raise
        outcomes.put_nowait(length)
        crc = zlib.crc32(memoryview(buffer)[:length])  # type: ignore[arg-type]
        return web.Response(text=f"{length} {crc}")

    app = web.Application(client_max_size=ROOM)
    app.router.add_post("/body", read)
    runner = WebnnRunner(app, models=[])
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1], outcomes, straight, spy


def _head(length: int) -> bytes:
    return (f"POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    return head, await asyncio.wait_for(reader.readexactly(length), 30)


def _run(loop: str, scenario: Callable[[], Any]) -> None:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as run:
            run.run(scenario())
    else:
        with asyncio.Runner() as run:
            run.run(scenario())


async def _serves_a_body(port: int, seed: int) -> None:
    """A fresh connection's 2 MB body is received whole (the server's answer: length, CRC)."""
    body = _payload(2 << 20, seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_head(len(body)) + body)
    _, text = await _answer(reader)
    assert text.decode() == f"{len(body)} {zlib.crc32(body)}"
    writer.close()

@pytest.mark.parametrize("loop", LOOPS)
def test_bodies_arrive_whole_and_the_connection_goes_on_pipelined_or_not(
        loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = [_payload(4 << 20, 1), _payload(3 << 20, 2), _payload(1500, 3), _payload(4 << 20, 4)]

    async def scenario() -> None:
        runner, port, outcomes, straight, spy = await _server()
        monkeypatch.setattr(runner_module.JsonRequestHandler, "receive_into", spy)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # one after the other on one connection
            for body in bodies[:2]:
                writer.write(_head(len(body)) + body)
                head, text = await _answer(reader)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert text.decode() == f"{len(body)} {zlib.crc32(body)}"
            # pipelined: every request written at once, the next one's head right behind the
            # previous body's last byte
            writer.write(b"".join(_head(len(body)) + body for body in bodies))
            for body in bodies:
                head, text = await _answer(reader)
                assert head.startswith(b"HTTP/1.1 200"), head
                assert text.decode() == f"{len(body)} {zlib.crc32(body)}"
            writer.close()
            assert [await outcomes.get() for _ in range(6)] == [
                len(b) for b in bodies[:2] + bodies]
            # the large bodies went straight into the buffer past their first read
            assert straight.count(True) >= 4, straight
        finally:
            await runner.cleanup()

    _run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_body_that_stops_midway_is_a_body_timeout_counting_every_byte(
        loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _payload(300_000, 5), _payload(700_000, 6)

    async def scenario() -> None:
        runner, port, outcomes, straight, spy = await _server(timeout=0.5)
        monkeypatch.setattr(runner_module.JsonRequestHandler, "receive_into", spy)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head(2_000_000) + first)
            await writer.drain()
            writer.write(second)  # the server is reading by now, or reads it in turn
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), 30)  # up to the close
            writer.close()
            error = await asyncio.wait_for(outcomes.get(), 30)
            assert isinstance(error, BodyTimeout), error
            assert "after 1000000 bytes" in error.message
            assert raw.startswith(b"HTTP/1.1 408") and b"body_timeout" in raw
            await _serves_a_body(port, seed=7)  # the server goes on serving
        finally:
            await runner.cleanup()

    _run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_gone_midway_ends_the_read_and_the_server_goes_on(loop: str) -> None:
    async def scenario() -> None:
        runner, port, outcomes, _, _ = await _server()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head(3_000_000) + _payload(1_500_000, 8))
            await writer.drain()
            for _ in range(3000):  # until the server has read it all: the rest goes nowhere
                await asyncio.sleep(0.01)
                if not writer.transport.get_write_buffer_size():
                    break
            writer.transport.abort()
            error = await asyncio.wait_for(outcomes.get(), 30)
            assert isinstance(error, ConnectionError), error
            await _serves_a_body(port, seed=9)
        finally:
            await runner.cleanup()

    _run(loop, scenario)


async def test_a_chunked_body_is_read_through_aiohttp_as_before() -> None:
    runner, port, outcomes, _, _ = await _server()
    body = _payload(1 << 20, 10)
    pieces = [body[i:i + 100_000] for i in range(0, len(body), 100_000)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
        head, text = await _answer(reader)
        assert text.decode() == f"{len(body)} {zlib.crc32(body)}"
        assert await outcomes.get() == len(body)
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_connection_whose_body_went_straight_in_is_freed_without_the_cyclic_collector(
        ) -> None:
    """Receiving around the parser leaves no reference cycle: the handler of a closed connection
    whose body was received whole is freed by reference counting, as tests/test_memory_pools.py
    asserts for the ordinary read. (A body cut off midway is not: the connection error's
    traceback holds the request, on either path, until the cyclic collector runs.)"""
    import gc
    import weakref

    handlers: list[weakref.ref] = []
    buffer = np.empty(ROOM, dtype=np.uint8)

    async def read(request: web.Request) -> web.Response:
        handlers.append(weakref.ref(request.protocol))
        length = await _read_into(request, buffer, ROOM, ROOM, timeout=30.0)
        return web.Response(text=str(length), headers={"Connection": "close"})

    app = web.Application(client_max_size=ROOM)
    app.router.add_post("/body", read)
    runner = WebnnRunner(app, models=[])
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    server = runner.server
    assert server is not None
    gc.collect()
    gc.disable()
    try:
        for seed in (11, 12):
            body = _payload(3 << 20, seed)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_head(len(body)) + body)
            _, text = await _answer(reader)
            assert text == str(len(body)).encode()
            assert await asyncio.wait_for(reader.read(), 30) == b""  # the server closed it
            writer.close()
        assert len(handlers) == 2
        for _ in range(1000):  # loop turns until the server saw both closes
            if not server.connections and all(ref() is None for ref in handlers):
                break
            await asyncio.sleep(0)
        assert not server.connections
        assert [ref() for ref in handlers if ref() is not None] == []
    finally:
        gc.enable()
        await runner.cleanup()
