"""A load step over real HTTP: more uploads than the server has room for are refused with 503 and
Retry-After before their bodies are read (a large body's connection is closed, nothing is read
and thrown away), training leases are deferred meanwhile; once the load drops the server
recovers: the refused updates are merged on their retry, 503s stop, and every bounded figure
(bodies in flight, merge queue, training leases) is back to its idle value. Waits are on observed
state, never on fixed sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
from support.protocol_client import FRAME_TYPE, ProtocolClient, encode_frame

from webnn.server.app import create_app
from webnn.server.ingest import LINGER_BYTES
from webnn.server.keys import COORDINATOR

CLIENTS = 8


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _frame(task: dict, weights: np.ndarray, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    trained = weights + rng.normal(0, 0.01, weights.shape).astype(np.float32)
    return encode_frame({"baseVersion": task["version"], "steps": task["localSteps"],
                         "loss": 1.0, "accuracy": 0.5, "timings": {}}, {"weights": trained})


async def test_beyond_capacity_refuses_cheaply_then_recovers(make_config, serve, http):
    # room for one update body: every other upload in flight is beyond capacity
    config = make_config(update_budget=1, merge_queue=1, evaluate_initial=False,
                         joins_per_minute=0, max_invalid_updates=1)
    served = await serve(create_app(config))
    clients = []
    for _ in range(CLIENTS + 2):
        client = ProtocolClient(http, served.url)
        await client.join()
        clients.append(client)
    holder, watcher, loaders = clients[0], clients[1], clients[2:]

    async def status() -> dict:
        return (await watcher.get("api/v1/status")).body

    tasks = [(await c.task("train"))["task"] for c in [holder, *loaders]]
    assert all(t is not None for t in tasks)
    weights = await holder.weights_array(tasks[0]["urls"]["weights"])

    # the load: one upload that trickles in holds the body budget ...
    held = _frame(tasks[0], weights, 0)
    go_on = asyncio.Event()

    async def trickle(frame: bytes, until: asyncio.Event) -> AsyncIterator[bytes]:
        yield frame[:64]
        await until.wait()
        yield frame[64:]

    def post(client: ProtocolClient, task: dict, body: object, length: int):
        return http.post(client.url(task["urls"]["submit"]), data=body,
                         headers={"X-WebNN-Session": client.token, "Content-Type": FRAME_TYPE,
                                  "Content-Length": str(length)})

    upload = asyncio.create_task(post(holder, tasks[0], trickle(held, go_on), len(held)))

    async def budget_full() -> bool:
        return (await status())["capacity"]["bodyBytes"] > 0

    await _until(budget_full, "the trickling upload to be admitted")

    # ... and every other upload is refused at once, before its body is read: these bodies never
    # finish sending (their rest waits on an event set only at the end), yet the 503 arrives.
    # A body declared larger than LINGER_BYTES is cut off (the connection closes); a smaller one
    # is read and dropped (closing with unread bytes could reset the answer away)
    never = asyncio.Event()
    frames = [_frame(task, weights, i + 1) for i, task in enumerate(tasks[1:])]
    large = LINGER_BYTES + 1
    assert large <= served.app[COORDINATOR].ingest.limit
    declared = [large if i % 2 else len(f) for i, f in enumerate(frames)]
    refusals = await asyncio.gather(*(
        post(c, t, trickle(f, never), n)
        for c, t, f, n in zip(loaders, tasks[1:], frames, declared, strict=True)))
    for refused, length in zip(refusals, declared, strict=True):
        assert refused.status == 503, await refused.text()
        assert int(refused.headers["Retry-After"]) >= 1
        closed = refused.headers.get("Connection", "").lower() == "close"
        assert closed == (length > LINGER_BYTES), (length, refused.headers)
        assert (await refused.json())["error"]["code"] == "busy"
        refused.close()
    # no training is leased while the budget is full: clients are told to come back later
    deferred = await watcher.task("train")
    assert deferred["task"] is None and deferred["retryAfter"] >= config.poll_seconds
    during = await status()
    assert during["capacity"]["refused"]["busy"] == len(loaders)
    assert during["capacity"]["bodiesInFlight"] == 1 and during["merges"] == 0
    assert "busy" not in during["rejected"]            # back-pressure is not the client's fault

    # the load drops: the held upload completes and is merged
    go_on.set()
    answer = await upload
    assert answer.status == 200 and (await answer.json())["accepted"]
    answer.release()

    async def drained() -> bool:
        capacity = (await status())["capacity"]
        return capacity["bodyBytes"] == 0 and capacity["mergeQueue"] == 0

    await _until(drained, "the body budget and the merge queue to drain")
    # the refused clients retry (their tasks stayed open) and are merged; 503s have stopped
    for client, task, frame in zip(loaders, tasks[1:], frames, strict=True):
        retried = await client.request("POST", task["urls"]["submit"], data=frame,
                                       content_type=FRAME_TYPE)
        assert retried.status == 200 and retried.body["accepted"], retried.body
    rng = np.random.default_rng(7)
    for client in clients:                             # a normal round: no refusal at all
        done = await client.train_once(rng)
        assert done is not None and done.status == 200, done and done.body
    after = await status()
    assert after["merges"] == 1 + len(loaders) + len(clients)
    assert after["capacity"]["refused"] == during["capacity"]["refused"]
    capacity = after["capacity"]
    assert capacity["bodyBytes"] == 0 and capacity["bodiesInFlight"] == 0
    assert capacity["mergeQueue"] == 0 and capacity["trainLeases"] == 0
    assert capacity["snapshotBytes"] <= capacity["snapshotBudget"]
    assert after["rejected"] == {}
    never.set()
