"""Admission in a scale-out front-end, with a real redis-server: training leases deferred by the
latency bound (the front-end's share of the run's open leases against what it can work off),
the merger's back-pressure (bodies refused while the unmerged stream holds more than the
budget of the merger's work, accepted again once it drained), status's ``capacity``,
``traffic`` and ``httpRefused`` blocks, and malformed HTTP answered with protocol JSON by a
real ``wnn serve --redis --role frontend`` process (`WebnnRunner`)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest
from support.e2e import wait_until
from support.protocol_client import ProtocolClient
from support.redis import (  # noqa: F401 (fixture)
    get_json,
    redis_server,
    start_run,
    wait_for_version,
)

from webnn.cluster.admission_share import AdmissionShare, traffic_summary
from webnn.cluster.backlog import Backlog, PaceMeter
from webnn.cluster.connection import connect
from webnn.cluster.embed import MERGER_STOP, MERGER_TASK
from webnn.cluster.frontend import FRONTEND
from webnn.cluster.keys import RunKeys
from webnn.cluster.merger import Merger
from webnn.cluster.settings import ClusterSettings
from webnn.server.app import create_app
from webnn.server.config import load_parts

pytestmark = pytest.mark.slow


def test_a_front_end_takes_its_share_of_the_runs_open_leases():
    share = AdmissionShare(open_run=10, frontends=4)
    assert share.open_here() == 3  # ceil(10 / 4)
    share.leased(None)
    assert share.open_run == 11
    share.leased(40)
    assert share.open_here() == 10


def test_traffic_summary_has_the_single_process_shape():
    stats = {"traffic:updates:f32": 2, "traffic:updateBytes:f32": 300,
             "traffic:weights:f16": 1, "traffic:weightBytes:f16": 50, "tasks_issued": 9}
    assert traffic_summary(stats) == {
        "updates": {"f32": {"count": 2, "bytes": 300, "meanBytes": 150.0}},
        "weights": {"f16": {"count": 1, "bytes": 50, "meanBytes": 50.0}}}


async def _until(predicate, what: str, seconds: float = 60.0) -> None:
    """Until `predicate()` holds, letting this event loop's merger and front-end run."""
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.02)
    assert predicate(), what


def test_the_merger_pace_is_a_mean_weighted_toward_recent_entries():
    pace = PaceMeter()
    assert pace.cost() is None
    pace.note(0.64, 64)  # a full batch: 10 ms an entry
    assert pace.cost() == pytest.approx(0.01)
    for _ in range(20):  # the merger slowed down to 50 ms an entry
        pace.note(3.2, 64)
    assert pace.cost() == pytest.approx(0.05, rel=0.01)


def test_the_backlog_bound_refuses_past_its_budget_and_defers_past_half():
    backlog = Backlog(budget=1.0, entries=2, cost=0.3)
    assert not backlog.over() and backlog.deferring()  # 0.6 s: past half the budget
    backlog.note_written()
    backlog.note_written()  # 4 entries, 1.2 s of the merger's work
    assert backlog.over()
    refusal = backlog.refusal(1)
    assert refusal.status == 503 and refusal.code == "busy"
    assert "4 stream entries" in refusal.message and refusal.headers["Retry-After"] == "1"
    assert backlog.public()["refused"] == {"deferred": 1, "busy": 1}
    assert not Backlog(budget=1.0, entries=10**6).over()  # no pace measured: no bound
    assert not Backlog(budget=0.0, entries=10**6, cost=1.0).over()  # 0: off


