"""Bad input gets a clear JSON error and changes nothing: weights, counters and history stay put."""

from __future__ import annotations

import asyncio
import json
import struct
import time

import numpy as np
import pytest
from support.protocol_client import FRAME_TYPE, ProtocolClient, encode_frame

from webnn.merge.webnn_strategies import WebNNAverage
from webnn.server.app import create_app


@pytest.fixture
async def setup(make_config, serve, http):
    served = await serve(create_app(make_config(max_invalid_updates=100)))
    client = ProtocolClient(http, served.url)
    await client.join()
    await client.evaluate_all()
    other = ProtocolClient(http, served.url)
    await other.join()
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    eval_ok = await client.train_once(np.random.default_rng(1))  # version 1, merges 1
    assert eval_ok is not None and eval_ok.status == 200
    return served, client, other, task, weights


async def _snapshot(client: ProtocolClient) -> tuple:
    status = (await client.get("api/v1/status")).body
    history = (await client.get("api/v1/history")).body["history"]
    weights = await client.weights_array()
    return (status["version"], status["steps"], status["merges"], history, weights.tobytes())


def _frame(task, weights, **header):
    base = {"baseVersion": task["version"], "steps": task["localSteps"], "loss": 1.0,
            "accuracy": 0.5, "timings": {}}
    base.update(header)
    return encode_frame(base, {"weights": weights})


def _submit(task):
    return task["urls"]["submit"]


