"""The server's event loop setting (``wnn serve --loop``: `webnn.server.runner.loop_factory` and
`run`) and the update body read (`webnn.server.ingest._read_into` with its one progress deadline
per body), over real loopback HTTP.

- ``auto`` takes uvloop where it imports and asyncio otherwise; ``uvloop`` without uvloop is a
  clear error; a real ``wnn serve --loop ...`` merges updates on it (and says so for uvloop).
- After an answer with ``Retry-After: R`` a keep-alive connection's idle close waits R seconds
  more, so a client that comes back as told does not meet it.
- A body whose bytes keep coming is read whole, however long it takes in all; one that stops for
  the timeout is ``BodyTimeout`` (408) naming the bytes received; a read cancelled from elsewhere
  stays cancelled (never turned into a timeout) and leaves no timer behind.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from support.serve_cli import DIGITS_DATA, DIGITS_SPEC, start_serve, train

from webnn.server.errors import ProtocolError
from webnn.server.ingest import BodyTimeout, _read_into
from webnn.server.runner import (
    EVENT_LOOPS,
    HttpLimits,
    LoopUnavailable,
    WebnnRunner,
    loop_factory,
    loop_name,
    retry_after_seconds,
    run,
)
from webnn.settings.serve import ProcessSettings

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOPS = ["asyncio", "uvloop"] if HAVE_UVLOOP else ["asyncio"]


# ------------------------------------------------------------------------ the loop setting


def test_loop_factory_names_the_loop_it_makes() -> None:
    assert EVENT_LOOPS == ("auto", "asyncio", "uvloop")
    assert loop_factory("asyncio") is None
    auto = loop_factory("auto")
    if HAVE_UVLOOP:
        assert auto is not None
        loop = auto()
        try:
            assert loop_name(loop) == "uvloop"
        finally:
            loop.close()
    else:
        assert auto is None
    with pytest.raises(ValueError, match="'trio': expected one of auto, asyncio, uvloop"):
        loop_factory("trio")


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory("auto") is None
    with pytest.raises(LoopUnavailable, match="'uvloop' is not installed: pip install uvloop"):
        loop_factory("uvloop")

    async def never() -> None:  # pragma: no cover - must not run
        raise AssertionError("ran")

    main = never()
    with pytest.raises(LoopUnavailable):
        run(main, "uvloop")
    assert main.cr_frame is None  # closed, not left unawaited


def test_the_loop_is_a_process_setting_with_a_checked_value() -> None:
    assert ProcessSettings().loop == "asyncio"
    assert ProcessSettings(loop="uvloop").loop == "uvloop"
    with pytest.raises(Exception, match="loop"):
        ProcessSettings(loop="trio")


@pytest.mark.parametrize("loop", LOOPS)
def test_run_serves_a_webnn_runner_on_the_named_loop(loop: str) -> None:
    """An update-sized body in, the same bytes back, through `WebnnRunner` on `loop`."""
    body = np.random.default_rng(1).random(300_000, dtype=np.float32).tobytes()

    async def main() -> tuple[str, bytes]:
        buffer = np.empty(len(body) + 16, dtype=np.uint8)

        async def echo(request: web.Request) -> web.Response:
            length = await _read_into(request, buffer, buffer.size, buffer.size, timeout=30)
            return web.Response(body=buffer[:length].tobytes())

        app = web.Application(client_max_size=buffer.size)
        app.router.add_post("/echo", echo)
        runner = WebnnRunner(app, models=[])
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            url = f"http://127.0.0.1:{port}/echo"
            async with aiohttp.ClientSession() as http, http.post(url, data=body) as answer:
                assert answer.status == 200
                return loop_name(asyncio.get_running_loop()), await answer.read()
        finally:
            await runner.cleanup()

    name, echoed = run(main(), loop)
    assert name == loop
    assert echoed == body


@pytest.mark.parametrize("loop", LOOPS)
def test_wnn_serve_runs_on_the_loop_it_is_given(loop: str) -> None:
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--loop", loop,
                         "--seed", "3")
    try:
        # uvloop is named at start; the standard loop adds no line
        assert bool(served.find(r"event loop: uvloop\b")) == (loop == "uvloop"), served.output()
        status, _ = asyncio.run(train(served.url, 3))
        assert status["merges"] >= 3
    finally:
        assert served.stop() == 0, served.output()


# ------------------------------------------------------------------------ the body read


async def _body_server(timeout: float, room: int = 1 << 20):
    """A WebnnRunner whose handler reads the body with `_read_into`; answers with what came of
    it: ``200 <length>``, or the protocol error's status and code."""
    outcomes: asyncio.Queue[object] = asyncio.Queue()
    buffer = np.empty(room, dtype=np.uint8)

    async def read(request: web.Request) -> web.Response:
        try:
            length = await _read_into(request, buffer, room, room, timeout=timeout)
        except ProtocolError as error:
            outcomes.put_nowait(error)
            return error.response()
        except asyncio.CancelledError:
            outcomes.put_nowait("cancelled")
            raise
        outcomes.put_nowait(length)
        return web.Response(text=str(length))

    app = web.Application(client_max_size=room)
    app.router.add_post("/body", read)
    runner = WebnnRunner(app, models=[])
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1], outcomes


