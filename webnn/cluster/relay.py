"""A front-end's event stream in cluster mode: the run's ``events`` channel (Redis pub/sub),
relayed into this process's `EventBus`, which `api/v1/events` streams to the dashboard
unchanged (`webnn.server.events.stream_events`).

Whoever changes something publishes it once on the channel (`control.event_message`); every
front-end relays every message, so a dashboard connected to any front-end sees the same events:
``merge`` (a new version, relayed from the version channel by `VersionBoard`), ``evaluation``
(a history entry), ``state`` (pause, resume, finishing, the end) and ``client`` (join, leave).
Pub/sub delivers at most once: a message lost while a front-end reconnects to Redis only delays
the dashboard until its next poll (the page polls as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from webnn.cluster.keys import RedisClient, RunKeys
from webnn.server.events import EventBus

log = logging.getLogger("webnn.cluster")
RETRY_SECONDS = 1.0


class EventRelay:
    """Follows the run's ``events`` channel into `bus`; `on_event(event, data)` sees each
    message first (the front-end refreshes its view of the run's state on ``state``)."""

    def __init__(self, redis: RedisClient, keys: RunKeys, bus: EventBus,
                 on_event: Callable[[str, dict], None] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.bus = bus
        self.on_event = on_event
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.bus.close()

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.keys.events)
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    found = json.loads(message["data"])
                    event, data = str(found["event"]), dict(found.get("data") or {})
                    if self.on_event is not None:
                        self.on_event(event, data)
                    self.bus.publish(event, data)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("event channel: %s; resubscribing", error)
                await asyncio.sleep(RETRY_SECONDS)