CASES = {
    "wrong_length": lambda t, w: ("data", _frame(t, w[:-1]), FRAME_TYPE, 400, "wrong_length"),
    "too_long": lambda t, w: ("data", _frame(t, np.append(w, 1.0).astype(np.float32)),
                              FRAME_TYPE, 400, "wrong_length"),
    "nan": lambda t, w: ("data", _frame(t, np.where(np.arange(w.size) == 5, np.nan, w)
                                        .astype(np.float32)), FRAME_TYPE, 400, "not_finite"),
    "inf": lambda t, w: ("data", _frame(t, np.full_like(w, np.inf)), FRAME_TYPE, 400,
                         "not_finite"),
    "wrong_content_type": lambda t, w: ("data", _frame(t, w), "application/json", 415,
                                        "wrong_content_type"),
    "truncated_tensor": lambda t, w: ("data", _frame(t, w)[:-10], FRAME_TYPE, 400, "truncated"),
    "truncated_header": lambda t, w: ("data", _frame(t, w)[:12], FRAME_TYPE, 400, "truncated"),
    "short": lambda t, w: ("data", b"WNF", FRAME_TYPE, 400, "truncated"),
    "bad_magic": lambda t, w: ("data", b"XXXX" + _frame(t, w)[4:], FRAME_TYPE, 400, "bad_frame"),
    "header_not_json": lambda t, w: ("data", b"WNF1" + struct.pack("<I", 4) + b"{{{{",
                                     FRAME_TYPE, 400, "bad_frame"),
    "no_weights_tensor": lambda t, w: ("data", encode_frame(
        {"baseVersion": t["version"], "steps": 1}, {"other": w}), FRAME_TYPE, 400, "bad_frame"),
    "int_weights": lambda t, w: ("data", _frame(t, w.astype(np.int32)), FRAME_TYPE, 400,
                                 "bad_frame"),
    "steps_not_int": lambda t, w: ("data", _frame(t, w, steps="ten"), FRAME_TYPE, 400,
                                   "bad_field"),
    "steps_too_many": lambda t, w: ("data", _frame(t, w, steps=10_000), FRAME_TYPE, 400,
                                    "bad_field"),
    "wrong_base_version": lambda t, w: ("data", _frame(t, w, baseVersion=t["version"] + 3),
                                        FRAME_TYPE, 400, "bad_field"),
    "loss_string": lambda t, w: ("data", _frame(t, w, loss="low"), FRAME_TYPE, 400,
                                 "bad_field"),
    "timings_not_object": lambda t, w: ("data", _frame(t, w, timings=[1]), FRAME_TYPE, 400,
                                        "bad_field"),
    "timings_nan": lambda t, w: ("data", _frame(t, w, timings={"compute": float("nan")}),
                                 FRAME_TYPE, 400, "bad_field"),
    "timings_negative": lambda t, w: ("data", _frame(t, w, timings={"send": -1}), FRAME_TYPE,
                                      400, "bad_field"),
    "timings_huge": lambda t, w: ("data", _frame(t, w, timings={"send": 10**400}), FRAME_TYPE,
                                  400, "bad_field"),
    "header_int_too_long": lambda t, w: ("data", b"WNF1" + struct.pack("<I", 5012)
                                         + b'{"steps": 1%s}' % (b"0" * 5000), FRAME_TYPE, 400,
                                         "bad_frame"),
    "too_large": lambda t, w: ("data", b"\0" * (w.nbytes + (2 << 20)), FRAME_TYPE, 413,
                               "too_large"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_update_changes_nothing(setup, case):
    served, client, other, _, _ = setup
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    _, body, content_type, status, code = CASES[case](task, weights)
    before = await _snapshot(client)
    answer = await client.request("POST", _submit(task), data=body, content_type=content_type)
    assert (answer.status, answer.code) == (status, code), answer.body
    assert answer.body["protocol"] == 1 and answer.body["error"]["message"]
    assert await _snapshot(client) == before
    # the task is still open: a valid update is accepted afterwards
    good = await client.submit_update(task, weights + 0.1)
    assert good.status == 200 and good.body["accepted"], good.body


async def test_wrong_length_message_names_byte_counts(setup):
    _, client, _, _, _ = setup
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    answer = await client.request("POST", _submit(task), data=_frame(task, weights[:256]),
                                  content_type=FRAME_TYPE)
    assert answer.body["error"]["message"] == (
        f"update holds 1024 bytes of weights; the model needs {weights.nbytes} bytes "
        f"({weights.size} float32)")


async def test_request_errors_change_nothing(setup):
    served, client, other, _, _ = setup
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    frame = _frame(task, weights)
    before = await _snapshot(client)
    cases = [
        (dict(method="POST", path=_submit(task), data=frame, content_type=FRAME_TYPE,
              headers={"X-WebNN-Session": "forged"}), 401, "unknown_session"),
        (dict(method="POST", path="api/v1/tasks/t-nope/update", data=frame,
              content_type=FRAME_TYPE), 404, "unknown_task"),
        (dict(method="GET", path="api/v1/tasks/t-nope/batch"), 404, "unknown_task"),
        (dict(method="POST", path=task["urls"]["submit"].replace("update", "evaluation"),
              json_body={"loss": 1, "accuracy": 1, "examples": 1}), 404, "unknown_task"),
        (dict(method="GET", path="api/v1/weights/99"), 404, "unknown_version"),
        (dict(method="GET", path="api/v1/weights/abc"), 404, "unknown_version"),
        (dict(method="POST", path="api/v1/tasks", data=b"{not json",
              content_type="application/json"), 400, "bad_json"),
        (dict(method="POST", path="api/v1/tasks", json_body={"role": 5}), 400, "bad_field"),
        (dict(method="POST", path="api/v1/tasks", json_body=[1, 2]), 400, "bad_field"),
        (dict(method="POST", path="api/v1/tasks", data=b"{}", content_type="text/plain"),
         415, "wrong_content_type"),
        (dict(method="POST", path="api/v1/join", json_body={"client": {"kind": "toaster"}},
              session=False), 400, "bad_field"),
        (dict(method="POST", path="api/v1/join", json_body={"client": {"name": "x" * 999}},
              session=False), 400, "bad_field"),
        (dict(method="POST", path="api/v1/join", data=b"x" * 100_000,
              content_type="application/json", session=False), 413, "too_large"),
        (dict(method="POST", path="api/v1/admin/end", json_body={}), 401,
         "admin_token_required"),
        (dict(method="POST", path="api/v1/admin/pause", json_body={},
              headers={"Authorization": "Bearer wrong-token"}), 401, "admin_token_required"),
        (dict(method="GET", path="api/v1/export/weights.bin"), 401, "admin_token_required"),
        (dict(method="GET", path="api/v1/nothing-here"), 404, "not_found"),
        (dict(method="DELETE", path="api/v1/tasks"), 405, "method_not_allowed"),
    ]
    for kwargs, status, code in cases:
        answer = await client.request(kwargs.pop("method"), kwargs.pop("path"), **kwargs)
        assert (answer.status, answer.code) == (status, code), (kwargs, answer.body)
    # another session may not submit this task
    stolen = await other.request("POST", _submit(task), data=frame, content_type=FRAME_TYPE)
    assert (stolen.status, stolen.code) == (403, "not_your_task")
    assert await _snapshot(client) == before
    assert (await client.submit_update(task, weights)).status == 200


async def test_bad_evaluations_change_nothing(setup, make_config):
    served, client, _, _, _ = setup
    # force an evaluation: 5 merges
    rng = np.random.default_rng(2)
    while (await client.get("api/v1/status")).body["evaluating"] is None:
        assert (await client.train_once(rng)).status == 200
    task = (await client.task("evaluate"))["task"]
    assert task["kind"] == "evaluate"
    before = await _snapshot(client)
    n = task["examples"]
    for body, code in [({"loss": 1.0, "accuracy": 0.5, "examples": n + 1}, "bad_field"),
                       ({"loss": "x", "accuracy": 0.5, "examples": n}, "bad_field"),
                       ({"loss": 1.0, "accuracy": 1.5, "examples": n}, "bad_field"),
                       ({"loss": 1.0, "accuracy": 0.5, "examples": "all"}, "bad_field")]:
        answer = await client.submit_evaluation(task, body["loss"], body["accuracy"],
                                                body["examples"])
        assert (answer.status, answer.code) == (400, code), answer.body
    raw = await client.request("POST", task["urls"]["submit"],
                               data=b'{"loss": NaN, "accuracy": 0.5, "examples": %d}' % n,
                               content_type="application/json")
    assert (raw.status, raw.code) == (400, "not_finite")
    huge = await client.request("POST", task["urls"]["submit"],  # an integer no float can hold
                                data=b'{"loss": 1%s, "accuracy": 0.5, "examples": %d}'
                                % (b"0" * 400, n), content_type="application/json")
    assert (huge.status, huge.code) == (400, "not_finite"), huge.body
    endless = await client.request("POST", task["urls"]["submit"],  # too long for json to parse
                                   data=b'{"loss": 1%s}' % (b"0" * 5000),
                                   content_type="application/json")
    assert (endless.status, endless.code) == (400, "bad_json"), endless.body
    assert await _snapshot(client) == before
    assert (await client.submit_evaluation(task, 1.0, 0.5, n)).status == 200


async def test_repeated_invalid_updates_cut_the_client_off(make_config, serve, http):
    served = await serve(create_app(make_config(max_invalid_updates=3, cut_off_seconds=30,
                                                evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    for _ in range(3):
        bad = await client.submit_update(task, weights[:10])
        assert bad.code == "wrong_length"
    refused = await client.submit_update(task, weights)
    assert (refused.status, refused.code) == (429, "cut_off")
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    tasks = await client.request("POST", "api/v1/tasks", json_body={})
    assert (tasks.status, tasks.code) == (429, "cut_off")
    assert (await client.get("api/v1/status")).body["merges"] == 0
    metrics = (await client.get("metrics")).raw.decode()
    assert 'webnn_updates_rejected_total{reason="wrong_length"} 3.0' in metrics


async def test_too_stale_update_is_refused_and_its_batch_handed_out_again(make_config, serve,
                                                                           http):
    served = await serve(create_app(make_config(max_staleness=1, evaluate_initial=False)))
    slow, fast = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await slow.join()
    await fast.join()
    stale_task = (await slow.task("train"))["task"]
    stale_header, _ = await slow.batch(stale_task)
    w = await slow.weights_array(stale_task["urls"]["weights"])
    rng = np.random.default_rng(3)
    for _ in range(2):
        assert (await fast.train_once(rng)).status == 200
    before = await _snapshot(slow)
    answer = await slow.submit_update(stale_task, w)
    assert (answer.status, answer.code) == (409, "too_stale"), answer.body
    assert "2 versions behind" in answer.body["error"]["message"]
    assert await _snapshot(slow) == before
    again = (await fast.task("train"))["task"]
    header, _ = await fast.batch(again)
    assert header["index"] == stale_header["index"]


class SlowAverage(WebNNAverage):
    """Average that takes a while, so that updates queue up behind the merge lock."""

    def merge(self, model, update):
        time.sleep(0.2)
        return super().merge(model, update)


@pytest.mark.parametrize("where", ["max_staleness", "screening"])
async def test_staleness_bound_holds_for_updates_queued_behind_a_merge(make_config, serve, http,
                                                                       where):
    bound = {"max_staleness": 0} if where == "max_staleness" else {
        "screening": {"max_staleness": 0}}
    served = await serve(create_app(make_config(strategy=SlowAverage(), evaluate_initial=False,
                                                **bound)))
    clients = [ProtocolClient(http, served.url) for _ in range(4)]
    tasks = []
    for client in clients:
        await client.join()
        task = (await client.task("train"))["task"]
        tasks.append((task, await client.weights_array(task["urls"]["weights"])))
    assert {t["version"] for t, _ in tasks} == {0}
    answers = await asyncio.gather(*(c.submit_update(t, w + 0.01)
                                     for c, (t, w) in zip(clients, tasks, strict=True)))
    codes = sorted((a.status, a.code) for a in answers)
    # the first merge makes version 1; every update queued behind it is now 1 version stale
    assert codes == [(200, None)] + [(409, "too_stale")] * 3, [a.body for a in answers]
    status = (await clients[0].get("api/v1/status")).body
    assert status["version"] == 1 and status["merges"] == 1


async def test_join_token(make_config, serve, http):
    served = await serve(create_app(make_config(join_token="let-me-in-please")))
    anonymous = ProtocolClient(http, served.url)
    answer = await anonymous.request("POST", "api/v1/join", json_body={}, session=False)
    assert (answer.status, answer.code) == (401, "join_token_required")
    assert (await anonymous.get("api/v1/weights")).code == "unknown_session"
    member = ProtocolClient(http, served.url, join_token="let-me-in-please")
    await member.join()
    assert (await member.get("api/v1/weights")).status == 200


async def test_garbage_never_breaks_the_server(setup):
    served, client, _, task, _ = setup
    rng = np.random.default_rng(7)
    paths = ["api/v1/join", "api/v1/tasks", "api/v1/leave", _submit(task),
             task["urls"]["batch"], "api/v1/admin/pause", "api/v1/tasks/x/evaluation"]
    types = ["application/json", FRAME_TYPE, "application/octet-stream", "text/plain", None]
    before = await _snapshot(client)
    for i in range(60):
        size = int(rng.integers(0, 3000))
        body = rng.bytes(size)
        if i % 3 == 0:
            body = b"WNF1" + struct.pack("<I", int(rng.integers(0, 1 << 32))) + body
        if i % 5 == 0:
            body = json.dumps({"tensors": [{"name": "weights", "dtype": "float32",
                                            "shape": [-1], "offset": 3}]}).encode()
        answer = await client.request("POST", paths[i % len(paths)], data=body,
                                      content_type=types[i % len(types)])
        if answer.status != 200:  # a JSON object is a valid (empty) join
            assert 400 <= answer.status < 500, (i, answer.status, answer.body)
            assert answer.code, answer.body
    assert await _snapshot(client) == before
    await client.join()  # the garbage included a (valid) leave
    assert (await client.train_once(rng)).status == 200


async def test_screening_refuses_or_clips_large_updates(make_config, serve, http):
    served = await serve(create_app(make_config(screening={"norm_bound": 1.0, "action": "refuse"},
                                                evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    task = (await client.task("train"))["task"]
    w = await client.weights_array(task["urls"]["weights"])
    before = await _snapshot(client)
    big = await client.submit_update(task, w + 1.0)
    assert (big.status, big.code) == (400, "norm_too_large"), big.body
    assert "above the bound 1" in big.body["error"]["message"]
    assert await _snapshot(client) == before
    small = await client.submit_update(task, w + 1e-3)
    assert small.status == 200 and small.body["clipped"] is False

    clipping = await serve(create_app(make_config(
        screening={"norm_bound": 1.0, "action": "clip"}, evaluate_initial=False)))
    client = ProtocolClient(http, clipping.url)
    await client.join()
    task = (await client.task("train"))["task"]
    w = await client.weights_array(task["urls"]["weights"])
    answer = await client.submit_update(task, w + 1.0)
    assert answer.status == 200 and answer.body["clipped"] is True
    merged = await client.weights_array()
    # average of w and the clipped update (delta norm 1): the model moved by half of it
    assert np.linalg.norm(merged - w) == pytest.approx(0.5, rel=1e-4)


def test_bad_screening_config_is_refused(make_config):
    from webnn.server.config import ConfigError

    with pytest.raises(ConfigError, match="screening.action"):
        create_app(make_config(screening={"norm_bound": 1.0, "action": "explode"}))


def test_missing_browser_client_is_a_clear_config_error(make_config, tmp_path):
    from webnn.server.config import ConfigError

    with pytest.raises(ConfigError, match=r"client_dir: no browser client at .*src/index.html"):
        create_app(make_config(client_dir=tmp_path / "nowhere"))
