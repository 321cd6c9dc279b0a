"""A request body received from the socket straight into the caller's buffer (``recv_into``).

aiohttp receives a body in three user-space copies: the transport's ``recv`` makes a bytes object
per read (at most 256 KiB), the HTTP parser copies each into a body chunk, and the reader copies
the chunks into its own buffer; each chunk also wakes the reading task once. For a 4 MB update
that is most of the server's receive cost (docs/capacity.md). `BodyReceiver` takes the
connection's place for the rest of one body of known length: it is an ``asyncio.BufferedProtocol``
whose ``get_buffer`` hands the transport the unfilled part of the caller's buffer, so the kernel
copies the bytes once, into their final place, and the reading task wakes once, at the end.

Contract (`JsonRequestHandler.receive_into` sets it up):

- It starts only at a chunk boundary the HTTP parser has fully passed on: every byte read from the
  socket so far is in the request's ``StreamReader`` and was consumed, and the transport is
  reading (not paused by flow control). The parser then expects exactly ``len(view)`` more body
  bytes; ``get_buffer`` never offers more than the body's rest, so a pipelined next request stays
  in the socket.
- When the view is full the connection's own protocol is put back, with a fresh parser (the old
  one still expects the body bytes that went around it) and the request's ``StreamReader`` at
  EOF; `done` gets the byte count.
- When the body cannot complete (EOF or the connection lost: ``ConnectionResetError``; the reader
  cancelled, e.g. by its progress deadline), the protocol is put back too, `on_abort` runs (the
  handler then drops whatever still arrives and closes the connection after its answer: the
  parser is no longer in step with the stream) and `done` gets the error.
- Everything but reading (write flow control, EOF, the connection lost) is passed on to the
  connection's protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class BodyReceiver(asyncio.BufferedProtocol):
    """The transport's protocol while `view` (the body's remaining bytes) fills; see the module
    docstring. `progress(filled)` is called after every read with the bytes received so far (the
    reader's progress deadline);
    `finish()` after the last byte, before the connection's protocol reads again; `on_abort()`
    when the body cannot complete."""

    def __init__(self, protocol: Any, transport: asyncio.Transport, view: memoryview,
                 progress: Callable[[int], None], finish: Callable[[], None],
                 on_abort: Callable[[], None]) -> None:
        self.protocol = protocol
        self.transport = transport
        self.view = view
        self.filled = 0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._progress = progress
        self._finish = finish
        self._on_abort = on_abort

    def start(self) -> None:
        self.transport.set_protocol(self)

    # ------------------------------------------------------------------------------ reading

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        self._progress(self.filled)
        if self.filled >= len(self.view) and not self.done.done():
            self.transport.set_protocol(self.protocol)
            self._finish()
            self.done.set_result(self.filled)

    def abort(self, error: BaseException | None = None) -> None:
        """The body will not complete: give the transport back to the connection's protocol
        (once) and fail `done` with `error` (when given and `done` is still pending)."""
        if self.transport.get_protocol() is self:
            self.transport.set_protocol(self.protocol)
            self._on_abort()
        if error is not None and not self.done.done():
            self.done.set_exception(error)

    # ---------------------------------------------------------------------- passed through

    def eof_received(self) -> bool | None:
        self.abort(ConnectionResetError(
            f"the connection ended after {self.filled} of the body's last {len(self.view)} "
            "bytes"))
        return self.protocol.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.abort(ConnectionResetError("Connection lost") if exc is None else exc)
        self.protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()