async def _send_head(port: int, length: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_a_body_that_keeps_coming_is_read_whole_past_the_timeout() -> None:
    """Five pieces, each sent once the server has taken the previous one, with a pause of 0.4
    of the timeout before each: 1.6 timeouts in all, never one without progress."""
    timeout = 2.0
    runner, port, outcomes = await _body_server(timeout)
    piece = bytes(range(256)) * 400  # 100 KiB
    try:
        reader, writer = await _send_head(port, 5 * len(piece))
        for _ in range(5):
            await asyncio.sleep(0.4 * timeout)  # the scenario: a slow, steady sender
            writer.write(piece)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert await asyncio.wait_for(outcomes.get(), 30) == 5 * len(piece)
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_body_that_stops_is_a_body_timeout_naming_the_bytes() -> None:
    runner, port, outcomes = await _body_server(timeout=0.5)
    try:
        reader, writer = await _send_head(port, 10_000)
        writer.write(b"x" * 1234)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)  # everything up to the close
        writer.close()
        error = await asyncio.wait_for(outcomes.get(), 30)
        assert isinstance(error, BodyTimeout)
        assert error.status == 408 and error.code == "body_timeout"
        assert "after 1234 bytes" in error.message
        assert raw.startswith(b"HTTP/1.1 408") and b"body_timeout" in raw
    finally:
        await runner.cleanup()


async def test_a_read_cancelled_from_elsewhere_stays_cancelled_and_leaves_no_timer() -> None:
    runner, port, outcomes = await _body_server(timeout=30.0)
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await _send_head(port, 10_000)
        writer.write(b"x" * 100)
        await writer.drain()
        # the server's handler is reading; find its task and cancel it
        handler = None
        for _ in range(3000):
            handler = next((t for t in asyncio.all_tasks() if "_handle_request" in repr(t)),
                           None)
            if handler is not None:
                break
            await asyncio.sleep(0.01)
        assert handler is not None, "the handler never started"
        handler.cancel()
        assert await asyncio.wait_for(outcomes.get(), 30) == "cancelled"
        writer.close()
        # the read's progress deadline went with it
        stalls = [h for h in loop._scheduled  # type: ignore[attr-defined]
                  if not h.cancelled() and "_Stall" in repr(h)]
        assert stalls == []
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------ the idle close


def test_retry_after_seconds_reads_the_delta_seconds_form() -> None:
    assert retry_after_seconds(web.Response(headers={"Retry-After": "5"})) == 5.0
    assert retry_after_seconds(web.Response(headers={"Retry-After": " 7 "})) == 7.0
    assert retry_after_seconds(web.Response(headers={"Retry-After": "1000"})) == 60.0  # capped
    for value in ("", "-3", "2.5", "Wed, 21 Oct 2015 07:28:00 GMT"):
        assert retry_after_seconds(web.Response(headers={"Retry-After": value})) == 0.0
    assert retry_after_seconds(web.Response()) == 0.0


async def test_a_connection_told_to_come_back_later_stays_open_until_then() -> None:
    """After ``503`` with ``Retry-After: 3`` the idle close is 3 s + header_timeout away, so a
    client that comes back as told finds its connection open; after a plain answer it is
    header_timeout away, as before."""
    protocols: list[Any] = []

    async def busy(request: web.Request) -> web.Response:
        protocols.append(request.protocol)
        return web.Response(status=503, text="busy", headers={"Retry-After": "3"})

    async def fine(request: web.Request) -> web.Response:
        protocols.append(request.protocol)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/busy", busy)
    app.router.add_get("/fine", fine)
    runner = WebnnRunner(app, models=[], limits=HttpLimits(header_timeout=1.0))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    loop = asyncio.get_running_loop()

    async def idle_deadline(path: str) -> float:
        """Seconds from the answer to the connection's idle close."""
        async with aiohttp.ClientSession() as http, http.get(base + path) as answer:
            await answer.read()
            answered = loop.time()
            protocol = protocols[-1]
            for _ in range(3000):  # the server arms it right after writing the answer
                if protocol._head_pending:
                    break
                await asyncio.sleep(0.01)
            timer = protocol._header_timer
            assert timer is not None
            return timer.when() - answered

    try:
        assert 3.5 <= await idle_deadline("/busy") <= 4.1
        assert 0.5 <= await idle_deadline("/fine") <= 1.1
    finally:
        await runner.cleanup()


async def test_a_request_begun_after_a_retry_after_gets_header_timeout_from_its_first_byte(
        ) -> None:
    """The Retry-After extension is for the idle wait only: once the next request's first byte
    arrives, its line and headers must complete within header_timeout of that byte (a slow sender
    that provoked a long Retry-After gets no more time)."""
    protocols: list[Any] = []

    async def busy(request: web.Request) -> web.Response:
        protocols.append(request.protocol)
        return web.Response(status=503, text="busy", headers={"Retry-After": "30"})

    app = web.Application()
    app.router.add_get("/busy", busy)
    runner = WebnnRunner(app, models=[], limits=HttpLimits(header_timeout=1.0))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
    try:
        writer.write(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"busy")).startswith(b"HTTP/1.1 503")
        protocol = protocols[-1]
        for _ in range(3000):  # the server arms the idle deadline right after the answer
            if protocol._head_pending and protocol._header_timer is not None:
                break
            await asyncio.sleep(0.01)
        assert protocol._header_timer.when() - loop.time() > 20  # idle: 30 s + header_timeout
        writer.write(b"GET /bu")  # the next request begins, slowly
        await writer.drain()
        for _ in range(3000):
            if protocol._head_bytes:
                break
            await asyncio.sleep(0.01)
        assert protocol._header_timer.when() - loop.time() <= 1.0
        answer = await asyncio.wait_for(reader.read(), 60)  # the 408, then the close
        assert answer.startswith(b"HTTP/1.1 408") and b"header_timeout" in answer
    finally:
        writer.close()
        await runner.cleanup()
