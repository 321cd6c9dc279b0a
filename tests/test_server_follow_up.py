"""Follow-up tasks over real HTTP: an update whose header asks for ``"next"`` is answered with the
client's next task, leased right after the merge (newest version), and, when the client accepts
frames, with that task's weights and batch in the same answer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from support.protocol_client import FRAME_TYPE, ProtocolClient, decode_frame, encode_frame

from webnn.server import coordinator as coordinator_module
from webnn.server.app import COORDINATOR, create_app
from webnn.server.coordinator import Coordinator


@pytest.fixture
async def running(make_config, serve):
    # no evaluations in the way: every task is a train task
    return await serve(create_app(make_config(evaluate_initial=False)))


async def first_task(client: ProtocolClient) -> tuple[dict, np.ndarray]:
    task = (await client.task("train"))["task"]
    return task, await client.weights_array(task["urls"]["weights"])


async def test_json_answer_carries_the_next_task_at_the_newest_version(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    answer = await client.submit_update(task, weights + 0.01, extra={"next": "train"})
    assert answer.status == 200, answer.body
    follow = answer.body["next"]["task"]
    assert answer.body["accepted"] and answer.body["version"] == task["version"] + 1
    assert follow["kind"] == "train" and follow["version"] == answer.body["version"]
    assert follow["id"] != task["id"]
    # the follow-up is an ordinary task: its update merges with staleness 0
    weights = await client.weights_array(follow["urls"]["weights"])
    second = await client.submit_update(follow, weights + 0.01, extra={"next": True})
    assert second.status == 200 and second.body["staleness"] == 0
    assert second.body["next"]["task"]["version"] == second.body["version"]


async def test_frame_answer_holds_the_next_tasks_weights_and_batch(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    frame = await client.request(
        "POST", task["urls"]["submit"], content_type=FRAME_TYPE, headers={"Accept": FRAME_TYPE},
        data=_update(task, weights + 0.01, next_role="train"))
    assert frame.status == 200 and frame.headers["Content-Type"].startswith(FRAME_TYPE)
    header, tensors = decode_frame(frame.raw)
    follow = header["next"]["task"]
    assert header["accepted"] and header["version"] == follow["version"]
    served = await client.weights_array(follow["urls"]["weights"])
    np.testing.assert_array_equal(tensors["weights"], served)
    fetched = await client.request("GET", follow["urls"]["weights"])
    assert header["weightsEtag"] == fetched.headers["ETag"]  # a later fetch can be a 304
    batch_header, batch = await client.batch(follow)
    assert header["batch"] == batch_header
    np.testing.assert_array_equal(tensors["x"], batch["x"])
    np.testing.assert_array_equal(tensors["y"], batch["y"])


async def test_a_retried_update_gets_the_same_follow_up(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    first = await client.submit_update(task, weights + 0.01, extra={"next": "train"})
    again = await client.submit_update(task, weights + 0.01, extra={"next": "train"})
    assert again.body == first.body
    status = (await client.get("api/v1/status")).body
    assert status["merges"] == 1 and status["openTasks"] == 1


@pytest.mark.parametrize("value", ["sometimes", 3, None, ["train"]])
async def test_a_bad_next_field_is_refused_and_changes_nothing(running, http, value):
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    answer = await client.submit_update(task, weights + 0.01, extra={"next": value})
    assert answer.status == 400 and answer.code == "bad_field"
    assert answer.body["error"]["message"].startswith("header.next")
    status = (await client.get("api/v1/status")).body
    assert status["merges"] == 0 and status["openTasks"] == 1


async def test_a_refused_update_leases_no_follow_up(running, http):
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    weights = weights.copy()
    weights[3] = np.nan
    answer = await client.submit_update(task, weights, extra={"next": "train"})
    assert answer.status == 400 and answer.code == "not_finite"
    assert (await client.get("api/v1/status")).body["openTasks"] == 1


@pytest.mark.parametrize("inline_max, on_loop", [(None, True), (0, False)])
async def test_small_models_merge_on_the_event_loop(make_config, serve, http, monkeypatch,
                                                    inline_max, on_loop):
    # digits_mlp's 4,810 values are under INLINE_MERGE_MAX_VALUES: no hand-off to a worker thread
    # in the update's round trip; with the bound at 0 the same merge runs in a worker thread
    if inline_max is not None:
        monkeypatch.setattr(coordinator_module, "INLINE_MERGE_MAX_VALUES", inline_max)
    threads: list[int] = []
    run_merge = Coordinator._run_merge

    def recording(self, *args):
        threads.append(threading.get_ident())
        return run_merge(self, *args)

    monkeypatch.setattr(Coordinator, "_run_merge", recording)
    running = await serve(create_app(make_config(evaluate_initial=False)))
    client = ProtocolClient(http, running.url)
    await client.join()
    task, weights = await first_task(client)
    answer = await client.submit_update(task, weights + 0.01)
    assert answer.status == 200 and answer.body["merged"]
    assert (threads[0] == threading.get_ident()) is on_loop  # the test's loop is the server's
    merged = await client.weights_array()
    np.testing.assert_allclose(merged, weights + 0.005, atol=1e-6)  # average: (w + w + .01) / 2
    assert running.app[COORDINATOR].model.version == answer.body["version"]


async def test_a_follow_up_is_sent_though_newer_merges_came_before_its_answer(running, http):
    # Between an update's merge (which leases its follow-up at the newest version) and its
    # answer, other updates merge; the follow-up's version is then no longer the newest, and
    # handing its weights over must not drop it before its bytes are taken.
    coordinator = running.app[COORDINATOR]
    first, second = ProtocolClient(http, running.url), ProtocolClient(http, running.url)
    leased = []
    for client in (first, second):
        await client.join()
        task, weights = await first_task(client)
        session = coordinator.sessions.get(client.token)
        leased.append((session, coordinator.task(session, task["id"], "train"), task, weights))
    (session_a, task_a, wire_a, weights_a), (session_b, task_b, wire_b, weights_b) = leased
    await coordinator.submit_update(session_a, task_a, _update(wire_a, weights_a + 0.01, "train"))
    follow = task_a.follow_up.task
    kept = coordinator.versions.get(follow.version).array().copy()
    await coordinator.submit_update(session_b, task_b, _update(wire_b, weights_b + 0.01, "train"))
    assert coordinator.model.version > follow.version
    inputs = coordinator.follow_up_inputs(follow)
    assert inputs is not None
    np.testing.assert_array_equal(np.frombuffer(inputs[0], dtype="<f4"), kept)


def _update(task: dict, weights: np.ndarray, next_role: str) -> bytes:
    header = {"baseVersion": task["version"], "steps": task["localSteps"], "loss": 1.0,
              "accuracy": 0.5, "next": next_role}
    return encode_frame(header, {"weights": weights.astype(np.float32)})