async def test_update_bodies_are_refused_while_the_merger_is_behind_and_taken_once_it_caught_up(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(max_open_tasks=8, eval_every_merges=10**6)
    settings = ClusterSettings(redis_url=redis_server.url, run="backlog", merge_backlog=1.0)
    app = create_app(config, cluster=settings)
    served = await serve(app)
    frontend = app[FRONTEND]
    stats, pace = "wnn:backlog:stats", "wnn:backlog:merger_pace"
    check = redis_server.client()
    rng = np.random.default_rng(0)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="backlog")
            answer = await client.train_once(rng)
            assert answer is not None and answer.status == 200, answer
            # the merger applied it and shared its pace; then it stops (a merger that fell
            # behind: the stream grows while it is away)
            await _until(lambda: check.hget(pace, "cost") is not None
                         and check.hget(stats, "stream_applied") == b"1",
                         "the merger's pace and its first applied entry")
            app[MERGER_STOP].set()
            await app[MERGER_TASK]
            check.hset(pace, "cost", "0.4")  # as a slow merger measured it: 0.4 s an entry

            async def read(entries: int, cost: float) -> bool:
                await frontend.backlog.read(frontend.redis, frontend.keys)
                return frontend.backlog.entries == entries and frontend.backlog.cost == cost

            assert await read(0, 0.4)
            tasks = [(await client.task("train"))["task"] for _ in range(4)]
            assert all(task is not None for task in tasks)
            base = await client.weights_array(tasks[0]["urls"]["weights"])
            for task in tasks[:3]:  # 0, 0.4 and 0.8 s of the merger's work: within 1 s
                sent = await client.submit_update(task, base + 0.01)
                assert sent.status == 200 and sent.body["durable"], sent.body
            refused = await client.submit_update(tasks[3], base + 0.01)  # 1.2 s: over
            assert refused.status == 503 and refused.code == "busy", refused.body
            assert "3 stream entries wait for the merger" in refused.body["error"]["message"]
            assert int(refused.headers["Retry-After"]) >= 1
            deferred = await client.task("train")  # past half the budget: no new lease
            assert deferred["task"] is None and deferred["retryAfter"] > 0
            capacity = (await client.get("api/v1/status")).body["capacity"]
            assert capacity["refused"] == {"busy": 1, "deferred": 1}
            assert capacity["mergeBacklog"]["entries"] == 3
            assert capacity["mergeBacklog"]["budget"] == 1.0
            assert capacity["mergeBacklog"]["refused"] == {"busy": 1, "deferred": 1}
            assert await read(3, 0.4)  # the run's count agrees with this front-end's

            # a merger again (a standby taking over): it works the stream off, and the same
            # upload is taken
            merger = Merger(config, load_parts(config), settings, connect(redis_server.url),
                            RunKeys("backlog"), "merger-again")
            stop = asyncio.Event()
            running = asyncio.create_task(merger.run(stop))
            try:
                await _until(lambda: check.hget(stats, "stream_applied") == b"4",
                             "the new merger to work the backlog off")
                await frontend.backlog.read(frontend.redis, frontend.keys)
                assert frontend.backlog.entries == 0 and not frontend.backlog.over()
                again = await client.submit_update(tasks[3], base + 0.01)
                assert again.status == 200 and again.body["accepted"], again.body
            finally:
                stop.set()
                await running
                await merger.redis.aclose()
    finally:
        await served.stop()


async def test_training_leases_past_the_latency_bound_are_deferred(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(max_open_tasks=10, update_latency=0.5)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="defer"))
    served = await serve(app)
    frontend = app[FRONTEND]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="defer")
            # the cost as a loaded front-end measured it: 2 s of CPU per update, so it can work
            # off no more than the minimum of 4 open leases (sampling stopped: the figure holds)
            frontend._sampler.cancel()
            meter = frontend.admission.meter
            meter.cpu_rate, meter.update_rate = 20.0, 10.0
            assert frontend.admission.train_lease_limit() == 4
            for _ in range(4):
                assert (await client.task("train"))["task"] is not None
            deferred = await client.task("train")
            assert deferred["task"] is None and deferred["retryAfter"] >= config.poll_seconds
            status = (await client.get("api/v1/status")).body
            capacity = status["capacity"]
            assert capacity["process"] == frontend.label
            assert capacity["trainLeases"] == 4 and capacity["trainLeaseLimit"] == 4
            assert capacity["refused"] == {"deferred": 1}
            assert capacity["updateCost"] == 2.0 and capacity["updateLatency"] == 0.5
            meter.cpu_rate = 0.0  # idle again: the bound no longer applies
            assert (await client.task("train"))["task"] is not None
    finally:
        await served.stop()


async def _raw(port: int, request: bytes) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_a_front_end_process_answers_bad_http_with_json_and_counts_traffic(
        redis_server):  # noqa: F811
    mergers, fronts = start_run(redis_server.url, "--strategy", "average", frontends=1)
    try:
        wait_for_version(redis_server.client(), "digits_mlp")
        front = fronts[0]
        status, answer = await _raw(front.port, b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status == 400 and answer["protocol"] == 1
        assert answer["error"]["code"] == "bad_http"
        assert get_json(front.url, "api/v1/status")["httpRefused"] == {"bad_method": 1}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, front.url)
            await client.join(name="traffic")
            answer = None
            while answer is None:
                answer = await client.train_once(np.random.default_rng(0))
            assert answer.status == 200, answer.body

        def counted() -> bool:  # the front-end adds its counts to the run's each second
            traffic = get_json(front.url, "api/v1/status")["traffic"]
            return traffic["updates"].get("f32", {}).get("count") == 1

        wait_until(counted, 30, "the update in status.traffic", interval=0.1)
        status_now = get_json(front.url, "api/v1/status")
        assert status_now["traffic"]["weights"]["f32"]["count"] >= 1
        assert status_now["capacity"]["process"].startswith("frontend-")
    finally:
        for process in (*fronts, *mergers):
            process.stop()

