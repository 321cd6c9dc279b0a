"""Evaluation that a liar cannot steer: each validation chunk is evaluated by `eval_quorum`
different sessions, accepted when they agree, decided by a majority when they do not (the outlier
is counted as ``evaluation_disagrees``); short of a quorum a chunk is accepted unvalidated after a
bounded wait, and an accuracy target fires only on a validated evaluation. Real server, real HTTP.

The digits validation set (359 examples) in chunks of 120 gives 3 chunks.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.evaluation import ChunkResult, results_agree

CHUNKS = 3


async def _status(client: ProtocolClient) -> dict:
    return (await client.get("api/v1/status")).body


async def _history(client: ProtocolClient) -> list[dict]:
    return (await client.get("api/v1/history")).body["history"]


async def _wait_for(client: ProtocolClient, condition, what: str, limit: float = 30.0) -> dict:
    """Poll status until `condition(status)` holds (a bound, not a sleep: it returns at once)."""
    deadline = time.monotonic() + limit
    while True:
        status = await _status(client)
        if condition(status):
            return status
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
        await asyncio.sleep(0.05)


async def _joined(http, url: str, count: int) -> list[ProtocolClient]:
    clients = [ProtocolClient(http, url) for _ in range(count)]
    for client in clients:
        await client.join()
    return clients


def test_agreement_tolerance():
    base = ChunkResult(loss=0.50, accuracy=0.80, examples=120)
    # two examples of 120 (0.0167) may flip; a loss within 1 % + 1e-4
    assert results_agree(base, ChunkResult(0.504, 0.80 + 2 / 120, 120))
    assert not results_agree(base, ChunkResult(0.50, 0.80 + 3 / 120, 120))
    assert not results_agree(base, ChunkResult(0.52, 0.80, 120))
    # large chunks: at least one point of accuracy
    assert results_agree(ChunkResult(1.0, 0.5, 10_000), ChunkResult(1.0, 0.509, 10_000))
    # null agrees only with null
    assert results_agree(ChunkResult(None, 0.5, 120), ChunkResult(None, 0.5, 120))
    assert not results_agree(ChunkResult(None, 0.5, 120), ChunkResult(0.5, 0.5, 120))


async def test_each_chunk_needs_two_sessions_and_never_goes_twice_to_one(make_config, serve,
                                                                        http):
    served = await serve(create_app(make_config()))
    a, b = await _joined(http, served.url, 2)
    assert await a.evaluate_all() == CHUNKS  # each chunk once: a gets no second replica
    status = await _status(a)
    assert status["evaluating"]["done"] == 0 and status["evaluating"]["quorum"] == 2
    assert await _history(a) == []
    assert await b.evaluate_all() == CHUNKS
    (entry,) = await _history(a)
    assert entry["validated"] is True and entry["valAccuracy"] == pytest.approx(0.5)
    assert (await _status(a))["lastValidatedEvaluation"]["version"] == 0


async def test_a_liar_is_outvoted_and_counted(make_config, serve, http):
    served = await serve(create_app(make_config(target_accuracy=0.9)))
    honest, liar, third = await _joined(http, served.url, 3)
    assert await honest.evaluate_all(lambda task, tensors: 0.4) == CHUNKS
    assert await liar.evaluate_all(lambda task, tensors: 0.99) == CHUNKS
    assert await _history(honest) == []  # every chunk disagrees: each goes to a third session
    assert await third.evaluate_all(lambda task, tensors: 0.4) == CHUNKS
    (entry,) = await _history(honest)
    assert entry["validated"] is True and entry["valAccuracy"] == pytest.approx(0.4)
    status = await _status(honest)
    assert status["state"] == "running"  # the liar's 0.99 did not end the run
    assert status["rejected"].get("evaluation_disagrees") == CHUNKS
    metrics = (await honest.get("metrics")).raw.decode()
    assert 'webnn_updates_rejected_total{reason="evaluation_disagrees"} 3.0' in metrics
    clients = {c["clientId"]: c for c in (await honest.get("api/v1/clients")).body["clients"]}
    assert clients[liar.client_id]["updatesRejected"] == CHUNKS
    assert clients[honest.client_id]["updatesRejected"] == 0


async def test_a_lone_liar_cannot_end_the_run(make_config, serve, http):
    served = await serve(create_app(make_config(target_accuracy=0.9)))
    (liar,) = await _joined(http, served.url, 1)
    # no other live session could evaluate: each chunk is accepted at once, unvalidated
    assert await liar.evaluate_all(lambda task, tensors: 0.99) == CHUNKS
    (entry,) = await _history(liar)
    assert entry["validated"] is False and entry["valAccuracy"] == pytest.approx(0.99)
    status = await _status(liar)
    assert status["state"] == "running" and status["lastValidatedEvaluation"] is None


async def test_a_chunk_short_of_its_quorum_is_accepted_after_the_wait(make_config, serve, http):
    served = await serve(create_app(make_config(eval_quorum_wait=0.3)))
    evaluator, trainer = await _joined(http, served.url, 2)
    assert await evaluator.evaluate_all() == CHUNKS  # the trainer never evaluates
    status = await _wait_for(evaluator, lambda s: s["lastEvaluation"] is not None,
                             "the unvalidated evaluation")
    assert status["lastEvaluation"]["validated"] is False
    assert status["rejected"] == {}


async def test_quorum_one_validates_every_evaluation(make_config, serve, http):
    served = await serve(create_app(make_config(eval_quorum=1, target_accuracy=0.9)))
    (client,) = await _joined(http, served.url, 1)
    assert await client.evaluate_all(lambda task, tensors: 0.95) == CHUNKS
    (entry,) = await _history(client)
    assert entry["validated"] is True
    status = await _status(client)
    assert status["state"] == "ended" and "target_accuracy=0.9" in status["endReason"]


async def test_a_leaving_replica_hands_its_chunk_to_another_session(make_config, serve, http):
    served = await serve(create_app(make_config()))
    a, gone, c = await _joined(http, served.url, 3)
    assert await a.evaluate_all() == CHUNKS
    held = (await gone.task("evaluate"))["task"]
    assert held["chunk"] == 0
    assert (await gone.leave()).status == 200
    assert await c.evaluate_all() == CHUNKS  # chunk 0 came back when `gone` left
    (entry,) = await _history(a)
    assert entry["validated"] is True
