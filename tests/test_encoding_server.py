"""Compressed updates and weights over real HTTP (docs/protocol.md, "Encodings"): negotiation at
join, q8 and f16 updates merged exactly as the float32 weights they stand for, f16 weights with
their own ETag, the base versions q8 sessions need, refusals that change nothing, and the bytes
counted per encoding."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from support.protocol_client import FRAME_TYPE, ProtocolClient, encode_frame

from webnn.server.app import create_app

ALL = {"update": ["q8", "f16", "f32"], "weights": ["f16", "f32"]}




def read_frame(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + length])
    start = 8 + length + (-(8 + length) % 8)
    dtypes = {"float32": "<f4", "float16": "<f2", "int32": "<i4", "int8": "i1"}
    tensors = {t["name"]: np.frombuffer(data[start + t["offset"]:start + t["offset"]
                                             + t["byteLength"]], dtypes[t["dtype"]])
               for t in header.pop("tensors")}
    return header, tensors


class Volunteer(ProtocolClient):
    """The test protocol client sending encoded updates (it joins with `join_with`)."""

    async def send(self, task: dict, tensors: dict[str, np.ndarray], **extra):
        header = {"baseVersion": task["version"], "steps": task["localSteps"], "loss": 1.0,
                  "accuracy": 0.5, "timings": {}, **extra}
        body = encode_frame(header, tensors)
        return await self.request("POST", task["urls"]["submit"], data=body,
                                  content_type=FRAME_TYPE,
                                  headers={"Accept": FRAME_TYPE} if extra.get("next") else None)

    async def train_task(self) -> dict:
        task = (await self.task("train"))["task"]
        assert task is not None
        return task


def sizes(model: dict) -> list[int]:
    return [int(np.prod(entry["shape"])) for entry in model["weightsManifest"]]


def exact_q8(model: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Codes and power-of-two scales, so base + q * s is exact in float32 either way."""
    counts = sizes(model)
    q = rng.integers(-127, 128, sum(counts)).astype(np.int8)
    scales = (2.0 ** -rng.integers(9, 13, len(counts))).astype(np.float32)
    return q, scales


def reconstruct(base: np.ndarray, q: np.ndarray, scales: np.ndarray, counts: list[int]):
    return (base + q.astype(np.float32) * np.repeat(scales, counts)).astype(np.float32)


@pytest.fixture
def start(make_config, serve):
    async def go(**overrides):
        return await serve(create_app(make_config(evaluate_initial=False, **overrides)))
    return go


async def test_join_negotiates_and_old_clients_get_f32(start, http):
    served = await start()
    old = Volunteer(http, served.url)
    assert (await old.join_with(None))["encodings"] == {"update": "f32", "weights": "f32"}
    new = Volunteer(http, served.url)
    assert (await new.join_with(ALL))["encodings"] == {"update": "q8", "weights": "f16"}
    fixed = await start(update_encoding="f16", weights_encoding="f32")
    client = Volunteer(http, fixed.url)
    assert (await client.join_with(ALL))["encodings"] == {"update": "f16", "weights": "f32"}
    bad = await client.request("POST", "api/v1/join", session=False,
                               json_body={"encodings": {"update": "q8"}})
    assert (bad.status, bad.code) == (400, "bad_field")
    assert bad.body["error"]["message"].startswith("$.encodings.update")
    listed = (await client.get("api/v1/clients")).body["clients"]
    assert {"update": "f16", "weights": "f32"} in [c["encodings"] for c in listed]


async def test_q8_and_f16_updates_merge_as_the_weights_they_stand_for(start, http):
    """The same update sent as q8 (or f16) to one server and as the float32 weights it decodes to
    to another (same seed) leaves both models bitwise equal."""
    rng = np.random.default_rng(0)
    for encoding in ("q8", "f16"):
        encoded, plain = await start(), await start()
        a, b = Volunteer(http, encoded.url), Volunteer(http, plain.url)
        await a.join_with({"update": [encoding]})
        await b.join_with(None)
        for _ in range(3):
            ta, tb = await a.train_task(), await b.train_task()
            base = await a.weights_array(ta["urls"]["weights"])
            np.testing.assert_array_equal(base, await b.weights_array(tb["urls"]["weights"]))
            if encoding == "q8":
                q, scales = exact_q8(a.model, rng)
                tensors = {"delta_q8": q, "scales": scales}
                weights = reconstruct(base, q, scales, sizes(a.model))
            else:
                half = (base + rng.normal(0, 0.01, base.size)).astype(np.float16)
                tensors, weights = {"weights": half}, half.astype(np.float32)
            sent, plain_answer = await a.send(ta, tensors), await b.submit_update(tb, weights)
            assert sent.status == 200 and sent.body["merged"], sent.body
            assert plain_answer.status == 200
        after = await a.weights_array("api/v1/weights")
        np.testing.assert_array_equal(after, await b.weights_array("api/v1/weights"))
        assert not np.array_equal(after, base)  # the model moved
        traffic = (await a.get("api/v1/status")).body["traffic"]["updates"][encoding]
        assert traffic["count"] == 3
        per_param = 1 if encoding == "q8" else 2
        assert per_param * base.size <= traffic["meanBytes"] <= per_param * base.size + 1024
        metrics = (await a.get("metrics")).raw.decode()
        assert f'webnn_update_bytes_total{{encoding="{encoding}"}}' in metrics


