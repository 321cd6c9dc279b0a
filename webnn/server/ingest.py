"""The update ingest path: body bytes straight into a pooled buffer, checked in place.

1. `Ingest.read(request, merge_waiting)` asks admission for the body's declared Content-Length
   (503 ``busy`` when the budget, the merge queue or the queueing-delay target is exceeded,
   before anything is read; the answer closes the connection, so a refused body larger than
   `LINGER_BYTES` is never read: `closing`), takes a
   buffer of that size from the pool and fills it as the body arrives: past its first read, the
   socket's bytes go straight into the buffer (``recv_into``, `_read_into`); no growing
   bytearray, no ``bytes()`` of the whole.
   A body over the limit is ``413 too_large``; one shorter than declared ``400 truncated``; one
   that makes no progress for `timeout` seconds ``408 body_timeout`` (`BodyTimeout`: the
   connection is closed right after the answer).
2. `updates.decode_update` decodes the frame in place: the weights are a float32 view on the
   pooled buffer (writable, so the strategy may use them as scratch, as the `Update` contract
   allows).
3. `check_weights` checks finiteness and, when a norm is wanted, the delta norm in one pass
   (`CHUNK` values at a time, a chunk-sized scratch, no model-sized temporary).
4. After the merge the route calls `PooledBody.release()`: the buffer goes back to the pool and its
   bytes back to the budget. In steady state no model-sized allocation happens per request.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from webnn.server.admission import Admission
from webnn.server.errors import ProtocolError
from webnn.server.wire import dumps

CHUNK = 1 << 17
"""Values per chunk of `check_weights` with a norm (512 KiB of float32: in cache between the chunk's
sum and its dot product). Measured against 4 MiB chunks (fewer numpy calls, so fewer times the
merge thread must win the GIL back): 512 KiB is faster, with or without a busy thread beside it."""


class BufferPool:
    """Byte buffers of `size` bytes, reused; at most `keep` are kept free. A request for more than
    `size` bytes gets a one-off buffer that is not kept."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        self._free: deque[np.ndarray] = deque()
        self.allocated = 0

    def acquire(self, nbytes: int) -> np.ndarray:
        if nbytes > self.size:
            self.allocated += 1
            return np.empty(nbytes, dtype=np.uint8)
        try:
            return self._free.pop()
        except IndexError:
            self.allocated += 1
            return np.empty(self.size, dtype=np.uint8)

    def give_back(self, buffer: np.ndarray) -> None:
        if buffer.size == self.size and len(self._free) < self.keep:
            self._free.append(buffer)


@dataclass
class PooledBody:
    """An update body held in a pooled buffer; `data` is a view of its `length` bytes."""

    buffer: np.ndarray
    length: int
    reserved: int
    _release: object = field(repr=False)
    released: bool = False

    @property
    def data(self) -> memoryview:
        return memoryview(self.buffer)[: self.length]  # type: ignore[arg-type]  # numpy buffer

    def release(self) -> None:
        """Give the buffer back to the pool and the bytes back to the budget (once)."""
        if not self.released:
            self.released = True
            self._release(self)  # type: ignore[operator]


