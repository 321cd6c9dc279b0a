"""Answers the single process (`routes.py`) and a scale-out front-end (`webnn.cluster.frontend`)
render the same way: the weights answer with its ETag, the follow-up frame of an update, and
the bounds an evaluation's figures must lie in at the door.

Model-sized answers are written under a progress watchdog (`send_within`) and within the
owner's budget of answers in progress (`answer_budget`): `reserve_answer` admits a weights
answer (``503 busy`` beyond it), `follow_up_bytes` is what a follow-up frame reserves, and the
payload or `follow_up_frame` gives the bytes back when its writes are over.

ETag of a version's weights (`weights_etag`): ``"v<version>-<tag>"`` names the weights of one
version of one run of one served model. The tag is the first `DIGEST_CHARS` hex digits of the
weights' SHA-256 where the server knows the version's content address (a scale-out run), else
a random id of the server's start (the single process). Version numbers start at 0 again in a
new run (a wiped state directory, a new run in the same Redis), and a single process resumed
after a crash makes the versions since its last checkpoint again with other weights, so the
number alone could name other weights to a client's or a browser's cache. ``-<encoding>``
follows for an encoding other than ``f32`` (``"v12-3f9a0c2e4b1d5a67-f16"``), so a cache never
mixes encodings. Clients treat an ETag as opaque: they send back the one they got.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter

from webnn.server.answer_budget import (
    REFUSED_WEIGHTS,
    AnswerBudget,
    Reservation,
    busy_answer,
    release_when_dropped,
    requester,
)
from webnn.server.errors import bad_field
from webnn.server.follow_up import BatchFrame, follow_up_pieces
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE
from webnn.server.updates import finite_float

log = logging.getLogger("webnn.server")

MAX_LOSS = 1e30
SIGNED_LOSSES = frozenset({"cosineProximity", "poisson"})
"""Losses that may legitimately be negative (TF.js cosineProximity is -cos; poisson is
y_pred - y_true * log(y_pred)); every other loss is >= 0."""
DIGEST_CHARS = 16
"""Hex digits of the weights' digest in an ETag (64 bits: no two weight sets of a run meet)."""
HEAD_BYTES = 1024
"""Bytes of a weights body written with the response's headers (`WeightsPayload`)."""
SEND_PIECE = 1 << 20
"""Bytes a client must take from a model-sized answer in each `SEND_TIMEOUT` (`send_within`)."""
UNWATCHED_BYTES = 1 << 16
"""Writes up to this size go without the watchdog: aiohttp's write waits for the connection only
past 64 KiB written since its last wait, so a small piece (a frame's header, padding, a small
batch) is buffered, not waited on."""
SEND_TIMEOUT = 60.0
"""Seconds in which a client must take `SEND_PIECE` bytes of a model-sized answer, or all of
what is left (at least about 17 KB/s); a slower reader's connection is aborted
(`send_within`)."""


async def send_within(write: Callable[[memoryview], Awaitable[None]], data: memoryview,
                      transport: asyncio.Transport | None,
                      timeout: float | None = None) -> None:
    """Write `data` with `write` (aiohttp's, which waits while the connection's buffer is above
    its high-water mark) under a progress watchdog: every `timeout` seconds (`SEND_TIMEOUT` when
    None) the bytes still buffered for the connection (``transport.get_write_buffer_size()``)
    must have fallen by `SEND_PIECE`, or to 0; if not, the client has stopped reading (or reads
    too slowly): the connection is aborted, its buffered bytes dropped, and
    `ConnectionResetError` raised, as for a client that went away.

    Why: a client that asks for weights and does not read them would otherwise hold the rest of
    the answer in the transport's buffer (a model-sized copy on Python 3.11, a view keeping a
    snapshot buffer on 3.12) for as long as its connection lives; with many such connections a
    hostile client could grow the server's memory by a model per connection. A stalled
    connection is now cut between one and two `timeout`s after it stalled. The write itself is
    one call, as without the watchdog (writing in pieces, each awaited, cost about 7 % more
    server CPU per update at 1M parameters: a wake-up per piece); writes of at most
    `UNWATCHED_BYTES` go without it."""
    timeout = SEND_TIMEOUT if timeout is None else timeout
    if transport is None or len(data) <= UNWATCHED_BYTES:
        await write(data)
        return
    loop = asyncio.get_running_loop()
    last: int | None = None
    stalled = False
    watchdog: asyncio.TimerHandle

    def check() -> None:
        nonlocal last, stalled, watchdog
        size = transport.get_write_buffer_size()
        if size and last is not None and size > last - SEND_PIECE:
            stalled = True
            transport.abort()
            return
        last = size
        watchdog = loop.call_later(timeout, check)

    watchdog = loop.call_later(timeout, check)
    try:
        await write(data)
    except ConnectionError:
        if not stalled:
            raise
    finally:
        watchdog.cancel()
    if stalled:
        raise ConnectionResetError(
            f"the client took less than {SEND_PIECE} bytes of the answer's {len(data)} in "
            f"{timeout:g} s; connection aborted")


