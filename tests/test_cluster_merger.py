"""The merger against a real redis-server, in this process: stream entries are written straight
to the run's stream (as a front-end's COMMIT would) and one or two `Merger` objects apply them.

Checked: a non-finite merge rolls back only itself (earlier merges of the same read batch stay,
with the strategy's state); after a lock takeover every entry is merged exactly once, also the
entries a deposed leader read before it noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
import pytest
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.cluster.connection import connect
from webnn.cluster.keys import RunKeys
from webnn.cluster.merger import Merger
from webnn.cluster.records import update_fields
from webnn.cluster.settings import ClusterSettings
from webnn.merge.base import Update
from webnn.server.config import load_parts

pytestmark = pytest.mark.slow
RUN = "merger-test"


def _merger(config, url: str, label: str, **settings) -> Merger:
    cluster = ClusterSettings(redis_url=url, run=RUN, **settings)
    return Merger(config, load_parts(config), cluster, connect(url), RunKeys(RUN), label)


def _entry(task: str, weights: np.ndarray, base_version: int = 0) -> list:
    update = Update(weights=weights.astype(np.float32), base_version=base_version, base_steps=0,
                    local_steps=1, staleness=0, client="c", examples=8)
    return update_fields([task], update, "test")


async def _until(check, what: str, seconds: float = 60.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.02)
    assert await check(), what


def _records(client) -> list[dict]:
    return [json.loads(r) for r in client.lrange(f"wnn:{RUN}:merged", 0, -1)]


async def _applied_up_to(redis, entry_id: str) -> bool:
    applied = await redis.hget(f"wnn:{RUN}:checkpoint", "applied")
    return applied is not None and applied.decode() == entry_id


async def test_an_overflowing_merge_rolls_back_only_itself_in_its_batch(
        redis_server, make_config):  # noqa: F811
    config = make_config(strategy="fedasync", eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-a")
    size = merger.layout.size
    redis = connect(redis_server.url)
    # both entries in the stream before the merger reads: one batch. A (finite, -3e38) mixes to
    # 0.4 x0 + 0.6 A (finite); B (+3e38) then overflows in `update - model` (4.8e38).
    first = await redis.xadd(f"wnn:{RUN}:stream", _pairs(_entry("a", np.full(size, -3e38))))
    last = await redis.xadd(f"wnn:{RUN}:stream", _pairs(_entry("b", np.full(size, 3e38))))
    stop = asyncio.Event()
    task = asyncio.create_task(merger.run(stop))
    try:
        await _until(lambda: _applied_up_to(redis, last.decode()), "both entries applied")
        records = {r["entry"]: r for r in _records(redis_server.client())}
        assert records[first.decode()]["refused"] is None
        assert records[last.decode()]["refused"] == "merge_not_finite"
        current = await redis.hgetall(f"wnn:{RUN}:current")
        assert int(current[b"version"]) == 1 and int(current[b"merges"]) == 1
        assert await redis.hget(f"wnn:{RUN}:stats", "rejected:merge_not_finite") == b"1"
        weights = np.frombuffer(await redis.get(f"wnn:{RUN}:blob:" + current[b"digest"].decode()),
                                dtype="<f4")
        initial = merger.parts.spec.compiled.initial_weights(merger.parts.seed)
        expected = np.float32(0.4) * initial + np.float32(0.6) * np.float32(-3e38)
        assert np.all(np.isfinite(weights))
        np.testing.assert_allclose(weights, expected, rtol=1e-5)  # A's merge survived
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await redis.aclose()
        await merger.redis.aclose()


def _pairs(fields: list) -> dict:
    return dict(zip(fields[::2], fields[1::2], strict=True))


async def test_entries_read_by_a_deposed_leader_are_merged_once_by_the_new_one(
        redis_server, make_config):  # noqa: F811
    config = make_config(strategy="average", eval_every_merges=10**6)
    old = _merger(config, redis_server.url, "merger-old", lock_ms=300)
    new = _merger(config, redis_server.url, "merger-new", lock_ms=300)
    size = old.layout.size
    redis = connect(redis_server.url)

    async def never_renew(lost: asyncio.Event) -> None:  # a stalled leader: it keeps reading
        await asyncio.Event().wait()

    old._renew = never_renew  # type: ignore[method-assign]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(old.run(stops[0]))]
    try:
        await _until(lambda: _has_version(redis), "version 0")
        tasks.append(asyncio.create_task(new.run(stops[1])))

        async def new_leads() -> bool:
            owner = await redis.get(f"wnn:{RUN}:merger_lock")
            return owner is not None and owner.decode() == new.owner and new.controller is not None

        await _until(new_leads, "the standby to take the lapsed lock")
        assert old.leading  # the deposed leader has not noticed yet
        rng = np.random.default_rng(0)
        ids = []
        for index in range(24):
            ids.append((await redis.xadd(f"wnn:{RUN}:stream", _pairs(
                _entry(f"t{index}", rng.normal(0, 0.1, size))))).decode())
            await asyncio.sleep(0)
        await _until(lambda: _applied_up_to(redis, ids[-1]), "every entry applied", 30)
        records = _records(redis_server.client())
        merged = [task for r in records if r["refused"] is None for task in r["tasks"]]
        assert sorted(merged) == sorted(f"t{i}" for i in range(24)), "merged once each"
        current = await redis.hgetall(f"wnn:{RUN}:current")
        assert int(current[b"merges"]) == 24
    finally:
        for stop in stops:
            stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        await redis.aclose()
        await old.redis.aclose()
        await new.redis.aclose()


async def _has_version(redis) -> bool:
    return await redis.hget(f"wnn:{RUN}:current", "version") is not None


async def test_a_backlog_keeps_the_base_versions_its_updates_need(
        redis_server, make_config, serve, monkeypatch):  # noqa: F811
    import aiohttp
    from support.protocol_client import ProtocolClient

    import webnn.cluster.merger as merger_module
    from webnn.server.app import create_app

    # dcasgd merges raw updates against their base version's weights (not combinable)
    config = make_config(strategy="dcasgd", eval_every_merges=10**6)
    first = _merger(config, redis_server.url, "merger-first", keep_versions=2)
    second = _merger(config, redis_server.url, "merger-second", keep_versions=2)
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(first.run(stops[0]))]
    redis = connect(redis_server.url)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run=RUN,
                                                     role="frontend", keep_versions=2))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="backlog")
            rng = np.random.default_rng(0)
            answer = await client.train_once(rng)
            assert answer is not None and answer.status == 200, answer

            async def version_1() -> bool:
                return await redis.hget(f"wnn:{RUN}:current", "version") == b"1"

            await _until(version_1, "version 1")
            stops[0].set()  # (version 0 stays pinned by its evaluation, which nobody does)
            await asyncio.wait_for(tasks[0], 30)
            for _ in range(5):  # all on version 1: no merger runs now
                answer = await client.train_once(rng)
                assert answer is not None and answer.status == 200, answer
        ids = [i.decode() for i, _ in await redis.xrange(f"wnn:{RUN}:stream")][-5:]
        # one entry a read: a version a publication, so the backlog spans 5 > 2 kept versions
        monkeypatch.setattr(merger_module, "READ_COUNT", 1)
        tasks.append(asyncio.create_task(second.run(stops[1])))
        await _until(lambda: _applied_up_to(redis, ids[-1]), "the backlog applied")
        records = _records(redis_server.client())[-5:]
        assert [r["refused"] for r in records] == [None] * 5, records
        assert int((await redis.hgetall(f"wnn:{RUN}:current"))[b"version"]) == 6
        assert await redis.zcard(f"wnn:{RUN}:bases") == 0  # every pin released
        assert not await redis.exists(f"wnn:{RUN}:version:1")  # and dropped afterwards
    finally:
        for stop in stops:
            stop.set()
        for task in tasks:
            await asyncio.wait_for(task, 30)
        await served.stop()
        await redis.aclose()
        await first.redis.aclose()
        await second.redis.aclose()


async def test_a_busy_spell_without_new_weights_still_publishes_checkpoints(
        redis_server, make_config, monkeypatch):  # noqa: F811
    import webnn.cluster.merger as merger_module
    from webnn.cluster.records import partial_fields

    # fedbuff with a buffer that never fills: entries change no weights
    config = make_config(strategy="fedbuff", strategy_params={"k": 10**6},
                         eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-busy")
    size = merger.layout.size
    redis = connect(redis_server.url)
    rng = np.random.default_rng(0)
    folder = merger.parts.strategy
    ids = []
    for index in range(130):  # all there before the merger reads: no idle moment between
        update = Update(weights=rng.normal(0, 0.1, size).astype(np.float32), base_version=0,
                        base_steps=0, local_steps=1, staleness=0, client="c",
                        base_weights=np.zeros(size, np.float32))
        fields = partial_fields([f"t{index}"], folder.fold(None, update), "test")
        ids.append((await redis.xadd(f"wnn:{RUN}:stream", _pairs(fields))).decode())
    monkeypatch.setattr(merger_module, "LOG_FLUSH", 64)
    covered: list[str] = []
    publish = merger._publish

    async def noting(*, new_version: bool) -> None:
        await publish(new_version=new_version)
        covered.append(merger.applied)

    merger._publish = noting  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(merger.run(stop))
    try:
        await _until(lambda: _applied_up_to(redis, ids[-1]), "every entry applied")
        assert ids[63] in covered and ids[127] in covered, covered
        assert int((await redis.hgetall(f"wnn:{RUN}:current"))[b"version"]) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await redis.aclose()
        await merger.redis.aclose()


async def test_a_lost_claim_in_a_combined_group_costs_only_its_own_update(
        redis_server, make_config, serve):  # noqa: F811
    import aiohttp
    from support.protocol_client import ProtocolClient

    from webnn.server.app import create_app

    config = make_config(strategy="average", eval_every_merges=10**6)
    # a window long enough for both updates to join one group
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run=RUN,
                                                     combine_ms=3000))
    served = await serve(app)
    redis = connect(redis_server.url)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            clients, tasks, weights = [], [], []
            for name in ("lost", "kept"):
                client = ProtocolClient(http, served.url)
                await client.join(name=name)
                task = (await client.task("train"))["task"]
                weights.append(await client.weights_array(task["urls"]["weights"]))
                await client.batch(task)
                clients.append(client)
                tasks.append(task)
            sent = [asyncio.create_task(c.submit_update(t, w))
                    for c, t, w in zip(clients, tasks, weights, strict=True)]

            async def both_claimed() -> bool:
                states = [await redis.hget(f"wnn:{RUN}:task:{t['id']}", "state") for t in tasks]
                return states == [b"claimed", b"claimed"]

            await _until(both_claimed, "both updates claimed (in the open group)", 30)
            # the first one's claim runs out (another front-end's reclaim, say)
            await redis.hset(f"wnn:{RUN}:task:{tasks[0]['id']}", "state", "expired")
            lost, kept = await asyncio.gather(*sent)
            assert lost.status == 409 and lost.body["error"]["code"] == "lease_expired", lost
            assert kept.status == 503, kept.body  # given back: the same upload again
            again = await clients[1].submit_update(tasks[1], weights[1])
            assert again.status == 200 and again.body["accepted"], again.body
    finally:
        await served.stop()
        await redis.aclose()


async def test_the_merge_log_keeps_its_newest_records(redis_server, make_config):  # noqa: F811
    config = make_config(strategy="average", eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-log", merge_log_keep=3)
    size = merger.layout.size
    redis = connect(redis_server.url)
    rng = np.random.default_rng(0)
    ids = [(await redis.xadd(f"wnn:{RUN}:stream", _pairs(
        _entry(f"t{i}", rng.normal(0, 0.1, size))))).decode() for i in range(5)]
    stop = asyncio.Event()
    task = asyncio.create_task(merger.run(stop))
    try:
        await _until(lambda: _applied_up_to(redis, ids[-1]), "every entry applied")
        assert [r["entry"] for r in _records(redis_server.client())] == ids[-3:]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await redis.aclose()
        await merger.redis.aclose()


async def test_give_back_moves_only_an_open_or_own_claimed_task(redis_server):  # noqa: F811
    from webnn.cluster import scripts

    redis = connect(redis_server.url)
    try:
        give_back = redis.register_script(scripts.GIVE_BACK)
        leases = f"wnn:{RUN}:leases"
        for name, state, owner in (("open", "open", ""), ("mine", "claimed", "fe-1"),
                                   ("theirs", "claimed", "fe-2"), ("done", "done", "fe-1")):
            await redis.hset(f"wnn:{RUN}:task:{name}", mapping={"state": state, "owner": owner,
                                                                 "expires": "99"})
            await redis.zadd(leases, {name: 99})
            moved = await give_back(keys=[f"wnn:{RUN}:task:{name}", leases], args=[name, "fe-1"])
            task = await redis.hgetall(f"wnn:{RUN}:task:{name}")
            if name in ("open", "mine"):
                assert moved == 1 and task[b"state"] == b"open" and task[b"expires"] == b"0"
                assert await redis.zscore(leases, name) == 0
            else:  # another's claim, or a task already in the stream: left as it was
                assert moved == 0 and task[b"state"] == state.encode()
                assert await redis.zscore(leases, name) == 99
    finally:
        await redis.aclose()


async def test_an_embedded_run_with_a_process_label_names_its_merger_apart(
        redis_server, make_config, serve):  # noqa: F811
    from webnn.server.app import create_app

    app = create_app(make_config(), cluster=ClusterSettings(redis_url=redis_server.url, run=RUN,
                                                            process="web-1"))
    served = await serve(app)
    redis = connect(redis_server.url)
    try:
        async def both_named() -> bool:
            return len(await redis.hkeys(f"wnn:{RUN}:processes")) == 2

        await _until(both_named, "the front-end and the merger in the processes table", 30)
        assert sorted(await redis.hkeys(f"wnn:{RUN}:processes")) == [b"web-1", b"web-1-merger"]
    finally:
        await served.stop()
        await redis.aclose()


async def _buffered_entries(redis, merger: Merger, count: int, first: int = 0) -> list[str]:
    """`count` partials of a buffering strategy written as `COMMIT` writes them (the stream
    entry and the run's ``stream_entries`` count); their ids."""
    from webnn.cluster.records import partial_fields

    rng = np.random.default_rng(first)
    size = merger.layout.size
    ids = []
    for index in range(first, first + count):
        update = Update(weights=rng.normal(0, 0.1, size).astype(np.float32), base_version=0,
                        base_steps=0, local_steps=1, staleness=0, client="c",
                        base_weights=np.zeros(size, np.float32))
        fields = partial_fields([f"t{index}"], merger.strategy.fold(None, update), "test")
        ids.append((await redis.xadd(f"wnn:{RUN}:stream", _pairs(fields))).decode())
        await redis.hincrby(f"wnn:{RUN}:stats", "stream_entries", 1)
    return ids


async def test_a_buffering_strategy_under_back_pressure_publishes_what_it_merged(
        redis_server, make_config):  # noqa: F811
    from webnn.cluster.backlog import Backlog, PaceMeter

    # fedbuff whose buffer never fills: no entry changes the weights. The budget holds 40
    # entries at the merger's 0.01 s an entry, more than the 64 a read takes
    config = make_config(strategy="fedbuff", strategy_params={"k": 10**6},
                         eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-buffer", merge_backlog=0.4)
    redis = connect(redis_server.url)
    try:
        await redis.set(f"wnn:{RUN}:merger_lock", merger.owner)  # it leads (no renewal here)
        await merger._load()  # version 0 of a new run
        merger.pace = PaceMeter(seconds=0.64, entries=64)  # c = 0.01 s an entry, as measured
        ids = await _buffered_entries(redis, merger, 64)
        answer = await redis.xread({f"wnn:{RUN}:stream": "0-0"}, count=64)
        await merger._process(answer[0][1])
        # checkpoints cover what was merged each time its work passed a quarter of the budget
        # (10 entries): the front-ends see 4 entries (0.04 s) waiting, neither refused nor
        # deferred, although no idle read came and the weights never changed
        seen = Backlog(budget=0.4)
        await seen.read(redis, RunKeys(RUN))
        assert seen.entries == 4 and not seen.over(0.5), seen.public()
        checkpoint = await redis.hgetall(f"wnn:{RUN}:checkpoint")
        assert checkpoint[b"applied"].decode() == ids[59]
        assert int((await redis.hgetall(f"wnn:{RUN}:current"))[b"version"]) == 0
    finally:
        await redis.aclose()
        await merger.redis.aclose()


async def test_a_run_from_before_the_applied_count_is_seeded_with_what_its_checkpoint_covers(
        redis_server, make_config):  # noqa: F811
    from webnn.cluster.backlog import Backlog

    config = make_config(strategy="fedbuff", strategy_params={"k": 10**6},
                         eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-before")
    redis = connect(redis_server.url)
    again = _merger(config, redis_server.url, "merger-after")
    try:
        await redis.set(f"wnn:{RUN}:merger_lock", merger.owner)  # it leads (no renewal here)
        await merger._load()
        ids = await _buffered_entries(redis, merger, 10)
        answer = await redis.xread({f"wnn:{RUN}:stream": "0-0"}, count=6)
        await merger._process(answer[0][1])
        await merger._publish(new_version=False)  # the checkpoint covers 6 of the 10
        assert (await redis.hget(f"wnn:{RUN}:checkpoint", "applied")).decode() == ids[5]
        await redis.hdel(f"wnn:{RUN}:stats", "stream_applied")  # as a run from before it
        await redis.set(f"wnn:{RUN}:merger_lock", again.owner)  # another merger takes over
        await again._load()
        # 10 entries written, 4 after the checkpoint: 6 applied, 4 waiting
        assert int(await redis.hget(f"wnn:{RUN}:stats", "stream_applied")) == 6
        answer = await redis.xread({f"wnn:{RUN}:stream": again.applied}, count=64)
        await again._process(answer[0][1])
        await again._publish(new_version=False)
        seen = Backlog(budget=1.0)
        await seen.read(redis, RunKeys(RUN))
        assert seen.entries == 0, "every entry applied is counted once"
        assert int(await redis.hget(f"wnn:{RUN}:stats", "stream_applied")) == 10
    finally:
        await redis.aclose()
        await merger.redis.aclose()
        await again.redis.aclose()


async def test_one_failed_lock_renewal_is_retried_and_the_lead_kept(
        redis_server, make_config):  # noqa: F811
    import redis.exceptions

    config = make_config(strategy="average", eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-renew", lock_ms=600)
    redis_client = connect(redis_server.url)
    renew, load = merger.renew_script, merger._load
    calls: list[str] = []
    loads: list[int] = []
    enough = asyncio.Event()

    async def flaky(**kwargs):  # the second renewal meets a Redis error once
        calls.append("call")
        if len(calls) >= 6:
            enough.set()
        if len(calls) == 2:
            raise redis.exceptions.ConnectionError("connection reset (injected once)")
        return await renew(**kwargs)

    async def counted_load() -> None:
        loads.append(1)
        await load()

    merger.renew_script = flaky  # type: ignore[assignment]
    merger._load = counted_load  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(merger.run(stop))
    try:
        await asyncio.wait_for(enough.wait(), 60)
        assert merger.leading and len(loads) == 1, "the lead was kept: no reload, no replay"
        owner = await redis_client.get(f"wnn:{RUN}:merger_lock")
        assert owner is not None and owner.decode() == merger.owner
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await redis_client.aclose()
        await merger.redis.aclose()


async def test_detached_arrays_are_merged_and_deleted_with_their_entries_and_stage_nothing_left(
        redis_server, make_config):  # noqa: F811
    from webnn.cluster.control import LostLock
    from webnn.cluster.records import detach

    config = make_config(strategy="average", eval_every_merges=10**6)
    merger = _merger(config, redis_server.url, "merger-detached")
    deposed = _merger(config, redis_server.url, "merger-deposed")
    redis = connect(redis_server.url)
    try:
        await redis.set(f"wnn:{RUN}:merger_lock", merger.owner)  # it leads (no renewal here)
        await merger._load()
        size = merger.layout.size
        rng = np.random.default_rng(7)
        keys = []
        for index in range(3):  # as COMMIT writes them: the array under its own key
            weights = rng.normal(0, 0.1, size).astype(np.float32)
            key = f"wnn:{RUN}:payload:test:{index}"
            small, data = detach(_entry(f"d{index}", weights), key)
            await redis.set(key, data)
            await redis.xadd(f"wnn:{RUN}:stream", _pairs(small))
            keys.append(key)
        answer = await redis.xread({f"wnn:{RUN}:stream": merger.applied}, count=64)
        await merger._process(answer[0][1])
        assert merger.merges == 3 and merger.model.version == 1  # one version a read batch
        assert await redis.exists(*keys) == 0, "the publication deleted the merged arrays"
        assert await redis.keys(f"wnn:{RUN}:staged:*") == [], "staged copies renamed into place"
        assert await redis.hexists(f"wnn:{RUN}:checkpoint", "state") == 0
        # a merger without the lock stages its copies and the fenced script deletes them
        deposed.model = merger.model
        with pytest.raises(LostLock):
            await deposed._publish(new_version=True)
        assert await redis.keys(f"wnn:{RUN}:staged:*") == []
        assert int((await redis.hgetall(f"wnn:{RUN}:current"))[b"version"]) == 1
        # a standby resumes from the checkpoint and its state key
        await redis.set(f"wnn:{RUN}:merger_lock", deposed.owner)
        deposed.model = type(merger.model)(np.zeros(size, np.float32))
        await deposed._load()
        assert deposed.model.version == 1 and deposed.merges == 3
        np.testing.assert_array_equal(deposed.model.weights, merger.model.weights)
    finally:
        await redis.aclose()
        await merger.redis.aclose()
        await deposed.redis.aclose()