async def test_q8_keeps_the_base_version_until_the_update_arrives(start, http):
    served = await start()
    slow, fast = Volunteer(http, served.url), Volunteer(http, served.url)
    await slow.join_with({"update": ["q8"]})
    await fast.join_with(None)
    task = await slow.train_task()
    base = await slow.weights_array(task["urls"]["weights"])  # fetched: f32 would let it go
    rng = np.random.default_rng(1)
    for _ in range(3):
        assert (await fast.train_once(rng)).status == 200
    assert (await slow.weights(task["urls"]["weights"])).status == 200  # still held
    q, scales = exact_q8(slow.model, rng)
    answer = await slow.send(task, {"delta_q8": q, "scales": scales})
    assert answer.status == 200 and answer.body["staleness"] == 3, answer.body
    assert (await slow.weights(task["urls"]["weights"])).code == "unknown_version"
    assert base.size == slow.model["totalParams"]


async def test_f16_weights_have_their_own_etag_and_follow_up_frames(start, http):
    served = await start()
    client = Volunteer(http, served.url)
    await client.join_with({"update": ["f16"], "weights": ["f16"]})
    task = await client.train_task()
    answer = await client.weights(task["urls"]["weights"])
    assert answer.status == 200
    etag = answer.headers["ETag"]
    assert etag.startswith(f'"v{task["version"]}-') and etag.endswith('-f16"')
    assert answer.headers["X-WebNN-Encoding"] == "f16"
    half = np.frombuffer(answer.raw, "<f2")
    assert half.size == client.model["totalParams"]
    plain = Volunteer(http, served.url)
    await plain.join_with(None)
    full = await plain.weights_array("api/v1/weights")
    np.testing.assert_array_equal(half, full.astype(np.float16))
    again = await client.weights(task["urls"]["weights"], etag=answer.headers["ETag"])
    assert again.status == 304
    assert (await client.weights(task["urls"]["weights"], etag=etag.removesuffix('-f16"') + '"')
            ).status == 200  # the f32 ETag does not match the f16 body
    sent = await client.send(task, {"weights": (full + 0.01).astype(np.float16)}, next="train")
    assert sent.status == 200 and sent.headers["Content-Type"].startswith(FRAME_TYPE)
    header, tensors = read_frame(sent.raw)
    assert tensors["weights"].dtype == np.float16 and tensors["weights"].size == half.size
    latest = await plain.weights_array("api/v1/weights")
    assert header["next"]["task"]["version"] == header["version"]
    np.testing.assert_array_equal(tensors["weights"], latest.astype(np.float16))
    weights = (await client.get("api/v1/status")).body["traffic"]["weights"]
    assert weights["f16"]["meanBytes"] == 2 * half.size


@pytest.mark.parametrize(("offer", "tensors", "code", "words"), [
    ({"update": ["q8"]}, lambda n, t: {"weights": np.zeros(n, np.float32)}, "wrong_encoding",
     "negotiated update encoding 'q8'"),
    (None, lambda n, t: {"delta_q8": np.zeros(n, np.int8), "scales": np.ones(t, np.float32)},
     "wrong_encoding", "negotiated update encoding 'f32'"),
    ({"update": ["q8"]}, lambda n, t: {"delta_q8": np.zeros(n, np.int8),
                                       "scales": np.ones(t + 1, np.float32)},
     "wrong_length", "bytes of scales"),
    ({"update": ["q8"]}, lambda n, t: {"delta_q8": np.zeros(n, np.int8),
                                       "scales": np.full(t, np.nan, np.float32)},
     "not_finite", "scales[0]"),
    ({"update": ["q8"]}, lambda n, t: {"delta_q8": np.zeros(n - 8, np.int8),
                                       "scales": np.ones(t, np.float32)},
     "wrong_length", "bytes of delta_q8"),
    ({"update": ["f16"]}, lambda n, t: {"weights": np.full(n, np.inf, np.float16)},
     "not_finite", "NaN or infinite"),
    ({"update": ["q8"]}, lambda n, t: {"delta_q8": np.full(n, 127, np.int8),
                                       "scales": np.full(t, 3e38, np.float32)},
     "not_finite", "NaN or infinite"),  # finite scales whose product overflows
])
async def test_bad_encoded_updates_are_refused_and_change_nothing(start, http, offer, tensors,
                                                                  code, words):
    served = await start()
    client = Volunteer(http, served.url)
    await client.join_with(offer)
    task = await client.train_task()
    before = await client.weights_array(task["urls"]["weights"])
    status = (await client.get("api/v1/status")).body
    answer = await client.send(task, tensors(before.size, len(client.model["weightsManifest"])))
    assert answer.status == 400 and answer.code == code, answer.body
    assert set(answer.body) == {"protocol", "error"} and words in answer.body["error"]["message"]
    after = (await client.get("api/v1/status")).body
    assert (after["version"], after["merges"]) == (status["version"], status["merges"])
    np.testing.assert_array_equal(await client.weights_array("api/v1/weights"), before)
    assert after["rejected"].get(code) == 1 and after["traffic"]["updates"] == {}
