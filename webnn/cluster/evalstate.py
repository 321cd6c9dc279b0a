"""The evaluation in progress as it is kept in Redis: `webnn.server.evaluation`'s records
(`Evaluation`, its `ChunkState`s, `Replica`s, `Party`s and `ChunkResult`s) to and from JSON,
unchanged, so the single process's pure logic (`Evaluation.chunk_for`,
`EvaluationSchedule.record`, `Evaluation.settle`, `EvaluationSchedule.due`/`start`/`finish`)
decides everything in cluster mode too.

Every change is a read, the pure logic on the decoded records, and a guarded write
(`scripts.GUARDED`: written only if the evaluation's revision is still the one read), so
front-ends (leases, results) and the merger (start, settle, give back, complete) never lose
each other's changes; a writer that lost the race reads again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webnn.server.evaluation import (
    ChunkResult,
    ChunkState,
    ClassCounts,
    Evaluation,
    EvaluationSchedule,
    Party,
    Replica,
)


def _result_out(result: ChunkResult | None) -> dict | None:
    if result is None:
        return None
    classes = None if result.classes is None else [list(result.classes.correct),
                                                   list(result.classes.count)]
    return {"loss": result.loss, "accuracy": result.accuracy, "examples": result.examples,
            "classes": classes}


def _result_in(data: dict | None) -> ChunkResult | None:
    if data is None:
        return None
    classes = data.get("classes")
    return ChunkResult(data["loss"], data["accuracy"], int(data["examples"]),
                       None if classes is None else ClassCounts(tuple(classes[0]),
                                                                tuple(classes[1])))


def _party_out(party: Party) -> list:
    return [party.address, party.volunteer]


def _party_in(data: list) -> Party:
    return Party(data[0], data[1])


def evaluation_to_json(evaluation: Evaluation) -> str:
    """An evaluation in progress as JSON (session tokens stay inside Redis)."""
    return json.dumps({
        "id": evaluation.id, "version": evaluation.version, "steps": evaluation.steps,
        "merges": evaluation.merges, "started": evaluation.started,
        "chunkExamples": evaluation.chunk_examples, "quorum": evaluation.quorum,
        "results": {str(k): _result_out(v) for k, v in evaluation.results.items()},
        "chunks": [{"examples": c.examples, "wanted": c.wanted, "since": c.since,
                    "validated": c.validated, "accepted": _result_out(c.accepted),
                    "leased": {s: _party_out(p) for s, p in c.leased.items()},
                    "replicas": [[r.session, _result_out(r.result), _party_out(r.party)]
                                 for r in c.replicas]}
                   for c in evaluation.chunks]})


def evaluation_from_json(text: str | bytes) -> Evaluation:
    data = json.loads(text)
    chunks = []
    for c in data["chunks"]:
        replicas = []
        for session, result, party in c["replicas"]:
            found = _result_in(result)
            assert found is not None
            replicas.append(Replica(session, found, _party_in(party)))
        chunks.append(ChunkState(examples=int(c["examples"]), wanted=int(c["wanted"]),
                                 replicas=replicas,
                                 leased={s: _party_in(p) for s, p in c["leased"].items()},
                                 since=c["since"], accepted=_result_in(c["accepted"]),
                                 validated=bool(c["validated"])))
    results = {}
    for key, value in data["results"].items():
        found = _result_in(value)
        assert found is not None
        results[int(key)] = found
    return Evaluation(id=int(data["id"]), version=int(data["version"]),
                      steps=int(data["steps"]), merges=int(data["merges"]),
                      started=float(data["started"]),
                      chunk_examples=[int(n) for n in data["chunkExamples"]],
                      quorum=int(data["quorum"]), results=results, chunks=chunks)


@dataclass
class Stored:
    """The evaluation in progress as read from Redis: its revision ('' when there is none)."""

    rev: str
    evaluation: Evaluation | None


def stored_from(fields: dict) -> Stored:
    """`Stored` from the evaluation hash's fields (HGETALL)."""
    if not fields:
        return Stored("", None)
    get = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    rev = get["rev"].decode() if isinstance(get["rev"], bytes) else str(get["rev"])
    return Stored(rev, evaluation_from_json(get["json"]))


def schedule_for(config: Any, training: Any, chunk_examples: list[int],
                 state: dict | None, current: Evaluation | None) -> EvaluationSchedule:
    """The run's `EvaluationSchedule` (the same settings as the single process's), loaded with
    its checkpointed counters and the evaluation in progress."""
    schedule = EvaluationSchedule(
        config.eval_every_merges or training.validation_every_merges,
        config.eval_every_seconds or training.validation_every_seconds,
        chunk_examples, quorum=config.eval_quorum, quorum_wait=config.eval_quorum_wait)
    schedule.load(state or {})
    schedule.current = current
    return schedule
