"""Worst-class accuracy on the server: evaluation answers may carry per-class counts
``{"classes": {"correct": [...], "count": [...]}}``; the server checks them at the door (errors name
the JSON path), sums them over chunks, and each history entry carries ``classAccuracy`` and
``worstClassAccuracy``. Replicas under a quorum must agree on them. Real server, real HTTP.

The digits validation set (359 examples, 10 classes) in chunks of 120 gives 3 chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.evaluation import ChunkResult, ClassCounts, class_count, results_agree

CLASSES = 10

Counts = Callable[[np.ndarray], dict]


def labels_of(tensors: dict[str, np.ndarray]) -> np.ndarray:
    y = tensors["y"]
    return (y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)).astype(int)


def right_but_class(wrong: int) -> Counts:
    """Counts of a model right on every example except those labelled `wrong`."""
    def counts(labels: np.ndarray) -> dict:
        count = np.bincount(labels, minlength=CLASSES)
        correct = count.copy()
        correct[wrong] = 0
        return {"correct": correct.tolist(), "count": count.tolist()}
    return counts


def same_mean_other_classes(wrong: int) -> Counts:
    """Counts with the same total correct as `right_but_class(wrong)`, but its errors spread over
    the other classes (one or two each) and class `wrong` all right: the mean agrees, the
    per-class counts do not."""
    def counts(labels: np.ndarray) -> dict:
        count = np.bincount(labels, minlength=CLASSES)
        correct = count.copy()
        others = [k for k in range(CLASSES) if k != wrong]
        for i in range(int(count[wrong])):
            correct[others[i % len(others)]] -= 1
        assert (correct >= 0).all()
        return {"correct": correct.tolist(), "count": count.tolist()}
    return counts


async def evaluate_chunks(client: ProtocolClient, counts: Counts | None) -> list[dict]:
    """Evaluate every chunk on offer; each answer's accuracy is what its counts say."""
    answers = []
    while True:
        task = (await client.task("evaluate"))["task"]
        if task is None:
            return answers
        _, tensors = await client.batch(task)
        labels = labels_of(tensors)
        body: dict = {"loss": 1.0, "accuracy": 0.5, "examples": int(labels.size)}
        if counts is not None:
            body["classes"] = counts(labels)
            body["accuracy"] = sum(body["classes"]["correct"]) / labels.size
        answer = await client.request("POST", task["urls"]["submit"], json_body=body)
        assert answer.status == 200, answer.body
        answers.append(body)


async def _joined(http, url: str, count: int) -> list[ProtocolClient]:
    clients = [ProtocolClient(http, url) for _ in range(count)]
    for client in clients:
        await client.join()
    return clients


def test_class_count_and_agreement_rule():
    assert class_count("sparseCategoricalCrossentropy", (None, 10)) == 10
    assert class_count("categoricalCrossentropy", (None, 3)) == 3
    assert class_count("meanSquaredError", (None, 10)) is None
    assert class_count("sparseCategoricalCrossentropy", (None, 5, 10)) is None
    a = ClassCounts((50, 200), (60, 300))
    # counts must be equal; correct within max(2, 1 % of the class's count)
    assert a.agrees(ClassCounts((52, 203), (60, 300)))
    assert not a.agrees(ClassCounts((53, 200), (60, 300)))
    assert not a.agrees(ClassCounts((50, 204), (60, 300)))
    assert not a.agrees(ClassCounts((50, 200), (61, 299)))
    base = ChunkResult(0.5, 250 / 360, 360, a)
    assert results_agree(base, ChunkResult(0.5, 250 / 360, 360, None))  # an old client
    assert not results_agree(base, ChunkResult(0.5, 250 / 360, 360,
                                               ClassCounts((40, 210), (60, 300))))
    # worked example: classes 0..2 over two chunks, class 2 never seen
    total = ClassCounts((3, 1, 0), (4, 2, 0)) + ClassCounts((5, 0, 0), (6, 2, 0))
    assert total == ClassCounts((8, 1, 0), (10, 4, 0))
    assert total.accuracy() == [0.8, 0.25, None] and total.worst() == 0.25


