"""Admission in a scale-out front-end, with a real redis-server: training leases deferred by the
latency bound (the front-end's share of the run's open leases against what it can work off),
status's ``capacity``, ``traffic`` and ``httpRefused`` blocks, and malformed HTTP answered with
protocol JSON by a real ``wnn serve --redis --role frontend`` process (`WebnnRunner`)."""

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
from webnn.cluster.frontend import FRONTEND
from webnn.cluster.settings import ClusterSettings
from webnn.server.app import create_app

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

