"""Leases, mounting under a prefix, restarts from the state dir, end conditions and export."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.config import ConfigError
from webnn.server.export import export_state_dir
from webnn.server.store import StateError


async def _wait_for(predicate, tries: int = 100, pause: float = 0.05):
    """Poll `predicate` (async) until it is truthy; bounded polling, never a timed assertion."""
    for _ in range(tries):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(pause)
    raise AssertionError("condition not reached")


async def test_expired_train_lease_hands_the_batch_out_again(make_config, serve, http):
    served = await serve(create_app(make_config(lease_seconds=0.3, evaluate_initial=False)))
    gone, other = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await gone.join()
    await other.join()
    task = (await gone.task("train"))["task"]
    header, batch = await gone.batch(task)
    w = await gone.weights_array(task["urls"]["weights"])

    async def expired():
        return (await other.get("api/v1/status")).body["openTasks"] == 0

    await _wait_for(expired)
    again = (await other.task("train"))["task"]
    assert again["id"] != task["id"]
    header2, batch2 = await other.batch(again)
    assert header2["index"] == header["index"]
    np.testing.assert_array_equal(batch2["x"], batch["x"])
    late = await gone.submit_update(task, w)
    assert (late.status, late.code) == (409, "lease_expired")
    assert (await other.submit_update(again, w)).status == 200
    metrics = (await other.get("metrics")).raw.decode()
    assert 'webnn_leases_expired_total{kind="train"} 1.0' in metrics


async def test_expired_evaluation_lease_hands_the_chunk_out_again(make_config, serve, http):
    # one replica per chunk (quorum 1): the hand-out of a single lease is what is tested here
    served = await serve(create_app(make_config(lease_seconds=0.3, eval_quorum=1)))
    gone, other = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await gone.join()
    await other.join()
    abandoned = (await gone.task("evaluate"))["task"]
    assert abandoned["chunk"] == 0
    assert await other.evaluate_all() == 2  # chunks 1 and 2

    async def reissued():
        return (await other.task("evaluate"))["task"]

    again = await _wait_for(reissued)
    assert again["chunk"] == 0 and again["version"] == 0
    assert (await other.submit_evaluation(again, 1.0, 0.5, again["examples"])).status == 200
    history = (await other.get("api/v1/history")).body["history"]
    assert len(history) == 1 and history[0]["examples"] == 359


async def test_mounted_under_a_prefix(make_config, serve, http):
    served = await serve(create_app(make_config()), prefix="/training/")
    assert served.url.endswith("/training/")
    client = ProtocolClient(http, served.url)
    joined = await client.join()
    assert joined["model"]["urls"]["weights"] == "/training/api/v1/weights"
    assert joined["model"]["urls"]["tfjs"] == "/training/static/tfjs/tf.min.js"
    await client.evaluate_all()
    task = (await client.task("train"))["task"]
    for key, value in task["urls"].items():
        assert value.startswith("/training/api/v1/"), (key, value)
    assert (await client.train_once(np.random.default_rng(0))).status == 200
    config = (await client.get("config.json")).body
    assert config["api"] == "/training/api/v1/"
    assert (await client.get("metrics")).status == 200
    # the volunteer page and the libraries are served under the prefix too
    page = await client.get("")
    assert page.status == 200 and b"<html" in page.raw.lower()
    assert (await client.get("static/tfjs/tf.min.js")).status == 200
    assert (await client.get("dashboard")).status == 200
    assert (await client.get("static/client/page.js")).status == 200
    assert (await client.get("static/chart/chart.umd.js")).status == 200


def _steady_update(w: np.ndarray, i: int) -> np.ndarray:
    return (w + 0.01 * (i + 1)).astype(np.float32)


async def _run_updates(client: ProtocolClient, start: int, count: int) -> list[int]:
    indices = []
    for i in range(start, start + count):
        task = (await client.task("train"))["task"]
        header, _ = await client.batch(task)
        indices.append(header["index"])
        w = await client.weights_array(task["urls"]["weights"])
        answer = await client.submit_update(task, _steady_update(w, i))
        assert answer.status == 200, answer.body
    return indices


async def test_restart_resumes_counters_history_data_and_strategy_state(make_config, serve,
                                                                         http, tmp_path):
    def config(state_dir):
        return make_config(state_dir=state_dir, strategy="fedbuff", strategy_params={"k": 3},
                           checkpoint_every_merges=None, checkpoint_every_seconds=None)

    # reference: 4 updates without a restart
    reference = await serve(create_app(config(tmp_path / "reference")))
    ref = ProtocolClient(http, reference.url)
    await ref.join()
    await ref.evaluate_all()
    ref_indices = await _run_updates(ref, 0, 4)
    ref_weights = await ref.weights_array()
    ref_status = (await ref.get("api/v1/status")).body
    await reference.stop()

    first = await serve(create_app(config(tmp_path / "state")))
    client = ProtocolClient(http, first.url)
    await client.join()
    await client.evaluate_all()
    indices = await _run_updates(client, 0, 2)  # buffered in fedbuff: no new version yet
    open_task = (await client.task("train"))["task"]  # out on lease at shutdown
    open_header, open_batch = await client.batch(open_task)
    before = (await client.get("api/v1/status")).body
    history = (await client.get("api/v1/history")).body["history"]
    assert (before["version"], before["merges"]) == (0, 2)
    await first.stop()  # on_cleanup writes a checkpoint

    second = await serve(create_app(config(tmp_path / "state")))
    client = ProtocolClient(http, second.url)
    joined = await client.join()
    # client ids go on from before the restart: c-1 joined the first server
    assert joined["clientId"] == "c-2"
    after = (await client.get("api/v1/status")).body
    for key in ("version", "steps", "merges"):
        assert after[key] == before[key], key
    assert (await client.get("api/v1/history")).body["history"] == history
    # the batch that was out on lease comes back first, then the sequence continues
    task = (await client.task("train"))["task"]
    header, batch = await client.batch(task)
    assert header["index"] == open_header["index"]
    np.testing.assert_array_equal(batch["x"], open_batch["x"])
    w = await client.weights_array(task["urls"]["weights"])
    assert (await client.submit_update(task, _steady_update(w, 2))).status == 200
    indices += [header["index"]] + await _run_updates(client, 3, 1)
    assert indices == ref_indices
    # fedbuff's buffer survived: the third update flushed it exactly as without a restart
    status = (await client.get("api/v1/status")).body
    assert (status["version"], status["merges"], status["steps"]) == (
        ref_status["version"], ref_status["merges"], ref_status["steps"])
    np.testing.assert_array_equal(await client.weights_array(), ref_weights)


async def test_state_dir_of_another_model_is_refused(make_config, serve, tmp_path):
    for name in ("s", "t"):
        served = await serve(create_app(make_config(state_dir=tmp_path / name)))
        await served.stop()  # writes a checkpoint
    current = tmp_path / "s" / (tmp_path / "s" / "CURRENT").read_text().strip()
    state = json.loads((current / "state.json").read_text())
    state["manifest"][0]["shape"] = [99, 99]
    state["fingerprint"] = "0" * 64
    (current / "state.json").write_text(json.dumps(state))
    with pytest.raises(StateError, match=r"different weight layout.*first difference at weight 0"):
        create_app(make_config(state_dir=tmp_path / "s"))
    with pytest.raises(StateError, match="strategy 'average', not 'fedasync'"):
        create_app(make_config(state_dir=tmp_path / "t", strategy="fedasync"))


def test_config_errors_are_listed(make_config):
    with pytest.raises(ConfigError) as error:
        create_app(make_config(lease_seconds=0, max_merges=-2, target_accuracy=3,
                               strategy="no-such-strategy"))
    text = str(error.value)
    for part in ("lease_seconds: must be > 0, got 0", "max_merges: must be >= 1, got -2",
                 "target_accuracy: must be <= 1, got 3"):
        assert part in text


async def test_max_merges_ends_after_a_final_evaluation_and_exports(make_config, serve, http,
                                                                    tmp_path):
    served = await serve(create_app(make_config(
        max_merges=3, eval_every_merges=None, state_dir=tmp_path / "state",
        export_dir=tmp_path / "export")))
    client = ProtocolClient(http, served.url)
    await client.join()
    await client.evaluate_all()
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert (await client.train_once(rng)).status == 200
    status = (await client.get("api/v1/status")).body
    assert status["state"] == "running" and status["finishing"]
    assert (await client.task("train"))["task"] is None  # no training while finishing
    assert await client.evaluate_all() == 3
    status = (await client.get("api/v1/status")).body
    assert status["state"] == "ended" and "max_merges=3" in status["endReason"]
    history = (await client.get("api/v1/history")).body["history"]
    assert [(h["version"], h["merges"]) for h in history] == [(0, 0), (3, 3)]
    answer = await client.task()
    assert answer["task"] is None and answer["state"] == "ended"
    final = await client.weights_array()

    async def exported():  # model.json is written last (after weights.bin) in each directory
        return (tmp_path / "export" / "model.json").exists() and (
            tmp_path / "state" / "final" / "model.json").exists()

    await _wait_for(exported)
    for directory in (tmp_path / "export", tmp_path / "state" / "final"):
        data = np.frombuffer((directory / "weights.bin").read_bytes(), "<f4")
        np.testing.assert_array_equal(data, final)
        document = json.loads((directory / "model.json").read_text())
        assert document["weightsManifest"][0]["paths"] == ["weights.bin"]
    await served.stop()
    out = export_state_dir(tmp_path / "state", tmp_path / "cli-export")
    assert sorted(p.name for p in out) == ["model.json", "weights.bin"]
    np.testing.assert_array_equal(
        np.frombuffer((tmp_path / "cli-export" / "weights.bin").read_bytes(), "<f4"), final)


async def test_target_accuracy_ends_training(make_config, serve, http):
    # quorum 1: one client's evaluation is validated (with quorum 2 a lone client's is not, and
    # the target does not fire: tests/test_hardening_evaluation.py)
    served = await serve(create_app(make_config(target_accuracy=0.9, eval_every_merges=2,
                                                eval_quorum=1)))
    client = ProtocolClient(http, served.url)
    await client.join()
    await client.evaluate_all(lambda task, tensors: 0.1)
    rng = np.random.default_rng(0)
    for _ in range(2):
        assert (await client.train_once(rng)).status == 200
    await client.evaluate_all(lambda task, tensors: 0.95)
    status = (await client.get("api/v1/status")).body
    assert status["state"] == "ended" and "target_accuracy=0.9" in status["endReason"]
    task = (await client.task("train"))
    assert task["task"] is None and task["state"] == "ended"


async def test_max_seconds_ends_training(make_config, serve, http):
    served = await serve(create_app(make_config(max_seconds=0.2, evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()

    async def finishing():
        return (await client.get("api/v1/status")).body["finishing"]

    await _wait_for(finishing)
    assert (await client.task("train"))["task"] is None
    assert await client.evaluate_all() == 3  # the final evaluation
    status = (await client.get("api/v1/status")).body
    assert status["state"] == "ended" and "max_seconds=0.2" in status["endReason"]


async def test_admin_pause_resume_end_and_export(make_config, serve, http):
    served = await serve(create_app(make_config(evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    token = "admin-token-123"
    assert (await client.admin("pause", token)).body["state"] == "paused"
    answer = await client.task()
    assert answer["task"] is None and answer["state"] == "paused"
    assert (await client.admin("resume", token)).body["state"] == "running"
    assert (await client.train_once(np.random.default_rng(0))).status == 200
    headers = {"Authorization": f"Bearer {token}"}
    model_json = await client.get("api/v1/export/model.json", headers=headers)
    assert model_json.status == 200
    assert model_json.body["weightsManifest"][0]["paths"] == ["weights.bin"]
    weights = await client.get("api/v1/export/weights.bin", headers=headers)
    np.testing.assert_array_equal(np.frombuffer(weights.raw, "<f4"),
                                  await client.weights_array())
    assert (await client.admin("end", token)).body["state"] == "ended"
    late = (await client.task())
    assert late["state"] == "ended"


async def test_periodic_checkpoints_while_running(make_config, serve, http, tmp_path):
    state_dir = tmp_path / "state"
    served = await serve(create_app(make_config(
        state_dir=state_dir, checkpoint_every_merges=2, checkpoint_every_seconds=None,
        evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    rng = np.random.default_rng(0)
    for _ in range(2):
        assert (await client.train_once(rng)).status == 200

    async def written():
        pointer = state_dir / "CURRENT"
        if not pointer.exists():
            return None
        return json.loads((state_dir / pointer.read_text().strip() / "state.json").read_text())

    state = await _wait_for(written)
    assert (state["version"], state["merges"]) == (2, 2)
    weights = np.frombuffer((state_dir / (state_dir / "CURRENT").read_text().strip()
                             / "weights.bin").read_bytes(), "<f4")
    np.testing.assert_array_equal(weights, await client.weights_array())
