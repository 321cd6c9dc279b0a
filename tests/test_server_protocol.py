"""The whole protocol over real HTTP on loopback: join, tasks, weights (304), batches, updates,
evaluations, leave, status, history, clients."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app


@pytest.fixture
async def running(make_config, serve):
    app = create_app(make_config())
    return await serve(app)


async def test_join_and_model_description(running, http, digits_spec):
    client = ProtocolClient(http, running.url)
    joined = await client.join(kind="node", name="n1")
    assert joined["protocol"] == 1 and joined["clientId"] == "c-1" and joined["token"]
    model = joined["model"]
    layout = digits_spec.compiled.layout
    assert model["name"] == digits_spec.name
    assert model["topology"] == digits_spec.compiled.topology
    assert model["weightsManifest"] == layout.manifest()
    assert model["version"] == 0 and model["steps"] == 0
    assert model["training"]["batchSize"] == digits_spec.training.batch_size
    assert model["urls"]["weights"] == "/api/v1/weights"
    assert model["urls"]["tfjs"] == "/static/tfjs/tf.min.js"
    assert (await client.get("api/v1/model")).body["weightsManifest"] == layout.manifest()


async def test_initial_evaluation_covers_validation_set_in_chunks(running, http, digits_data):
    client = ProtocolClient(http, running.url)
    await client.join()
    seen: list[int] = []

    def accuracy_of(task, tensors):
        seen.append(task["chunk"])
        assert task["kind"] == "evaluate" and task["version"] == 0
        return 0.1 * (task["chunk"] + 1)

    assert await client.evaluate_all(accuracy_of) == 3
    assert sorted(seen) == [0, 1, 2]
    history = (await client.get("api/v1/history")).body["history"]
    assert len(history) == 1
    entry = history[0]
    assert entry["version"] == 0 and entry["merges"] == 0 and entry["examples"] == 359
    expected = (0.1 * 120 + 0.2 * 120 + 0.3 * 119) / 359
    assert entry["valAccuracy"] == pytest.approx(expected)
    assert entry["valLoss"] == pytest.approx(1.0)


async def test_train_task_update_merges_with_average(running, http, digits_spec):
    client = ProtocolClient(http, running.url)
    await client.join()
    await client.evaluate_all()
    answer = await client.task("train")
    task = answer["task"]
    training = digits_spec.training
    assert task["kind"] == "train" and task["version"] == 0 and task["steps"] == 0
    assert task["urls"]["weights"] == "/api/v1/weights/0"
    assert task["urls"]["submit"] == f"/api/v1/tasks/{task['id']}/update"
    header, tensors = await client.batch(task)
    assert tensors["x"].shape == (training.batch_size * training.local_steps, 64)
    assert tensors["x"].dtype == np.float32 and tensors["y"].dtype == np.int32
    before = await client.weights_array(task["urls"]["weights"])
    np.testing.assert_array_equal(before, digits_spec.compiled.initial_weights(1))
    trained = before + 1.0
    result = await client.submit_update(task, trained)
    assert result.status == 200, result.body
    assert result.body["accepted"] is True and result.body["merged"] is True
    assert result.body["version"] == 1 and result.body["staleness"] == 0
    after = await client.weights_array()
    np.testing.assert_allclose(after, (before + trained) / 2, rtol=1e-6)
    status = (await client.get("api/v1/status")).body
    assert (status["version"], status["merges"]) == (1, 1)
    assert status["steps"] == training.local_steps  # t_n = max(0, 0 + local_steps)

    # a retry of the same task gets the first answer and merges nothing
    retry = await client.submit_update(task, trained + 5)
    assert retry.status == 200 and retry.body == result.body
    np.testing.assert_array_equal(await client.weights_array(), after)
    assert (await client.get("api/v1/status")).body["merges"] == 1


async def test_etags_change_at_every_start(make_config, serve, http, tmp_path):
    """Versions restart at 0 in a new run, and a run resumed after a crash makes the versions
    since its last checkpoint again with other weights, so the ETag of a version differs at every
    start (no cache, the client's or a browser's, may take former weights for these)."""
    etags = []
    for state_dir in (tmp_path / "state", tmp_path / "state", None):
        served = await serve(create_app(make_config(state_dir=state_dir)))
        client = ProtocolClient(http, served.url)
        await client.join()
        etags.append((await client.weights("api/v1/weights/0")).headers["ETag"])
        await served.stop()  # writes the last checkpoint
    assert len(set(etags)) == 3 and all(etag.startswith('"v0-') for etag in etags)


async def test_weights_etag_and_304(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    first = await client.weights()
    etag = first.headers["ETag"]
    assert first.status == 200 and etag.startswith('"v0-') and len(etag) == len('"v0-"') + 16
    assert first.headers["X-WebNN-Version"] == "0" and first.headers["X-WebNN-Steps"] == "0"
    again = await client.weights(etag=etag)
    assert again.status == 304 and again.raw == b""
    assert (await client.weights("api/v1/weights/0", etag=f"W/{etag}")).status == 304
    assert (await client.weights(etag='"v0"')).status == 200  # another run's version 0
    assert (await client.weights(etag=etag.replace("v0", "v7"))).status == 200
    missing = await client.weights("api/v1/weights/7")
    assert missing.status == 404 and missing.code == "unknown_version"


async def test_staleness_and_held_versions(running, http):
    a, b = ProtocolClient(http, running.url), ProtocolClient(http, running.url)
    await a.join()
    await b.join()
    await a.evaluate_all()
    await b.evaluate_all()  # the second replica of each chunk (quorum 2): the evaluation ends
    task_a = (await a.task("train"))["task"]
    task_b = (await b.task("train"))["task"]
    assert task_a["version"] == task_b["version"] == 0
    w0 = await a.weights_array(task_a["urls"]["weights"])
    first = await a.submit_update(task_a, w0 + 0.5)
    assert first.body["staleness"] == 0 and first.body["version"] == 1
    # b's base version is still held while b's lease is open
    assert (await b.weights(task_b["urls"]["weights"])).status == 200
    second = await b.submit_update(task_b, w0 - 0.5)
    assert second.body["staleness"] == 1 and second.body["version"] == 2
    # nobody references version 0 or 1 any more: dropped
    assert (await a.weights("api/v1/weights/0")).code == "unknown_version"
    assert (await a.weights("api/v1/weights/1")).code == "unknown_version"
    assert (await a.weights("api/v1/weights/2")).status == 200


async def test_leave_returns_open_tasks(running, http):
    a, b = ProtocolClient(http, running.url), ProtocolClient(http, running.url)
    await a.join()
    await b.join()
    await a.evaluate_all()
    task = (await a.task("train"))["task"]
    header_a, batch_a = await a.batch(task)
    assert (await a.leave()).body["left"] is True
    again = await a.request("POST", "api/v1/tasks", json_body={})
    assert again.status == 401 and again.code == "unknown_session"
    task_b = (await b.task("train"))["task"]
    header_b, batch_b = await b.batch(task_b)
    assert header_b["index"] == header_a["index"]
    np.testing.assert_array_equal(batch_b["x"], batch_a["x"])
    clients = (await b.get("api/v1/clients")).body["clients"]
    assert [c["clientId"] for c in clients] == [b.client_id]


async def test_training_loop_with_evaluations(running, http):
    rng = np.random.default_rng(0)
    clients = [ProtocolClient(http, running.url) for _ in range(2)]
    for client in clients:
        await client.join()
    for _ in range(6):
        for client in clients:
            await client.evaluate_all()
            answer = await client.train_once(rng)
            assert answer is not None and answer.status == 200, answer and answer.body
    await clients[0].evaluate_all()
    history = (await clients[0].get("api/v1/history")).body["history"]
    # initial evaluation, then every 5 merges (eval_every_merges=5 in make_config)
    assert [h["merges"] for h in history] == [0, 5, 10]
    assert all(h["examples"] == 359 for h in history)
    status = (await clients[0].get("api/v1/status")).body
    assert status["merges"] == 12 and status["version"] == 12


async def test_concurrent_duplicate_submissions_merge_once(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    await client.evaluate_all()
    task = (await client.task("train"))["task"]
    w = await client.weights_array(task["urls"]["weights"])
    answers = await asyncio.gather(*(client.submit_update(task, w + 0.25) for _ in range(4)))
    assert all(a.status == 200 for a in answers), [a.body for a in answers]
    assert len({json.dumps(a.body, sort_keys=True) for a in answers}) == 1
    assert (await client.get("api/v1/status")).body["merges"] == 1


async def test_idle_sessions_expire(make_config, serve, http):
    served = await serve(create_app(make_config(session_timeout=0.2, evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    watcher = ProtocolClient(http, served.url)
    for _ in range(100):
        if (await watcher.get("api/v1/status")).body["clients"] == 0:
            break
        await asyncio.sleep(0.05)
    answer = await client.request("POST", "api/v1/tasks", json_body={})
    assert (answer.status, answer.code) == (401, "unknown_session")
