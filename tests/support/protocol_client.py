"""A small Python client of the documented protocol (docs/protocol.md), for tests.

It speaks HTTP to a real server and encodes frames itself (independently of the server's codec, so
codec bugs show). "Training" is numpy arithmetic on the weights: the server never runs a forward
pass, so any finite weight set of the right size is a valid update.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from yarl import URL

FRAME_TYPE = "application/vnd.webnn.frame"
WIRE_DTYPES = {"float32": "<f4", "int32": "<i4", "float16": "<f2", "int8": "i1"}
"""The frame dtypes of docs/protocol.md and their little-endian numpy types."""


def encode_frame(header: dict, tensors: dict[str, np.ndarray]) -> bytes:
    """The protocol's frame layout, written from the spec text."""
    entries, payload = [], b""
    for name, array in tensors.items():
        little = array.dtype.newbyteorder("<")
        dtype = next(k for k, v in WIRE_DTYPES.items() if np.dtype(v) == little)
        data = array.astype(np.dtype(WIRE_DTYPES[dtype])).tobytes()
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape),
                        "offset": len(payload), "byteLength": len(data)})
        payload += data + b"\0" * (-len(data) % 8)
    head = json.dumps({**header, "tensors": entries}).encode()
    return b"WNF1" + struct.pack("<I", len(head)) + head + b"\0" * (-(8 + len(head)) % 8) + payload


def decode_frame(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    assert data[:4] == b"WNF1", data[:4]
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + length])
    start = 8 + length + (-(8 + length) % 8)
    tensors = {}
    for t in header.pop("tensors"):
        dtype = WIRE_DTYPES[t["dtype"]]
        raw = data[start + t["offset"] : start + t["offset"] + t["byteLength"]]
        tensors[t["name"]] = np.frombuffer(raw, dtype=dtype).reshape(t["shape"])
    return header, tensors


@dataclass
class Answer:
    """An HTTP answer: status, headers and the body (parsed JSON when it is JSON)."""

    status: int
    headers: Any
    body: Any
    raw: bytes

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"]["code"]
        return None


class ProtocolClient:
    """One volunteer: joins, asks for tasks, fetches weights and batches, submits results."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str,
                 join_token: str | None = None) -> None:
        self.http = http
        self.base = URL(base_url if base_url.endswith("/") else base_url + "/")
        self.join_token = join_token
        self.token: str | None = None
        self.client_id: str | None = None
        self.model: dict | None = None

    def url(self, path: str) -> URL:
        """`path` relative to the base URL, or an absolute path (as in payloads) on its origin."""
        return self.base.join(URL(path))

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      data: bytes | None = None, content_type: str | None = None,
                      headers: dict | None = None, session: bool = True) -> Answer:
        headers = dict(headers or {})
        if session and self.token:
            headers.setdefault("X-WebNN-Session", self.token)
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        async with self.http.request(method, self.url(path), data=data, headers=headers) as r:
            raw = await r.read()
            body: Any = raw
            if r.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            return Answer(r.status, r.headers, body, raw)

    async def join(self, kind: str = "python", name: str = "test") -> dict:
        headers = {"Authorization": f"Bearer {self.join_token}"} if self.join_token else {}
        answer = await self.request("POST", "api/v1/join", headers=headers, session=False,
                                    json_body={"client": {"kind": kind, "name": name}})
        assert answer.status == 200, answer.body
        self.token, self.client_id = answer.body["token"], answer.body["clientId"]
        self.model = answer.body["model"]
        return answer.body

    async def join_with(self, offer: dict | None) -> dict:
        """Join offering the `encodings` of `offer` (None: no offer, as an old client)."""
        body: dict = {"client": {"kind": "python", "name": "enc"}}
        if offer is not None:
            body["encodings"] = offer
        answer = await self.request("POST", "api/v1/join", json_body=body, session=False)
        assert answer.status == 200, answer.body
        self.token, self.client_id = answer.body["token"], answer.body["clientId"]
        self.model = answer.body["model"]
        return answer.body

    async def task(self, role: str = "any") -> dict:
        answer = await self.request("POST", "api/v1/tasks", json_body={"role": role})
        assert answer.status == 200, answer.body
        return answer.body

    async def weights(self, url: str = "api/v1/weights", etag: str | None = None) -> Answer:
        headers = {"If-None-Match": etag} if etag else {}
        return await self.request("GET", url, headers=headers)

    async def weights_array(self, url: str = "api/v1/weights") -> np.ndarray:
        answer = await self.weights(url)
        assert answer.status == 200, answer.body
        return np.frombuffer(answer.raw, dtype="<f4").astype(np.float32)

    async def batch(self, task: dict) -> tuple[dict, dict[str, np.ndarray]]:
        answer = await self.request("GET", task["urls"]["batch"])
        assert answer.status == 200, answer.body
        assert answer.headers["Content-Type"].startswith(FRAME_TYPE)
        return decode_frame(answer.raw)

    async def submit_update(self, task: dict, weights: np.ndarray, *, steps: int | None = None,
                            loss: float | None = 1.0, accuracy: float | None = 0.5,
                            extra: dict | None = None) -> Answer:
        header = {"baseVersion": task["version"], "steps": steps or task["localSteps"],
                  "loss": loss, "accuracy": accuracy,
                  "timings": {"fetch": 0.01, "compute": 0.02, "send": 0.0}, **(extra or {})}
        frame = encode_frame(header, {"weights": weights.astype(np.float32)})
        return await self.request("POST", task["urls"]["submit"], data=frame,
                                  content_type=FRAME_TYPE)

    async def submit_evaluation(self, task: dict, loss: float | None, accuracy: float | None,
                                examples: int) -> Answer:
        return await self.request("POST", task["urls"]["submit"],
                                  json_body={"loss": loss, "accuracy": accuracy,
                                             "examples": examples})

    async def train_once(self, rng: np.random.Generator, scale: float = 0.01) -> Answer | None:
        """Do one train task: weights + small noise ("training"); None when no train task came."""
        answer = await self.task("train")
        task = answer["task"]
        if task is None:
            return None
        weights = await self.weights_array(task["urls"]["weights"])
        await self.batch(task)
        trained = weights + rng.normal(0, scale, weights.shape).astype(np.float32)
        return await self.submit_update(task, trained)

    async def evaluate_all(self, accuracy_of: Any = None) -> int:
        """Do evaluate tasks until none is left; returns how many were done."""
        done = 0
        while True:
            task = (await self.task("evaluate"))["task"]
            if task is None:
                return done
            header, tensors = await self.batch(task)
            examples = int(tensors["x"].shape[0])
            accuracy = accuracy_of(task, tensors) if accuracy_of else 0.5
            answer = await self.submit_evaluation(task, 1.0, accuracy, examples)
            assert answer.status == 200, answer.body
            done += 1

    async def leave(self) -> Answer:
        return await self.request("POST", "api/v1/leave", json_body={})

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def admin(self, action: str, token: str | None) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.request("POST", f"api/v1/admin/{action}", headers=headers,
                                  json_body={})
