"""Strict JSON out: figures a client reports are bounded at the door, and whatever sums the server
derives, every answer (status, clients, history, events) stays JSON a browser can parse."""

from __future__ import annotations

import asyncio

import pytest
from support.hostile import strict_loads
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.keys import COORDINATOR


@pytest.fixture
async def served(make_config, serve, http):
    served = await serve(create_app(make_config(max_invalid_updates=100)))
    client = ProtocolClient(http, served.url)
    await client.join()
    return served, client


async def _strict(client: ProtocolClient, path: str) -> dict:
    answer = await client.get(path)
    assert answer.status == 200
    return strict_loads(answer.raw)


async def _all_strict(client: ProtocolClient) -> tuple[dict, dict, dict]:
    return (await _strict(client, "api/v1/status"), await _strict(client, "api/v1/clients"),
            await _strict(client, "api/v1/history"))


@pytest.mark.parametrize(("loss", "accuracy", "field"), [
    (1e31, 0.5, "$.loss"), (1e300, 0.5, "$.loss"), (-0.5, 0.5, "$.loss"),
    (0.5, 1.5, "$.accuracy"), (0.5, -0.01, "$.accuracy"),
])
async def test_evaluation_figures_out_of_bounds_are_refused_and_counted(served, loss, accuracy,
                                                                        field):
    _, client = served
    task = (await client.task("evaluate"))["task"]
    answer = await client.submit_evaluation(task, loss, accuracy, task["examples"])
    assert answer.status == 400 and answer.code == "bad_field"
    assert answer.body["error"]["message"].startswith(field)
    status, _, history = await _all_strict(client)
    assert status["rejected"] == {"bad_field": 1}
    assert history["history"] == []


async def test_largest_allowed_losses_keep_history_finite(served):
    """Every chunk reports the bound (1e30): the example-weighted mean cannot overflow."""
    _, client = served
    done = 0
    while (task := (await client.task("evaluate"))["task"]) is not None:
        answer = await client.submit_evaluation(task, 1e30, 1.0, task["examples"])
        assert answer.status == 200, answer.body
        done += 1
    assert done >= 2
    _, _, history = await _all_strict(client)
    assert history["history"][-1]["valLoss"] == pytest.approx(1e30)


async def test_huge_timings_never_reach_an_answer_as_infinity(served):
    _, client = served
    await client.evaluate_all()
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    answer = await client.submit_update(task, weights, loss=1e308,
                                        extra={"timings": {"compute": 1e308, "fetch": 1e308}})
    assert answer.status in (200, 400), answer.body  # 400: timings are bounded at the door
    if answer.status == 400:
        assert answer.code == "bad_field" and "timings" in answer.body["error"]["message"]
    await _all_strict(client)


async def test_a_non_finite_derived_figure_is_served_as_null(served):
    """The last line of defence (wire.py): a sum that overflowed anyway is null, not Infinity."""
    app, client = served[0].app, served[1]
    session = next(iter(app[COORDINATOR].sessions))
    session.compute_seconds = float("inf")
    session.last_loss = float("nan")
    _, clients, _ = await _all_strict(client)
    row = clients["clients"][0]
    assert row["computeSeconds"] is None and row["lastLoss"] is None


async def test_events_carry_strict_json(served, http):
    served_app, client = served
    async with http.get(client.url("api/v1/events")) as stream:
        assert stream.status == 200
        line = b""
        while not line.startswith(b"data: "):
            line = await asyncio.wait_for(stream.content.readline(), 30)
        data = strict_loads(line[len(b"data: "):])
        assert data["protocol"] == 1 and data["state"] in ("running", "paused", "ended")