class WeightsPayload(payload.Payload):
    """A weights body (a snapshot's wire bytes, not copied) written as two pieces: its first
    `HEAD_BYTES` bytes, then the rest.

    Why: aiohttp's `web.Response` holds its headers back to send them with the body's first
    write, and on Python < 3.12.9 it joins the two (``b"".join``) into one new bytes object: a
    model-sized allocation and copy per ``GET weights`` (a fresh 4 MB mapping with the pinned
    allocator, `webnn.server.allocator`). With a small first piece only the headers and
    `HEAD_BYTES` are joined; the rest goes to the transport as a view of the snapshot, under
    `send_within`'s watchdog.

    `reservation`: the answer's bytes in the answer budget (`answer_budget`), released once the
    write is over however it ended, or when the payload is dropped unwritten."""

    def __init__(self, value: bytes | memoryview, reservation: Reservation | None = None) -> None:
        view = memoryview(value).cast("B")
        super().__init__(view, content_type="application/octet-stream")
        self._size = len(view)
        self._reservation = reservation
        if reservation is not None:
            release_when_dropped(self, reservation)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter,
                                content_length: int | None) -> None:
        try:
            view = self._value if content_length is None else self._value[:content_length]
            await writer.write(view[:HEAD_BYTES])
            if len(view) > HEAD_BYTES:
                await send_within(writer.write, view[HEAD_BYTES:],
                                  getattr(writer, "transport", None))
        finally:
            if self._reservation is not None:
                self._reservation.release()


def check_evaluation_bounds(body: dict, *, signed_loss: bool) -> None:
    """Bound an evaluation's figures at the door so no sum of them can overflow: a finite loss
    must lie in [0, `MAX_LOSS`] ([-`MAX_LOSS`, `MAX_LOSS`] for `SIGNED_LOSSES`), a finite
    accuracy in [0, 1]. Types, non-finite values and the example count are the caller's."""
    loss = finite_float(body.get("loss"))
    low = -MAX_LOSS if signed_loss else 0.0
    if loss is not None and not low <= loss <= MAX_LOSS:
        raise bad_field("$.loss", f"must be between {low:g} and {MAX_LOSS:g}, got {loss!r}")
    accuracy = finite_float(body.get("accuracy"))
    if accuracy is not None and not 0.0 <= accuracy <= 1.0:
        raise bad_field("$.accuracy", f"must be between 0 and 1, got {accuracy!r}")


def weights_etag(version: int, encoding: str = "f32", tag: str | None = None) -> str:
    """The ETag of `version`'s weights in `encoding`; `tag`: the weights' digest or the server
    start's id (see the module docstring)."""
    etag = f"v{version}"
    if tag:
        etag += f"-{tag[:DIGEST_CHARS]}"
    if encoding != "f32":
        etag += f"-{encoding}"
    return f'"{etag}"'


