"""/metrics in Prometheus text format, and server-sent events at api/v1/events."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.keys import EVENTS


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_report_what_happened(make_config, serve, http):
    served = await serve(create_app(make_config()))
    a, b = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await a.join()
    await b.join()
    await a.evaluate_all(lambda task, tensors: 0.25)
    await b.evaluate_all(lambda task, tensors: 0.25)  # each chunk's second replica (quorum 2)
    rng = np.random.default_rng(0)
    ta = (await a.task("train"))["task"]
    tb = (await b.task("train"))["task"]
    w = await a.weights_array(ta["urls"]["weights"])
    assert (await a.submit_update(ta, w)).status == 200
    assert (await b.submit_update(tb, w)).status == 200  # staleness 1
    assert (await a.train_once(rng)).status == 200
    assert (await b.submit_update((await b.task("train"))["task"], w[:3])).code == "wrong_length"
    answer = await a.get("metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    s = _samples(answer.raw.decode())
    assert s[("webnn_merges_total", ())] == 3
    assert s[("webnn_updates_accepted_total", ())] == 3
    assert s[("webnn_updates_rejected_total", (("reason", "wrong_length"),))] == 1
    assert s[("webnn_active_clients", ())] == 2
    assert s[("webnn_model_version", ())] == 3
    assert s[("webnn_validation_accuracy", ())] == 0.25
    assert s[("webnn_evaluations_total", ())] == 1
    assert s[("webnn_update_staleness_count", ())] == 3
    assert s[("webnn_update_staleness_bucket", (("le", "0.0"),))] == 2
    assert s[("webnn_update_staleness_bucket", (("le", "1.0"),))] == 3
    assert s[("webnn_tasks_issued_total", (("kind", "evaluate"),))] == 6  # 3 chunks x 2
    requests = s[("webnn_request_seconds_count", (("method", "POST"), ("route", "update")))]
    assert requests == 4
    # the same refusals by reason in the status, for the dashboard
    assert (await a.get("api/v1/status")).body["rejected"] == {"wrong_length": 1}


async def test_clients_view_carries_the_server_clock(make_config, serve, http):
    served = await serve(create_app(make_config()))
    client = ProtocolClient(http, served.url)
    await client.join()
    before = time.time()
    body = (await client.get("api/v1/clients")).body
    assert before <= body["now"] <= time.time()
    assert body["clients"][0]["lastSeen"] <= body["now"]


async def _read_events(response, wanted: set[str], limit: int = 50) -> list[tuple[str, dict]]:
    events, event = [], None
    while len(events) < limit:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
            if event in wanted:
                return events
    return events


async def test_events_stream_merges_and_cleans_up(make_config, serve, http):
    app = create_app(make_config(evaluate_initial=False))
    served = await serve(app)
    client = ProtocolClient(http, served.url)
    await client.join()
    bus = app[EVENTS]
    async with http.get(client.url("api/v1/events")) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await _read_events(response, {"state"})
        assert first[0][0] == "state" and first[0][1]["version"] == 0
        assert len(bus) == 1
        assert (await client.train_once(np.random.default_rng(0))).status == 200
        events = await _read_events(response, {"merge"})
        merge = events[-1][1]
        assert merge["version"] == 1 and merge["merges"] == 1 and merge["staleness"] == 0
        assert merge["clientId"] == client.client_id
    # the client went away: its subscription is dropped
    for _ in range(100):
        if len(bus) == 0:
            break
        await asyncio.sleep(0.02)
    assert len(bus) == 0


async def test_shutdown_closes_event_streams(make_config, serve, http):
    app = create_app(make_config(evaluate_initial=False))
    served = await serve(app)
    client = ProtocolClient(http, served.url)
    async with http.get(client.url("api/v1/events")) as response:
        await _read_events(response, {"state"})
        stopping = asyncio.create_task(served.stop())
        rest = await response.content.read()  # returns once the server ends the stream
        await stopping
    assert b"event: merge" not in rest
    assert len(app[EVENTS]) == 0