async def test_counts_are_combined_into_the_history(make_config, serve, http):
    served = await serve(create_app(make_config(eval_quorum=1)))
    (client,) = await _joined(http, served.url, 1)
    answers = await evaluate_chunks(client, right_but_class(3))
    assert len(answers) == 3
    (entry,) = (await client.get("api/v1/history")).body["history"]
    total = np.sum([a["classes"]["count"] for a in answers], axis=0)
    assert entry["classAccuracy"] == [0.0 if k == 3 else 1.0 for k in range(CLASSES)]
    assert entry["worstClassAccuracy"] == 0.0
    # the mean is the example-weighted mean of the chunks' accuracies, as before
    assert entry["valAccuracy"] == pytest.approx(1 - total[3] / total.sum())
    status = (await client.get("api/v1/status")).body
    assert status["lastEvaluation"]["worstClassAccuracy"] == 0.0
    assert status["lastEvaluation"]["classAccuracy"] == entry["classAccuracy"]


async def test_old_clients_give_null_class_figures(make_config, serve, http):
    served = await serve(create_app(make_config(eval_quorum=1)))
    (client,) = await _joined(http, served.url, 1)
    assert await client.evaluate_all() == 3
    (entry,) = (await client.get("api/v1/history")).body["history"]
    assert entry["classAccuracy"] is None and entry["worstClassAccuracy"] is None
    assert entry["valAccuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize(("classes", "path"), [
    ([], "$.classes"),
    ({"correct": [0] * CLASSES}, "$.classes.count"),
    ({"correct": [0] * CLASSES, "count": [1] * 9}, "$.classes.count"),
    ({"correct": [0] * CLASSES, "count": [12] * 3 + [1.5] + [12] * 6}, "$.classes.count[3]"),
    ({"correct": [0] * CLASSES, "count": [12] * 3 + [-1] + [12] * 6}, "$.classes.count[3]"),
    ({"correct": [0] * 4 + [13] + [0] * 5, "count": [12] * CLASSES}, "$.classes.correct[4]"),
    ({"correct": [0] * CLASSES, "count": [11] * CLASSES}, "$.classes.count"),  # sums to 110
    ({"correct": [0] * CLASSES, "count": [12] * CLASSES, "wrong": 1}, "$.classes.wrong"),
])
async def test_bad_counts_are_refused_naming_the_path(make_config, serve, http, classes, path):
    served = await serve(create_app(make_config(eval_quorum=1)))
    (client,) = await _joined(http, served.url, 1)
    task = (await client.task("evaluate"))["task"]
    _, tensors = await client.batch(task)
    assert labels_of(tensors).size == 120
    answer = await client.request("POST", task["urls"]["submit"], json_body={
        "loss": 1.0, "accuracy": 0.5, "examples": 120, "classes": classes})
    assert answer.status == 400 and answer.code == "bad_field", answer.body
    assert answer.body["error"]["message"].startswith(path + ":"), answer.body
    status = (await client.get("api/v1/status")).body
    assert status["rejected"] == {"bad_field": 1}
    assert status["evaluating"]["done"] == 0  # nothing changed


async def test_replicas_must_agree_on_class_counts(make_config, serve, http):
    served = await serve(create_app(make_config()))  # quorum 2
    honest, liar, third = await _joined(http, served.url, 3)
    await evaluate_chunks(honest, right_but_class(3))
    # the same mean accuracy, the errors on other classes: only the class counts disagree
    await evaluate_chunks(liar, same_mean_other_classes(3))
    assert (await honest.get("api/v1/history")).body["history"] == []
    await evaluate_chunks(third, right_but_class(3))
    (entry,) = (await honest.get("api/v1/history")).body["history"]
    assert entry["validated"] is True
    assert entry["classAccuracy"][3] == 0.0 and entry["worstClassAccuracy"] == 0.0
    status = (await honest.get("api/v1/status")).body
    assert status["rejected"].get("evaluation_disagrees") == 3
