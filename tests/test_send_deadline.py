"""Model-sized answers are handed over in pieces under a deadline (`answers.send_within`): a
client that asks for weights and does not read them is cut off instead of holding the rest of
the answer in the server's memory for as long as its connection lives.

- `send_within` writes every byte, in pieces of at most `SEND_PIECE`, and when a piece is not
  taken within the deadline it aborts the transport and raises `ConnectionResetError` naming the
  bytes sent.
- Over real loopback HTTP (aiohttp, a raw socket that never reads): ``GET weights`` and a
  follow-up frame both end with the connection aborted within the deadline, short of the whole
  answer; a client that reads still gets every byte.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from webnn.server import answers
from webnn.server.follow_up import BatchFrame

WEIGHTS = np.arange(1 << 22, dtype=np.float32)  # 16 MiB: more than loopback's socket buffers hold
DEADLINE = 0.5


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


async def test_every_byte_goes_out_in_pieces_of_at_most_send_piece() -> None:
    data = memoryview(bytes(range(256)) * (3 * answers.SEND_PIECE // 256 + 7))
    pieces: list[bytes] = []

    async def write(piece: memoryview) -> None:
        pieces.append(bytes(piece))

    await answers.send_within(write, data, FakeTransport(), timeout=5.0)
    assert b"".join(pieces) == bytes(data)
    assert max(len(piece) for piece in pieces) == answers.SEND_PIECE and len(pieces) == 4


async def test_a_piece_not_taken_in_time_aborts_the_connection_and_names_what_was_sent() -> None:
    data = memoryview(bytes(3 * answers.SEND_PIECE))
    transport = FakeTransport()
    stalled = asyncio.Event()

    async def write(piece: memoryview) -> None:
        if stalled.is_set():
            await asyncio.Event().wait()  # a client that stopped reading: never drains
        stalled.set()

    with pytest.raises(ConnectionResetError, match=f"{answers.SEND_PIECE} of {len(data)} sent"):
        await answers.send_within(write, data, transport, timeout=0.05)
    assert transport.aborted


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[int, list]]:
    """A loopback aiohttp server answering ``/weights`` (`weights_answer`) and ``/follow-up``
    (`follow_up_frame`) with `WEIGHTS`; yields its port and the server-side transports."""
    monkeypatch.setattr(answers, "SEND_TIMEOUT", DEADLINE)
    transports: list[asyncio.Transport] = []
    data = memoryview(WEIGHTS).cast("B")

    async def weights(request: web.Request) -> web.Response:
        assert request.transport is not None
        transports.append(request.transport)  # type: ignore[arg-type]
        response, _ = answers.weights_answer(request, version=3, steps=1, data=data,
                                             encoding="f32")
        return response

    async def follow_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        transports.append(request.transport)  # type: ignore[arg-type]
        batch = BatchFrame({"batchSize": 1}, [], memoryview(b"\0" * 8))
        return await answers.follow_up_frame(request, {"accepted": True}, data, batch)

    app = web.Application()
    app.router.add_get("/weights", weights)
    app.router.add_get("/follow-up", follow_up)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1], transports  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def _until(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Wait for `condition` (checked as the loop turns), failing after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


async def _stalled_client(port: int, path: str, transports: list,
                          received: Callable[[socket.socket], Awaitable[int]]) -> int:
    """Ask for `path` on a socket with a tiny receive buffer, read nothing until the server's
    side of the connection is closing, then count what arrives."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        await _until(lambda: bool(transports) and transports[-1].is_closing())
        return await received(sock)
    finally:
        sock.close()


async def _read_to_end(sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    total = 0
    try:
        async with asyncio.timeout(30):
            while chunk := await loop.sock_recv(sock, 1 << 16):
                total += len(chunk)
    except ConnectionResetError:
        pass
    return total


@pytest.mark.parametrize("path", ["/weights", "/follow-up"])
async def test_a_client_that_does_not_read_is_cut_off_short_of_the_answer(
        server: tuple[int, list], path: str) -> None:
    port, transports = server
    received = await _stalled_client(port, path, transports, _read_to_end)
    assert received < WEIGHTS.nbytes


@pytest.mark.parametrize("path", ["/weights", "/follow-up"])
async def test_a_client_that_reads_gets_every_byte(server: tuple[int, list], path: str) -> None:
    port, _ = server
    async with (aiohttp.ClientSession() as client,
                client.get(f"http://127.0.0.1:{port}{path}") as answer):
        body = await answer.read()
    assert answer.status == 200
    if path == "/weights":
        assert body == WEIGHTS.tobytes()
    else:
        assert WEIGHTS.tobytes() in body