def etag_matches(request: web.Request, etag: str) -> bool:
    """Whether the request's ``If-None-Match`` names `etag` (weak or strong) or ``*``."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return etag in candidates or "*" in candidates


def reserve_answer(request: web.Request, budget: AnswerBudget | None, etag: str,
                   nbytes: int) -> Reservation | None:
    """Admit a weights answer of `nbytes` bytes under ETag `etag` to `budget`: its
    `Reservation`, or None when no body will go (no budget, a ``HEAD``, or ``If-None-Match``
    names `etag`: a 304); raises ``503 busy`` with ``Retry-After`` beyond the budget. Called
    before anything is changed for the fetch (the single process: before the fetch ends a
    lease's hold on its version), so a refused fetch can be repeated as it was."""
    if budget is None or request.method != "GET" or etag_matches(request, etag):
        return None
    address = answer_address(request, budget)
    reservation = budget.reserve(nbytes, REFUSED_WEIGHTS, address)
    if reservation is None:
        raise busy_answer(budget, nbytes, address)
    return reservation


def answer_address(request: web.Request, budget: AnswerBudget) -> str | None:
    """The client address `request`'s answer counts under for its share of `budget`
    (`answer_budget.requester`)."""
    return requester(request.remote, request.headers.get("X-Forwarded-For"), budget.trusted)


def weights_answer(request: web.Request, *, version: int, steps: int, data: bytes | memoryview,
                   encoding: str, tag: str | None = None,
                   reservation: Reservation | None = None) -> tuple[web.Response, bool]:
    """The answer to ``GET weights[/{version}]``: `data` (the version's wire bytes in
    `encoding`) with its ETag, ``X-WebNN-Version``, ``X-WebNN-Steps`` and ``X-WebNN-Encoding``,
    or ``304`` with the same headers when ``If-None-Match`` names the ETag. Returns the
    response and whether the bytes go out (for the traffic counts). `reservation`
    (`reserve_answer`) is released when the body's write is over."""
    etag = weights_etag(version, encoding, tag)
    headers = {"ETag": etag, "X-WebNN-Version": str(version), "X-WebNN-Steps": str(steps),
               "X-WebNN-Encoding": encoding, "Cache-Control": "no-cache"}
    if etag_matches(request, etag):
        if reservation is not None:
            reservation.release()
        return web.Response(status=304, headers=headers), False
    return web.Response(body=WeightsPayload(data, reservation), headers=headers), True


async def follow_up_frame(request: web.Request, answer: dict, weights: memoryview,
                          batch: BatchFrame, encoding: str = "f32", etag: str | None = None,
                          reservation: Reservation | None = None) -> web.StreamResponse:
    """The update answer as a frame that also carries the follow-up task's inputs: tensors
    ``weights`` (its version, as ``GET weights/{version}``) and ``x``, ``y`` (its batch), with the
    batch frame's header fields under ``batch`` and the weights' ETag (as ``GET weights`` gives
    it) under ``weightsEtag``, so a later fetch of that version can be answered 304. Saves the
    client the fetch round trip. Written as header + the snapshot's buffer + the batch payload
    (scatter writes, nothing re-encoded), each under `send_within`'s watchdog. `reservation`:
    the frame's bytes in the answer budget (`follow_up_bytes`), released once the writes are
    over, however they ended."""
    try:
        header = answer if etag is None else {**answer, "weightsEtag": etag}
        pieces = follow_up_pieces(header, weights, batch, encoding)
        response = web.StreamResponse(headers={"Content-Type": FRAME_TYPE})
        response.content_length = sum(len(piece) for piece in pieces)
        try:
            await response.prepare(request)
            for piece in pieces:
                if len(piece):
                    await send_within(response.write, memoryview(piece).cast("B"),
                                      request.transport)
            await response.write_eof()
        except ConnectionResetError as error:  # the client went mid-answer, or read too
            log.debug("follow-up frame: %s", error)  # slowly: its retry gets the same answer
    finally:
        if reservation is not None:
            reservation.release()
    return response


def follow_up_bytes(weights_nbytes: int, batch_frame: bytes | memoryview) -> int:
    """What a follow-up frame reserves of the answer budget before its inputs are taken:
    its weights' bytes in the session's encoding plus the batch frame's (the frame's own
    header and padding are small beside them)."""
    return weights_nbytes + len(batch_frame)