class Ingest:
    """Reads update bodies for one model: pool, budget and limit."""

    def __init__(self, admission: Admission, limit: int, pool_size: int,
                 timeout: float = 10.0) -> None:
        self.admission = admission
        self.limit = limit
        self.timeout = timeout
        self.pool = BufferPool(pool_size, keep=max(1, admission.limits.body_budget // pool_size))

    async def read(self, request: web.Request, merge_waiting: int) -> PooledBody:
        """The request's body in a pooled buffer; see the module docstring for the errors."""
        declared = request.content_length
        if declared is not None and declared > self.limit:
            raise ProtocolError(413, "too_large",
                                f"body of {declared} bytes exceeds this endpoint's limit of "
                                f"{self.limit} bytes")
        reserve = declared if declared is not None else self.limit
        # the budget counts the memory held: a body that fits the pool's size holds a whole
        # pooled buffer, however few bytes it declares (a q8 body, or a stalling trickle)
        reserve = max(reserve, self.pool.size) if reserve <= self.pool.size else reserve
        try:
            self.admission.admit_body(reserve, merge_waiting)
        except ProtocolError as error:
            raise closing(error, declared) from None
        buffer = self.pool.acquire(reserve)
        body = PooledBody(buffer, 0, reserve, self._give_back)
        try:
            body.length = await _read_into(request, buffer, reserve, self.limit, self.timeout)
        except BaseException:
            body.release()
            raise
        if declared is not None and body.length != declared:
            body.release()
            raise ProtocolError(400, "truncated",
                                f"body holds {body.length} bytes; Content-Length said {declared}")
        return body

    def _give_back(self, body: PooledBody) -> None:
        self.pool.give_back(body.buffer)
        self.admission.release_body(body.reserved)


class ClosingError(ProtocolError):
    """A refusal whose answer closes the connection as soon as it is written: the rest of the
    request's body is not read (aiohttp would otherwise read and discard it, up to its lingering
    time of 10 s, on the event loop: for a refused 4 MB update, as much work as accepting it)."""

    def response(self) -> web.Response:
        response = _ClosingResponse(text=dumps(self.payload()), status=self.status,
                                    headers=self.headers, content_type="application/json")
        response.force_close()
        return response


LINGER_BYTES = 1 << 20
"""A refused body up to this size is read and discarded (aiohttp's lingering read) rather than
cut off by closing the connection: closing with unread bytes makes the kernel reset the
connection, and a client that already sent its whole body may then see the reset instead of the
answer (the device benchmark saw 1 in 1 457 refusals of 0.4 MB bodies fail so). Reading a small
body costs little; a large one is cut off, its client is still sending when the answer comes."""


def closing(error: ProtocolError, declared: int | None = None) -> ProtocolError:
    """`error` as a `ClosingError` (same status, code, message and headers), unless the body's
    declared length is at most `LINGER_BYTES` (then `error` itself: the body is read and
    dropped, the connection kept)."""
    if declared is not None and declared <= LINGER_BYTES:
        return error
    return ClosingError(error.status, error.code, error.message, error.headers)


class BodyTimeout(ClosingError):
    """``408 body_timeout``: the body made no progress for the read timeout. The answer closes
    the connection as soon as it is written (no lingering read of the rest of the body)."""

    def __init__(self, timeout: float, length: int) -> None:
        super().__init__(408, "body_timeout",
                         f"no byte of the body arrived for {timeout:g} s (after {length} bytes); "
                         "the connection is closed")


class _ClosingResponse(web.Response):
    """A response after which the server closes the connection at once: aiohttp would otherwise
    keep reading the unread body for up to its lingering time (10 s) before closing."""

    _closing: object = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        self._closing = request.protocol
        return await super().prepare(request)

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        if self._closing is not None:
            self._closing.force_close()  # type: ignore[attr-defined]  # flushes, then closes


class _Stall:
    """The progress deadline of one body read: `BodyTimeout` once no byte arrived for `timeout`
    seconds. One timer per body, re-armed only when it fires (at the last progress + `timeout`)
    rather than a timeout scope per received chunk (``asyncio.timeout`` per chunk cost about 5 %
    of the server's event-loop samples at 1M parameters without think time: a timer handle
    scheduled and cancelled 16 times per 4 MB body). The reader marks progress with
    ``stall.last = loop.time()``; when the deadline passes, the reading task is cancelled and
    `expired` says why (`ended` turns that cancellation into the timeout, as ``asyncio.timeout``
    does: a cancellation from elsewhere stays a cancellation)."""

    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.timeout = timeout
        self.last = self.loop.time()
        self.expired = False
        self._taken_back = False
        self._handle = self.loop.call_at(self.last + timeout, self._check)

    def _check(self) -> None:
        deadline = self.last + self.timeout
        if deadline > self.loop.time() + 1e-3:  # progress since it was armed: re-arm
            self._handle = self.loop.call_at(deadline, self._check)
        elif self.task is not None and not self.task.done():
            self.expired = True
            self.task.cancel()

    def ended(self) -> bool:
        """Stop the timer; True when the read was cancelled by this deadline alone (then the
        cancellation is taken back, once, as ``asyncio.timeout`` does)."""
        self._handle.cancel()
        if not self.expired or self._taken_back or self.task is None:
            return False
        self._taken_back = True
        return self.task.uncancel() == 0


async def _read_into(request: web.Request, buffer: np.ndarray, room: int, limit: int,
                     timeout: float = 10.0, *, direct: bool = True) -> int:
    """Copy the body into `buffer` as it arrives; returns the byte count. `BodyTimeout` when no
    byte arrives for `timeout` seconds (the deadline moves with every read: `_Stall`).

    As soon as the reader has taken every chunk aiohttp received (the first read of a body also
    holds the request's headers, so it always goes through aiohttp's parser), the rest of a body
    of declared length is received from the socket straight into `buffer` where the connection's
    handler can (`runner.JsonRequestHandler.receive_into`: one kernel copy, one wake-up at the
    end). Otherwise, and until then, `readchunk` hands over aiohttp's received chunks one by one
    without joining them (an empty chunk with ``end_of_http_chunk`` marks a chunked-encoding
    boundary, not the end: the end is an empty chunk at EOF). `direct` False: chunks only (to
    compare)."""
    view = memoryview(buffer)  # type: ignore[arg-type]  # numpy buffer
    length = 0
    content = request.content
    stall = _Stall(timeout)
    clock = stall.loop.time
    declared = request.content_length
    receive_into = getattr(request.protocol, "receive_into", None) if direct else None
    straight = 0  # bytes received straight into the buffer so far

    def progress(filled: int) -> None:
        nonlocal straight
        stall.last = clock()
        straight = filled

    try:
        while True:
            if (receive_into is not None and declared is not None and length < declared <= room
                    and content.total_bytes == length
                    and await receive_into(request, view[length:declared], length, progress)):
                return declared
            # one buffered chunk at a time, as aiohttp received it: `readany` would join
            # whatever is buffered into a new bytes object first (one more copy)
            chunk, _ = await content.readchunk()
            stall.last = clock()
            if not chunk:
                if content.at_eof():
                    return length
                continue
            end = length + len(chunk)
            if end > room:
                raise ProtocolError(413, "too_large", f"body exceeds this endpoint's limit of "
                                                      f"{min(room, limit)} bytes")
            view[length:end] = chunk
            length = end
    except asyncio.CancelledError:
        if stall.ended():
            raise BodyTimeout(timeout, length + straight) from None
        raise
    finally:
        stall.ended()


@dataclass(frozen=True)
class WeightCheck:
    """Result of `check_weights`: `bad` non-finite values (first at `first`), and the delta's
    L2 norm when asked for (None otherwise, or when not finite)."""

    bad: int = 0
    first: int = -1
    norm: float | None = None

    @property
    def finite(self) -> bool:
        return self.bad == 0


def check_weights(weights: np.ndarray, reference: np.ndarray | None = None, *,
                  norm: bool = False, scratch: np.ndarray | None = None) -> WeightCheck:
    """Finiteness of `weights` (flat float32) and, with `norm`, ``||weights - reference||_2``
    (``||weights||_2`` without a reference), reading the data once.

    Finiteness: the float32 sum is finite exactly when no value is NaN/Inf, unless finite values
    overflow it; only then is it checked again chunk by chunk, value by value. Without `norm` that
    is one numpy call over the whole buffer (no temporary, and one GIL release in a worker
    thread). With `norm`, chunks of `CHUNK` values are read once each: ``dot(d, d)`` of the
    chunk's delta ``d`` in float32 (a chunk-sized float32 `scratch`, allocated when not given),
    summed in float64. The reference is finite (it is a model version), so a finite ``dot(d, d)``
    also proves the chunk finite (a NaN or Inf value makes its delta's square NaN or Inf); only a
    chunk whose dot is not finite is checked value by value, and if it holds no NaN/Inf (finite
    squares that overflow float32) its dot is redone in float64.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if not norm:
            if math.isfinite(float(np.add.reduce(weights))):
                return WeightCheck()
            return _find_bad(weights)
        size = weights.size
        if reference is not None and (scratch is None or scratch.size < min(CHUNK, size)):
            scratch = np.empty(min(CHUNK, size), dtype=np.float32)
        total = 0.0
        for start in range(0, size, CHUNK):
            stop = min(start + CHUNK, size)
            part = weights[start:stop]
            base = None if reference is None else reference[start:stop]
            square = _square(part, base, scratch)
            if not math.isfinite(square):
                bad = _find_bad(part)
                if not bad.finite:
                    return _count_bad(weights, start + bad.first)
                square = _square_wide(part, base)
            total += square
    return WeightCheck(norm=math.sqrt(total))


def _find_bad(weights: np.ndarray) -> WeightCheck:
    """The first NaN/Inf of a buffer whose sum was not finite (chunk by chunk), if any."""
    for start in range(0, weights.size, CHUNK):
        bad = ~np.isfinite(weights[start:start + CHUNK])
        if bad.any():
            return _count_bad(weights, start + int(np.argmax(bad)))
    return WeightCheck()


def _square(part: np.ndarray, reference: np.ndarray | None,
            scratch: np.ndarray | None) -> float:
    """``||part - reference||^2`` of one chunk as a float32 dot (not finite when a value is NaN or
    Inf, or when finite squares overflow float32)."""
    delta = part
    if reference is not None:
        assert scratch is not None
        delta = np.subtract(part, reference, out=scratch[: part.size])
    return float(np.dot(delta, delta))


def _square_wide(part: np.ndarray, reference: np.ndarray | None) -> float:
    """``||part - reference||^2`` of a finite chunk in float64 (its float32 dot overflowed)."""
    wide = part.astype(np.float64)
    if reference is not None:
        wide -= reference
    return float(np.dot(wide, wide))


def _count_bad(weights: np.ndarray, first: int) -> WeightCheck:
    """The slow path for the error message: how many values are not finite (counted in chunks)."""
    bad = 0
    for start in range(first, weights.size, CHUNK):
        bad += int(np.count_nonzero(~np.isfinite(weights[start:start + CHUNK])))
    return WeightCheck(bad=bad, first=first)
