"""Server-sent events: a small publish/subscribe bus and the ``text/event-stream`` handler.

Each subscriber owns a bounded queue; a subscriber that does not keep up loses the oldest events
rather than slowing the server. `close()` ends every stream (app shutdown); a client that
disconnects is noticed within `POLL_SECONDS` and unsubscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web

from webnn.server.wire import dumps

QUEUE_SIZE = 256
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.5
_CLOSE = object()


class EventBus:
    """Fan-out of ``(event, data)`` pairs to subscriber queues (event streams) and to listeners
    (synchronous callbacks in this process, such as the metrics: `listen`)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue] = set()
        self._listeners: list[Callable[[str, dict], None]] = []
        self.closed = False

    def listen(self, callback: Callable[[str, dict], None]) -> None:
        """Call ``callback(event, data)`` on every publish, before the streams get it."""
        self._listeners.append(callback)

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        if self.closed:
            queue.put_nowait(_CLOSE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)

    def publish(self, event: str, data: dict) -> None:
        for callback in self._listeners:
            callback(event, data)
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait((event, data))

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(_CLOSE)


def format_event(event: str, data: dict) -> bytes:
    """One SSE message; `data` is strict JSON (`wire.dumps`: non-finite numbers become null)."""
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


async def stream_events(request: web.Request, bus: EventBus, hello: dict) -> web.StreamResponse:
    """Stream events from `bus` to one client until it disconnects or the bus closes.

    The first event is ``state`` with `hello` (the current status). Comments keep idle connections
    alive through proxies.
    """
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    queue = bus.subscribe()
    try:
        await response.prepare(request)
        await response.write(format_event("state", hello))
        idle = 0.0
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), POLL_SECONDS)
            except TimeoutError:
                # aiohttp does not cancel a handler whose client went away: look for it ourselves
                if request.transport is None or request.transport.is_closing():
                    break
                idle += POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    await response.write(b": keepalive\n\n")
                continue
            idle = 0.0
            if item is _CLOSE:
                break
            await response.write(format_event(*item))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        bus.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError, ConnectionError, RuntimeError):
        await response.write_eof()
    return response
