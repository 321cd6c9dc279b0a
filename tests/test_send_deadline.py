"""Model-sized answers are written under a progress watchdog (`answers.send_within`): a client
that asks for weights and does not read them is cut off instead of holding the rest of the
answer in the server's memory for as long as its connection lives.

- `send_within` writes the data in one call; while the connection's buffered bytes fall by
  `SEND_PIECE` per deadline (or empty) nothing happens; when they do not, it aborts the
  transport and raises `ConnectionResetError` saying how much the client took.
- Over real loopback HTTP (aiohttp, a raw socket that never reads): ``GET weights`` and a
  follow-up frame both end with the connection aborted, short of the whole answer; a client
  that reads gets every byte.
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
    """A connection whose buffered bytes are `sizes` at successive checks (the last repeats);
    aborting it fails the pending write as aiohttp's does."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.aborted = asyncio.Event()

    def get_write_buffer_size(self) -> int:
        return self.sizes.pop(0) if len(self.sizes) > 1 else self.sizes[0]

    def abort(self) -> None:
        self.aborted.set()


async def test_a_write_that_completes_goes_out_whole_in_one_call() -> None:
    data = memoryview(bytes(range(256)) * 4096)
    written: list[bytes] = []

    async def write(piece: memoryview) -> None:
        written.append(bytes(piece))

    transport = FakeTransport([0])
    await answers.send_within(write, data, transport, timeout=5.0)  # type: ignore[arg-type]
    assert written == [bytes(data)] and not transport.aborted.is_set()


async def test_a_client_that_takes_a_piece_per_deadline_is_not_cut_off() -> None:
    piece = answers.SEND_PIECE
    transport = FakeTransport([5 * piece, 4 * piece, 3 * piece, 2 * piece, 0])
    done = asyncio.Event()

    async def write(data: memoryview) -> None:
        async with asyncio.timeout(30):
            while transport.sizes != [0]:  # the watchdog has looked at every size but the last
                await asyncio.sleep(0.005)
        done.set()

    await answers.send_within(write, memoryview(bytes(1 << 17)), transport,  # type: ignore[arg-type]
                              timeout=0.01)
    assert done.is_set() and not transport.aborted.is_set()


async def test_a_stalled_client_is_aborted_and_told_what_it_took() -> None:
    transport = FakeTransport([3 << 20, (3 << 20) - 10])  # 10 bytes taken: not a piece

    async def write(data: memoryview) -> None:
        await transport.aborted.wait()  # aiohttp's drain fails once the connection is lost
        raise ConnectionResetError("Connection lost")

    with pytest.raises(ConnectionResetError, match=f"less than {answers.SEND_PIECE} bytes"):
        await answers.send_within(write, memoryview(bytes(1 << 17)), transport,  # type: ignore[arg-type]
                                  timeout=0.01)
    assert transport.aborted.is_set()


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
