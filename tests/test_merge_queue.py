"""Queued updates merged together: `MergeQueue`'s order and batches, and a real server whose
queued updates merge in one pass with the weights, versions and staleness of merging them one by
one (`Coordinator._merge_batch`, `MergeWorker.run_many`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server import coordinator as coordinator_module
from webnn.server.app import COORDINATOR, create_app
from webnn.server.merge_queue import Entry, MergeQueue


async def _until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait (on the loop, polling) until `condition()` holds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.005)


def _queue(lock: asyncio.Lock, most: int, batches: list[list[str]],
           fail: set[str] = frozenset()) -> MergeQueue[str]:
    async def run(entries: list[Entry[str]]) -> None:
        batches.append([entry.item for entry in entries])
        for entry in entries:
            if entry.item in fail:
                entry.done.set_exception(ValueError(f"refused {entry.item}"))
            else:
                entry.done.set_result(entry.item.upper())

    return MergeQueue(lock, run, lambda: most, lambda waiting: None)


async def test_queued_items_are_taken_in_order_up_to_the_batch_size() -> None:
    lock, batches = asyncio.Lock(), []
    queue = _queue(lock, 3, batches, fail={"d"})
    await lock.acquire()  # the merge lock busy: everything queues
    calls = [asyncio.create_task(queue.merge(item)) for item in "abcde"]
    await _until(lambda: queue.waiting == 5)
    lock.release()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert batches == [["a", "b", "c"], ["d", "e"]]
    assert results[:3] == ["A", "B", "C"] and results[4] == "E"
    assert isinstance(results[3], ValueError)  # one entry's error is its own
    assert queue.waiting == 0 and await queue.merge("f") == "F"  # a new drainer starts


async def test_a_caller_gone_before_its_turn_never_merges() -> None:
    lock, batches = asyncio.Lock(), []
    queue = _queue(lock, 8, batches)
    await lock.acquire()
    kept = asyncio.create_task(queue.merge("a"))
    gone = asyncio.create_task(queue.merge("b"))
    await _until(lambda: queue.waiting == 2)
    gone.cancel()
    await _until(lambda: queue.waiting == 1)
    lock.release()
    assert await kept == "A" and batches == [["a"]]
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_failing_batch_fails_its_entries_and_the_queue_goes_on() -> None:
    lock, seen = asyncio.Lock(), []

    async def run(entries: list[Entry[str]]) -> None:
        seen.append([entry.item for entry in entries])
        if entries[0].item == "boom":
            raise RuntimeError("a bug")
        for entry in entries:
            entry.done.set_result(entry.item)

    queue = MergeQueue(lock, run, lambda: 1, lambda waiting: None)
    await lock.acquire()
    calls = [asyncio.create_task(queue.merge(item)) for item in ("boom", "fine")]
    await _until(lambda: queue.waiting == 2)
    lock.release()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1] == "fine"


# --- a real server ---------------------------------------------------------------------------


@pytest.fixture
async def queued(make_config, serve, monkeypatch):
    """digits_mlp served with every merge in the worker thread (the queue's path), screening at
    its default."""
    monkeypatch.setattr(coordinator_module, "INLINE_MERGE_MAX_VALUES", 0)
    return await serve(create_app(make_config(evaluate_initial=False)))


async def _leased(http, url: str, count: int) -> list[tuple[ProtocolClient, dict, np.ndarray]]:
    leased = []
    for _ in range(count):
        client = ProtocolClient(http, url)
        await client.join()
        task = (await client.task("train"))["task"]
        leased.append((client, task, await client.weights_array(task["urls"]["weights"])))
    return leased


async def _submit_queued(coordinator, submits) -> list:
    """Submit with the merge lock held until all of them wait in the queue, then let go."""
    await coordinator.lock.acquire()
    try:
        calls = [asyncio.create_task(submit) for submit in submits]
        await _until(lambda: coordinator.merge_queue.waiting == len(calls))
    finally:
        coordinator.lock.release()
    return await asyncio.gather(*calls)


async def test_updates_queued_together_merge_in_one_pass_as_one_by_one(queued, http):
    coordinator = queued.app[COORDINATOR]
    rng = np.random.default_rng(0)
    leased = await _leased(http, queued.url, 4)
    initial = leased[0][2]
    updates = [weights + rng.normal(0, 0.01, weights.shape).astype(np.float32)
               for _, _, weights in leased]
    answers = await _submit_queued(coordinator, [
        client.submit_update(task, update)
        for (client, task, _), update in zip(leased, updates, strict=True)])
    assert all(answer.status == 200 and answer.body["merged"] for answer in answers)
    status = (await leased[0][0].get("api/v1/status")).body
    assert status["capacity"]["mergesTogether"] == 4 and status["merges"] == 4
    # each update's staleness is its place in the batch: every task was leased at version 0
    order = sorted(range(4), key=lambda i: answers[i].body["staleness"])
    assert [answers[i].body["staleness"] for i in order] == [0, 1, 2, 3]
    expected = initial.copy()
    for i in order:  # W = (W + W_p) / 2, update by update, in float32
        np.add(expected, updates[i], out=expected)
        np.multiply(expected, np.float32(0.5), out=expected)
    merged = await leased[0][0].weights_array()
    assert coordinator.model.version == 4 and merged.tobytes() == expected.tobytes()


async def test_a_queued_batch_with_an_update_to_clip_merges_one_by_one(queued, http):
    coordinator = queued.app[COORDINATOR]
    rng = np.random.default_rng(1)
    for client, task, weights in await _leased(http, queued.url, 10):  # the screen's history
        trained = weights + rng.normal(0, 0.01, weights.shape).astype(np.float32)
        assert (await client.submit_update(task, trained)).status == 200
    leased = await _leased(http, queued.url, 3)
    updates = [weights + rng.normal(0, 0.01, weights.shape).astype(np.float32)
               for _, _, weights in leased]
    updates[1] = updates[1] + np.float32(5.0)  # far above 10x the median step: clipped
    answers = await _submit_queued(coordinator, [
        client.submit_update(task, update)
        for (client, task, _), update in zip(leased, updates, strict=True)])
    assert all(answer.status == 200 for answer in answers)
    assert [answer.body["clipped"] for answer in answers] == [False, True, False]
    status = (await leased[0][0].get("api/v1/status")).body
    assert status["capacity"]["mergesTogether"] == 0 and coordinator.model.version == 13


async def test_stopping_waits_for_what_is_queued() -> None:
    lock, batches = asyncio.Lock(), []
    queue = _queue(lock, 2, batches)
    await lock.acquire()
    calls = [asyncio.create_task(queue.merge(item)) for item in "abc"]
    await _until(lambda: queue.waiting == 3)
    lock.release()
    await queue.drained()
    assert batches == [["a", "b"], ["c"]] and queue.waiting == 0
    assert await asyncio.gather(*calls) == ["A", "B", "C"]
    await queue.drained()  # nothing queued: returns at once


async def test_a_batch_holds_a_bounded_share_of_model_sized_buffers(queued, monkeypatch):
    coordinator = queued.app[COORDINATOR]
    nbytes = coordinator.layout.nbytes
    monkeypatch.setattr(coordinator_module, "MERGE_BATCH_BYTES", 3 * nbytes)
    assert coordinator._batch_room() == 3  # compressed updates decode into a buffer each
    monkeypatch.setattr(coordinator_module, "MERGE_BATCH_BYTES", nbytes - 1)
    assert coordinator._batch_room() == 1  # a model too large to batch: one at a time

