"""Published versions as the front-ends see them: the current one (followed through pub/sub,
with a poll as a safety net) and a small cache of weights by content digest.

Every version is published once by the merger: ``version:<n>`` names its SHA-256 digest,
``blob:<digest>`` holds its float32 bytes. A front-end fetches a blob the first time it is
asked for and keeps it (least recently used out), so every front-end serves the very same bytes
under the same ETag (``"v<n>-<digest>"``, `webnn.server.answers.weights_etag`). Requests that
miss the cache together share one fetch (a new version is asked for by many clients at once),
a ``GET`` of the ordinary client (the merger reads its entries with `connection.ArrayReader`;
a front-end fetches a blob once per version, where redis-py's extra copy costs little).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from webnn.cluster.keys import RedisClient, RunKeys
from webnn.server.encodings import to_half
from webnn.server.errors import ProtocolError

log = logging.getLogger("webnn.cluster")
POLL_SECONDS = 1.0


def digest_of(data: bytes | memoryview) -> str:
    """The content address of a version's weights: SHA-256, hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class VersionInfo:
    """A published version: number, content digest, step count t, merges (updates merged)."""

    version: int
    digest: str
    steps: int
    merges: int

    @classmethod
    def from_hash(cls, version: int, fields: dict) -> VersionInfo:
        return cls(version=version, digest=_text(fields[b"digest"]),
                   steps=int(fields[b"steps"]), merges=int(fields[b"merges"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


STOP_SECONDS = 5.0
"""How long `VersionBoard.stop` waits for its follower tasks to end."""


class VersionBoard:
    """The current version and cached weights for one front-end."""

    def __init__(self, redis: RedisClient, keys: RunKeys, cache_size: int = 8) -> None:
        self.redis = redis
        self.keys = keys
        self.cache_size = cache_size
        self.current: VersionInfo | None = None
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._infos: OrderedDict[int, VersionInfo] = OrderedDict()
        self._arrays: dict[str, np.ndarray] = {}
        self._halves: OrderedDict[str, bytes] = OrderedDict()
        self._fetching: dict[str, asyncio.Future[bytes]] = {}
        """The fetch under way of a blob by digest, shared by the requests that wait for it."""
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.on_version: Callable[[VersionInfo], None] | None = None
        """Called with each newer version seen (the front-end's ``merge`` event)."""

    async def start(self, timeout: float = 120.0) -> None:
        """Follow the channel, and wait (up to `timeout` s) for the first published version."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]
        async with asyncio.timeout(timeout):
            while self.current is None:
                await self.refresh()
                if self.current is None:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await self._changed.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # bounded: a cancellation that lands inside redis-py's pub/sub (subscribing) may be
            # swallowed, and a stop must not wait for such a task forever
            await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
        for task in self._tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failure at stop is not worth a warning
        for fetch in list(self._fetching.values()):
            fetch.cancel()

    async def refresh(self) -> None:
        fields = await self.redis.hgetall(self.keys.current)
        if fields:
            self._note(VersionInfo.from_hash(int(fields[b"version"]), fields))

    def _note(self, info: VersionInfo) -> None:
        if self.current is None or info.version > self.current.version:
            self.current = info
            self._infos[info.version] = info
            self._changed.set()
            if self.on_version is not None:
                self.on_version(info)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.keys.channel)
                await self.refresh()  # whatever was published before the subscription
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = json.loads(message["data"])
                    self._note(VersionInfo(int(data["version"]), data["digest"],
                                           int(data["steps"]), int(data["merges"])))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis went away: retry, the poll keeps us current
                log.warning("version channel: %s; resubscribing", error)
                await asyncio.sleep(POLL_SECONDS)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            with contextlib.suppress(Exception):
                await self.refresh()

    async def info(self, version: int | None) -> VersionInfo:
        """The current version (None) or version `version`; 404 ``unknown_version`` when it is
        not (or no longer) kept."""
        if version is None or (self.current is not None and version == self.current.version):
            assert self.current is not None, "start() waits for the first version"
            return self.current
        cached = self._infos.get(version)
        if cached is not None:
            return cached
        fields = await self.redis.hgetall(self.keys.version(version))
        if not fields:
            raise ProtocolError(404, "unknown_version",
                                f"version {version} is not held (the run keeps the newest "
                                "versions only)")
        info = VersionInfo.from_hash(version, fields)
        self._infos[version] = info
        while len(self._infos) > 4 * self.cache_size:
            self._infos.popitem(last=False)
        return info

    async def weights(self, version: int | None) -> tuple[VersionInfo, bytes]:
        """A version's info and float32 bytes (fetched once per digest, then cached)."""
        info = await self.info(version)
        blob = self._blobs.get(info.digest)
        if blob is None:
            fetch = self._fetching.get(info.digest)
            if fetch is None:
                fetch = asyncio.ensure_future(self._fetch(info))
                self._fetching[info.digest] = fetch
                digest = info.digest
                fetch.add_done_callback(lambda _done: self._fetched(digest))
            blob = await asyncio.shield(fetch)
        else:
            self._blobs.move_to_end(info.digest)
        return info, blob

    async def _fetch(self, info: VersionInfo) -> bytes:
        """A version's blob from Redis into the cache (one fetch per digest at a time)."""
        key = self.keys.blob(info.digest)
        blob = await self.redis.get(key)
        if blob is None:
            raise ProtocolError(404, "unknown_version", f"version {info.version} is no longer held")
        self._blobs[info.digest] = blob
        while len(self._blobs) > self.cache_size:
            old, _ = self._blobs.popitem(last=False)
            self._arrays.pop(old, None)
        return blob

    def _fetched(self, digest: str) -> None:
        fetch = self._fetching.pop(digest, None)
        if fetch is not None and not fetch.cancelled():
            fetch.exception()  # retrieved: each waiter gets it through the shield

    async def half(self, info: VersionInfo, blob: bytes) -> bytes:
        """A version's weights as float16 (`to_half`, made once per digest in a worker thread
        and cached like the float32 bytes)."""
        half = self._halves.get(info.digest)
        if half is None:
            half = await asyncio.to_thread(
                lambda: to_half(np.frombuffer(blob, dtype="<f4")).tobytes())
            self._halves[info.digest] = half
            while len(self._halves) > self.cache_size:
                self._halves.popitem(last=False)
        else:
            self._halves.move_to_end(info.digest)
        return half

    async def array(self, version: int) -> np.ndarray:
        """A version's weights as a read-only float32 array (no copy of the cached bytes)."""
        info, blob = await self.weights(version)
        array = self._arrays.get(info.digest)
        if array is None:
            array = self._arrays[info.digest] = np.frombuffer(blob, dtype="<f4")
        return array
