"""Model-sized values on their way out of Redis, against a real redis-server: the merger's and
the front-ends' `ArrayReader` (raw ``MGET`` into writable buffers), a non-finite merge undone
by a replay from the checkpoint (no snapshot per entry), and one blob fetch per version for
requests that miss a front-end's cache together.

Checked: the reader gives redis-py's values (a 4 MB one, a small one, a missing key) in another
database and behind a password, says what Redis refused, and answers right after a read
cancelled midway, after Redis closed its connection or after a reply stopped arriving; a
FedBuff batch whose flush overflows keeps the entries before it merged and the strategy's
buffer as it was just before it (the next flush uses it); 20 concurrent requests for a new
version cost Redis one ``MGET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
import pytest
from redis.exceptions import ResponseError
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.cluster.connection import ArrayReader, connect
from webnn.cluster.keys import RunKeys
from webnn.cluster.merger import Merger
from webnn.cluster.records import detach, partial_fields
from webnn.cluster.settings import ClusterSettings
from webnn.cluster.versions import VersionBoard, digest_of
from webnn.merge.base import Partial
from webnn.server.config import load_parts

pytestmark = pytest.mark.slow
RUN = "arrays-test"


async def test_the_reader_gives_redis_values_as_writable_buffers(redis_server):  # noqa: F811
    url = redis_server.url.rsplit("/", 1)[0] + "/2"
    client = connect(url)
    big = np.arange(1_000_000, dtype="<f4").tobytes()
    await client.set("big", big)
    await client.set("small", b"x" * 7)
    reader = ArrayReader.from_client(client)
    assert reader is not None and reader.db == 2
    try:
        values = await reader.mget(["big", "missing", "small", "big"])
        assert [None if v is None else bytes(v) for v in values] == \
            await client.mget(["big", "missing", "small", "big"])
        array = np.frombuffer(values[0], dtype="<f4")
        assert array.flags.writeable and array[-1] == 999_999
        assert await reader.mget([]) == []
        # a read cancelled at any point (or finished first) leaves no reply behind for the
        # next command
        for yields in range(12):
            task = asyncio.create_task(reader.mget(["big", "small", "big"]))
            for _ in range(yields):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert [bytes(v) for v in await reader.mget(["small", "big"])] == [b"x" * 7, big]
        # a kept connection that Redis closed is replaced, the read sent again
        assert await client.client_kill_filter(_type="normal", skipme=True) >= 1
        assert [bytes(v) for v in await reader.mget(["small"])] == [b"x" * 7]
    finally:
        reader.close()
        await client.aclose()


async def test_the_reader_authenticates_and_names_what_redis_refused(redis_server):  # noqa: F811
    client = connect(redis_server.url)
    await client.set("k", b"value")
    await client.config_set("requirepass", "s3cret")
    await client.aclose()
    port = redis_server.port
    good = connect(f"redis://:s3cret@127.0.0.1:{port}/0")
    bad = ArrayReader(host="127.0.0.1", port=port, password="wrong")
    anonymous = ArrayReader(host="127.0.0.1", port=port)
    reader = ArrayReader.from_client(good)
    assert reader is not None
    try:
        assert [bytes(v) for v in await reader.mget(["k"])] == [b"value"]
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await bad.mget(["k"])
        with pytest.raises(ResponseError, match="NOAUTH"):
            await anonymous.mget(["k"])
        assert [bytes(v) for v in await reader.mget(["k"])] == [b"value"]
    finally:
        for each in (reader, bad, anonymous):
            each.close()
        await good.aclose()


async def test_a_reply_that_stops_arriving_fails_the_read_and_the_next_one_starts_afresh():
    """A Redis that announces a 1 MB value, sends 10 bytes of it and then nothing: the read
    fails with a ConnectionError naming the stall (not a hang), and the next read opens a new
    connection, which here answers in full."""
    connections: list[asyncio.StreamWriter] = []

    async def stalling_then_good(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.readuntil(b"k\r\n")  # the MGET of one key "k"
        if len(connections) == 1:
            writer.write(b"*1\r\n$1000000\r\n" + b"x" * 10)
        else:
            writer.write(b"*1\r\n$3\r\nabc\r\n")
        await writer.drain()

    server = await asyncio.start_server(stalling_then_good, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader = ArrayReader(host="127.0.0.1", port=port, stall_timeout=0.2)
    try:
        with pytest.raises(ConnectionError, match="Redis sent nothing for 0.2 s"):
            await reader.mget(["k"])
        assert [bytes(v) for v in await reader.mget(["k"])] == [b"abc"]
        assert len(connections) == 2
    finally:
        reader.close()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


def _partial(task: str, total: np.ndarray) -> list:
    return partial_fields([task], Partial(total=total.astype(np.float32), count=1, weight=1.0,
                                          max_steps=1), "test")


async def test_an_overflowing_flush_is_undone_by_a_replay_that_keeps_the_batch_before_it(
        redis_server, make_config):  # noqa: F811
    config = make_config(strategy="fedbuff", strategy_params={"k": 2},
                         eval_every_merges=10**6)
    cluster = ClusterSettings(redis_url=redis_server.url, run=RUN)
    merger = Merger(config, load_parts(config), cluster, connect(redis_server.url),
                    RunKeys(RUN), "merger-replay")
    redis = connect(redis_server.url)
    try:
        await redis.set(f"wnn:{RUN}:merger_lock", merger.owner)  # it leads (no renewal here)
        await merger._load()
        size = merger.layout.size
        w0 = merger.model.weights.copy()
        rng = np.random.default_rng(3)
        small = [rng.normal(0, 0.1, size).astype(np.float32) for _ in range(3)]
        totals = [small[0], small[1], np.full(size, 3e38, np.float32),
                  np.full(size, 3e38, np.float32), small[2]]
        ids = []
        for index, total in enumerate(totals):  # one read batch, arrays detached as COMMIT does
            key = f"wnn:{RUN}:payload:test:{index}"
            fields, data = detach(_partial(f"p{index}", total), key)
            await redis.set(key, data)
            pairs = dict(zip(fields[::2], fields[1::2], strict=True))
            ids.append((await redis.xadd(f"wnn:{RUN}:stream", pairs)).decode())
        reads = 0
        while merger.applied != ids[-1]:
            answer = await redis.xread({f"wnn:{RUN}:stream": merger.applied}, count=64)
            await merger._process(answer[0][1])
            reads += 1
        assert reads == 2, "the overflowing flush sent the merger back to the checkpoint once"
        records = {r["entry"]: r for r in
                   (json.loads(x) for x in await redis.lrange(f"wnn:{RUN}:merged", 0, -1))}
        assert [records[i]["refused"] for i in ids] == [None, None, None, "merge_not_finite",
                                                        None]
        assert len(records) == 5, "each entry logged once"
        assert merger.merges == 4 and merger.model.version == 1  # one version a read batch
        # flushed: p0 and p1, then p2 (kept in the buffer through the undo) and p4
        w1 = w0 + (small[0] + small[1]) / np.float32(2)
        expected = w1 + (np.float32(3e38) + small[2]) / np.float32(2)
        np.testing.assert_allclose(merger.model.weights, expected, rtol=1e-5)
        current = await redis.hgetall(f"wnn:{RUN}:current")
        blob = await redis.get(f"wnn:{RUN}:blob:" + current[b"digest"].decode())
        np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4"), merger.model.weights)
        assert await redis.keys(f"wnn:{RUN}:payload:*") == [], "merged arrays deleted"
    finally:
        await redis.aclose()
        await merger.redis.aclose()


async def test_requests_missing_the_cache_together_share_one_fetch(redis_server):  # noqa: F811
    keys = RunKeys(RUN)
    redis = connect(redis_server.url)
    blob = np.arange(500_000, dtype="<f4").tobytes()
    digest = digest_of(blob)
    await redis.set(keys.blob(digest), blob)
    await redis.hset(keys.current, mapping={"version": 3, "digest": digest, "steps": 9,
                                            "merges": 30})
    board = VersionBoard(redis, keys)
    try:
        await board.start()
        await redis.config_resetstat()
        answers = await asyncio.gather(*(board.weights(None) for _ in range(20)))
        assert all(info.version == 3 and data == blob and isinstance(data, bytes)
                   for info, data in answers)
        stats = await redis.info("commandstats")
        assert stats["cmdstat_get"]["calls"] == 1
        await board.weights(3)  # cached now
        assert (await redis.info("commandstats"))["cmdstat_get"]["calls"] == 1
    finally:
        await board.stop()
        await redis.aclose()
