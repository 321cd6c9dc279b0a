"""The hostile suite's harness and strategies: a real server on loopback, driven over HTTP by
hypothesis-generated requests (docs/security.md states the promises they check).

`Harness` runs one server and one pooled aiohttp session on an event loop in a background thread,
so synchronous `@given` tests can drive them (`harness.send(request)`). `Target` holds the sessions
and open tasks the requests aim at; `snapshot()` is the model state a refused request must leave
alone. The strategies build requests that are invalid by construction (each draws at least one
defect) so every answer to them must be a 4xx.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from hypothesis import strategies as st
from yarl import URL

from support.protocol_client import FRAME_TYPE, ProtocolClient
from webnn.server.runner import WebnnRunner

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "hostile-admin-token"
JOIN_TOKEN = "hostile-join-token"
JSON_TYPE = "application/json"
ROLES = ("train", "evaluate", "any")

# ----------------------------------------------------------------------------------- harness


def hostile_app() -> web.Application:
    """The digits model with a join token. The cut-off and the join rate limit are off, so every
    hostile request is parsed in full instead of being turned away with a 429."""
    from webnn.server.app import create_app
    from webnn.server.config import ServeConfig

    limits: dict[str, Any] = {"max_invalid_updates": 10**9, "joins_per_minute": 0}
    return create_app(ServeConfig(
        spec=REPO / "model_specs" / "digits_mlp.json",
        data=str(REPO / "data_modules" / "digits.py"),
        seed=1, eval_chunk_size=120, eval_every_merges=10**6, eval_every_seconds=1e9,
        tick_seconds=0.05, admin_token=ADMIN_TOKEN, join_token=JOIN_TOKEN, lease_seconds=3600,
        session_timeout=3600, **limits))


@dataclass
class Answer:
    method: str
    path: str
    status: int
    content_type: str
    raw: bytes
    retry_after: str | None = None

    def json(self) -> Any:
        return strict_loads(self.raw)

    @property
    def code(self) -> str | None:
        if self.content_type == JSON_TYPE and self.status >= 400:
            return self.json()["error"]["code"]
        return None


@dataclass
class Request:
    """One hostile request; `path` is relative to the base URL and already percent-encoded."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(raw: bytes) -> Any:
    """JSON as a browser's `JSON.parse` reads it: NaN and Infinity are errors."""
    return json.loads(raw, parse_constant=_refuse_constant)


@dataclass
class Target:
    """What the hostile requests aim at: a victim session with an open train task (and the
    weights it was issued with) and an open evaluate task, and a session for task requests."""

    victim: ProtocolClient
    train: dict
    evaluate: dict
    weights: np.ndarray
    chunk_examples: int
    fuzzer: ProtocolClient


@dataclass
class Snapshot:
    """The state a refused request must not change."""

    version: int
    steps: int
    merges: int
    history: list
    weights: bytes
    rejected: dict[str, int]


class Harness:
    """A served app and a pooled client session on a private event loop in a daemon thread."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.requests = 0
        self.run(self._start(make_app))

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, make_app: Callable[[], web.Application]) -> None:
        self.app = make_app()
        self.runner = WebnnRunner(self.app)  # what `wnn serve` runs
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base = f"http://{host}:{port}/"
        connector = aiohttp.TCPConnector(limit=16)
        self.http = aiohttp.ClientSession(connector=connector,
                                          timeout=aiohttp.ClientTimeout(total=60))

    def close(self) -> None:
        async def stop() -> None:
            await self.http.close()
            await self.runner.cleanup()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def asend(self, request: Request) -> Answer:
        self.requests += 1
        url = URL(self.base + request.path, encoded=True)
        async with self.http.request(request.method, url, data=request.body,
                                     headers=request.headers, allow_redirects=False) as r:
            raw = await r.read()
            return Answer(request.method, request.path, r.status, r.content_type, raw,
                          r.headers.get("Retry-After"))

    def send(self, request: Request) -> Answer:
        return self.run(self.asend(request))

    def send_all(self, requests: list[Request], concurrency: int = 8) -> list[Answer]:
        async def bounded() -> list[Answer]:
            gate = asyncio.Semaphore(concurrency)

            async def one(request: Request) -> Answer:
                async with gate:
                    return await self.asend(request)

            return await asyncio.gather(*(one(r) for r in requests))

        return self.run(bounded())

    def client(self) -> ProtocolClient:
        return ProtocolClient(self.http, self.base, join_token=JOIN_TOKEN)

    def target(self) -> Target:
        async def make() -> Target:
            victim, fuzzer = self.client(), self.client()
            await victim.join(name="victim")
            await fuzzer.join(name="fuzzer")
            evaluate = (await victim.task("evaluate"))["task"]
            train = (await victim.task("train"))["task"]
            assert evaluate is not None and train is not None
            weights = await victim.weights_array(train["urls"]["weights"])
            return Target(victim, train, evaluate, weights, evaluate["examples"], fuzzer)

        return self.run(make())

    def snapshot(self, target: Target) -> Snapshot:
        async def take() -> Snapshot:
            status = (await target.victim.get("api/v1/status")).body
            history = (await target.victim.get("api/v1/history")).body["history"]
            weights = await target.victim.weights_array()
            return Snapshot(status["version"], status["steps"], status["merges"], history,
                            weights.tobytes(), dict(status["rejected"]))

        return self.run(take())


def describe(request: Request) -> str:
    """A request for failure messages: method, path, headers and the body (a frame's header)."""
    body = request.body or b""
    if body[:4] == b"WNF1" and len(body) >= 8:
        (length,) = struct.unpack("<I", body[4:8])
        body = b"frame header " + body[8 : 8 + min(length, 600)] + f" ({len(body)} bytes)".encode()
    return f"{request.method} {request.path[:200]} {request.headers} {body[:600]!r}"


def check_answer(answer: Answer) -> None:
    """No 5xx; every 4xx is protocol JSON ``{"protocol": 1, "error": {"code", "message"}}``;
    every JSON answer is strict JSON."""
    where = f"{answer.method} /{answer.path[:120]} -> {answer.status}"
    assert answer.status < 500, f"{where}: {answer.raw[:300]!r}"
    if answer.status >= 400:
        assert answer.content_type == JSON_TYPE, f"{where}: {answer.content_type}"
        if answer.method == "HEAD":
            return
        body = answer.json()
        assert set(body) == {"protocol", "error"} and body["protocol"] == 1, f"{where}: {body}"
        error = body["error"]
        assert set(error) == {"code", "message"}, f"{where}: {body}"
        assert isinstance(error["code"], str) and error["code"], f"{where}: {body}"
        assert isinstance(error["message"], str) and error["message"], f"{where}: {body}"
    elif answer.content_type == JSON_TYPE and answer.method != "HEAD":
        answer.json()  # raises on NaN / Infinity


def refusals(before: Snapshot, after: Snapshot) -> Counter:
    """How many more refusals each code counts in `status.rejected`."""
    return Counter(after.rejected) - Counter(before.rejected)


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    assert (after.version, after.steps, after.merges) == (
        before.version, before.steps, before.merges)
    assert after.history == before.history
    assert after.weights == before.weights
    assert np.isfinite(np.frombuffer(after.weights, dtype="<f4")).all()


# ----------------------------------------------------------------------------- strategies

HUGE_INTEGERS = st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**300])
NUMBERS = st.one_of(st.integers(), HUGE_INTEGERS,
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([1e308, -1e308, 5e-324, 1e30, -0.0]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Arrays/objects nested 33 to 5000 levels deep, balanced or not, alone or inside a field."""
    depth = draw(st.one_of(st.integers(33, 300), st.integers(900, 5000),
                           st.sampled_from([33, 1000, 2500, 5000])))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"b":', b"}]")]))
    core = opener * depth + b"1" + (closer * depth if draw(st.booleans()) else b"")
    if draw(st.booleans()):
        core = b'{"client": ' + core + b"}"
    return core


RAW_JSONISH = st.sampled_from([
    b"", b"{", b"}", b"[]", b"null", b"NaN", b"-Infinity", b'"\\ud800"', b"\xff\xfe{}",
    b'{"a": 1, "a": 2}', b"1" * 5000, b"1e999999", b"-" + b"9" * 4400, b"{" + b" " * 2000,
    b'{"role": "train"}\x00', b"\xef\xbb\xbf{}",
])


def _json_bodies() -> st.SearchStrategy[bytes]:
    """Random JSON bodies: values of any shape, deep nesting, huge numbers, non-UTF-8 bytes,
    near-misses of the JSON grammar."""
    return st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["client", "role", "loss", "accuracy", "examples",
                                         "token", "kind", "name"]), JSON_VALUES, max_size=4)
        .map(lambda v: json.dumps(v).encode()),
        deep_json(),
        RAW_JSONISH,
        st.binary(max_size=200),
        st.integers(64 * 1024 - 8, 66 * 1024).map(lambda n: b"[" + b" " * n + b"]"),
    )


JSON_BODIES = _json_bodies()


def parsed(body: bytes | None) -> Any:
    try:
        return json.loads(body or b"")
    except (ValueError, RecursionError):
        return None


CONTENT_TYPES = st.sampled_from([
    JSON_TYPE, JSON_TYPE, JSON_TYPE, "application/json; charset=utf-8", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", FRAME_TYPE,
    "application/octet-stream", "application/json; charset=latin-1", "x/\u00e9", ";;",
])

NON_ASCII_TOKENS = st.one_of(
    st.text(min_size=1, max_size=40).filter(lambda t: not t.isascii()),
    st.sampled_from(["\u00e9", "t\u00f6ken", "\u65e5\u672c", "\u0663\u0664", "\u00b2", "\u2460"]),
)
TOKENS = st.one_of(
    NON_ASCII_TOKENS,
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    st.integers(600, 5000).map(lambda n: "a" * n),
    st.sampled_from([ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], JOIN_TOKEN.upper(), "", " "]),
).map(lambda t: "".join(c for c in t if 32 <= ord(c) != 127))  # the client refuses controls
AUTH_HEADERS = st.one_of(
    TOKENS.map(lambda t: f"Bearer {t}"),
    TOKENS.map(lambda t: f"bearer  {t} "),
    TOKENS.map(lambda t: f"Basic {t}"),
    TOKENS,
)


def json_request_to(target: Target) -> st.SearchStrategy[Request]:
    """A JSON body for join (right join token), tasks (the fuzzer's session), an evaluation (the
    victim's open evaluate task), leave (token in the body) or an admin action (no token)."""

    endpoints = st.sampled_from(["join", "tasks", "evaluation", "leave", "admin"])
    actions = st.sampled_from(["pause", "resume", "end"])

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        body = draw(JSON_BODIES)
        content_type = draw(CONTENT_TYPES)
        endpoint = draw(endpoints)
        headers = {"Content-Type": content_type}
        value = parsed(body)
        if endpoint == "join":
            headers["Authorization"] = f"Bearer {JOIN_TOKEN}"
            return Request("POST", "api/v1/join", headers, body)
        if endpoint == "tasks":
            headers["X-WebNN-Session"] = target.fuzzer.token or ""
            if not body.strip() or (isinstance(value, dict) and value.get("role", "any") in ROLES):
                body = json.dumps({**(value if isinstance(value, dict) else {}),
                                   "role": "nobody"}).encode()
            return Request("POST", "api/v1/tasks", headers, body)
        if endpoint == "evaluation":
            headers["X-WebNN-Session"] = target.victim.token or ""
            if isinstance(value, dict) and value.get("examples") == target.chunk_examples:
                body = json.dumps({**value, "examples": -1}).encode()
            return Request("POST", target.evaluate["urls"]["submit"].lstrip("/"), headers, body)
        if endpoint == "leave":
            return Request("POST", "api/v1/leave", headers, body)
        action = draw(actions)
        return Request("POST", f"api/v1/admin/{action}", headers, body)

    return build()


# ------------------------------------------------------------------------------- frames

def frame_bytes(header: Any, payload: bytes, *, header_length: int | None = None,
                magic: bytes = b"WNF1") -> bytes:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(head) if header_length is None else header_length
    return magic + struct.pack("<I", length) + head + b"\0" * (-(8 + len(head)) % 8) + payload


BAD_HEADER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "steps": st.one_of(st.integers(max_value=0), st.integers(min_value=10**6), HUGE_INTEGERS,
                       st.floats(), st.text(max_size=5), st.none(), st.lists(st.integers())),
    "loss": st.one_of(st.text(max_size=5), st.booleans(), st.lists(SCALARS, max_size=3),
                      st.dictionaries(st.text(max_size=3), SCALARS, max_size=2)),
    "accuracy": st.one_of(st.text(max_size=5), st.booleans(), st.lists(SCALARS, max_size=3)),
    "timings": st.one_of(
        st.lists(SCALARS, max_size=3), st.text(max_size=5), st.integers(),
        st.dictionaries(st.text(max_size=5),
                        st.one_of(st.text(max_size=3), st.floats(max_value=-1e-9),
                                  st.sampled_from([float("nan"), float("inf"), -1])),
                        min_size=1, max_size=3)),
    "next": st.one_of(st.text(max_size=8).filter(lambda s: s not in ROLES), st.integers(),
                      st.none(), st.lists(st.booleans(), max_size=2)),
}
BAD_DTYPES = st.one_of(
    st.sampled_from(["int32", "float64", "float16", "FLOAT32", "float32 ", "", "uint8"]),
    st.lists(st.sampled_from(["float32", "int32"]), max_size=3),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    st.integers(), st.none(), st.booleans(),
)
BAD_OFFSETS = st.one_of(st.integers(min_value=1),
                        st.integers(max_value=-1), HUGE_INTEGERS, st.floats(), st.text(max_size=3),
                        st.none())


def bad_shapes(size: int) -> st.SearchStrategy[Any]:
    def wrong(shape: Any) -> bool:
        if not isinstance(shape, list) or len(shape) > 8:
            return True
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            return True
        return int(np.prod(np.array(shape, dtype=object))) != size

    return st.one_of(
        st.lists(st.integers(0, 3), min_size=9, max_size=60),
        st.lists(st.sampled_from([2**31, 2**40, 2**62, 10**30]), min_size=2, max_size=6),
        st.lists(st.integers(-5, 5), max_size=4),
        st.lists(SCALARS, max_size=4),
        SCALARS, JSON_VALUES,
    ).filter(wrong)


def frame_request_to(target: Target) -> st.SearchStrategy[Request]:
    """An update for the victim's open train task with at least one defect drawn from: random
    bytes, a bad header field, a bad tensor entry, bad tensor lists, truncation, trailing bytes,
    a wrong header length, a deep header, non-finite weights, bad magic or a wrong content type."""
    task, weights = target.train, target.weights
    size = int(weights.size)
    good_header = {"baseVersion": task["version"], "steps": task["localSteps"], "loss": 1.0,
                   "accuracy": 0.5, "timings": {"fetch": 0.01, "compute": 0.02}}
    entry = {"name": "weights", "dtype": "float32", "shape": [size], "offset": 0,
             "byteLength": 4 * size}
    payload = weights.astype("<f4").tobytes()
    payload += b"\0" * (-len(payload) % 8)
    headers = {"Content-Type": FRAME_TYPE, "X-WebNN-Session": target.victim.token or ""}
    path = task["urls"]["submit"].lstrip("/")

    def good(**fields: Any) -> dict:
        return {**good_header, **fields, "tensors": [dict(entry)]}

    defects = st.sampled_from([
            "random", "header_field", "base_version", "random_header", "entry_field",
            "tensor_list", "truncate", "trailing", "header_length", "deep_header", "non_finite",
            "magic", "content_type"])
    entry_values = {
        "name": st.one_of(st.text(max_size=10).filter(lambda s: s != "weights"),
                          JSON_VALUES.filter(lambda v: not isinstance(v, str))),
        "dtype": BAD_DTYPES,
        "shape": bad_shapes(size),
        "offset": BAD_OFFSETS,
        "byteLength": JSON_VALUES.filter(lambda v: v != 4 * size),
    }
    entry_keys = st.sampled_from(sorted(entry_values))
    header_keys = st.sampled_from(sorted(BAD_HEADER_FIELDS))
    base_versions = JSON_VALUES.filter(lambda v: not (isinstance(v, int) and v == task["version"]))
    random_headers = JSON_VALUES.filter(
        lambda v: not isinstance(v, dict) or not isinstance(v.get("tensors"), list))
    list_kinds = st.sampled_from(["missing", "not_list", "empty", "duplicate", "overlap",
                                  "too_many"])
    not_lists = JSON_VALUES.filter(lambda v: not isinstance(v, list))
    randoms = st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"WNF1" + b))
    magics = st.binary(min_size=4, max_size=4).filter(lambda m: m != b"WNF1")
    other_types = CONTENT_TYPES.filter(lambda c: c != FRAME_TYPE)
    good_frame = frame_bytes(good(), payload)
    good_head = json.dumps(good()).encode()

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        defect = draw(defects)
        request_headers = dict(headers)
        if defect == "random":
            body = draw(randoms)
        elif defect == "header_field":
            key = draw(header_keys)
            body = frame_bytes(good(**{key: draw(BAD_HEADER_FIELDS[key])}), payload)
        elif defect == "base_version":
            value = draw(base_versions)
            body = frame_bytes(good(baseVersion=value), payload)
        elif defect == "random_header":
            header = draw(random_headers)
            body = frame_bytes(header, payload)
        elif defect == "entry_field":
            key = draw(entry_keys)
            value = draw(entry_values[key])
            header = good()
            header["tensors"][0][key] = value
            body = frame_bytes(header, payload)
        elif defect == "tensor_list":
            kind = draw(list_kinds)
            header = good()
            if kind == "missing":
                del header["tensors"]
            elif kind == "not_list":
                header["tensors"] = draw(not_lists)
            elif kind == "empty":
                header["tensors"] = []
            elif kind == "duplicate":
                header["tensors"].append(dict(entry))
            elif kind == "overlap":
                header["tensors"].append({"name": "x", "dtype": "float32", "shape": [2],
                                          "offset": 8 * draw(st.integers(0, 3)),
                                          "byteLength": 8})
            else:
                header["tensors"] += [{"name": f"t{i}", "dtype": "int32", "shape": [0],
                                       "offset": 0, "byteLength": 0} for i in range(70)]
            body = frame_bytes(header, payload)
        elif defect == "truncate":
            body = good_frame[: draw(st.integers(0, len(good_frame) - 8))]
        elif defect == "trailing":
            body = good_frame + draw(st.binary(min_size=1, max_size=64))
        elif defect == "header_length":
            length = draw(st.one_of(st.integers(0, len(good_head) - 1),
                                    st.integers(len(good_head) + 1, 2**32 - 1)))
            body = frame_bytes(good_head, payload, header_length=length)
        elif defect == "deep_header":
            deep = draw(deep_json())
            head = good_head[:-1] + b', "x": ' + deep + b"}"
            body = frame_bytes(head, payload)
        elif defect == "non_finite":
            bad = weights.astype("<f4").copy()
            index = draw(st.integers(0, size - 1))
            bad[index] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            data = bad.tobytes() + b"\0" * (-bad.nbytes % 8)
            body = frame_bytes(good(), data)
        elif defect == "magic":
            magic = draw(magics)
            body = frame_bytes(good(), payload, magic=magic)
        else:
            request_headers["Content-Type"] = draw(other_types)
            body = good_frame
        return Request("POST", path, request_headers, body)

    return build()


# --------------------------------------------------------------------------------- paths

METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
SEGMENT_CHARS = st.characters(codec="utf-8", exclude_characters="/?#")
ODD_DIGITS = st.sampled_from(["\u00b2", "\u2460", "\u0663", "\uff11", "\u0967", "\U0001d7d9",
                              "\u2155", "\u00bd", "\u0e51"])


def _quoted(text: str) -> str:
    return URL.build(path="/" + text).raw_path.lstrip("/")


@st.composite
def version_text(draw: st.DrawFn) -> str:
    """`weights/{version}` texts: ASCII numbers of any length, and numbers with odd digits."""
    kind = draw(st.sampled_from(["ascii", "odd", "mixed", "signed", "long"]))
    if kind == "ascii":
        return str(draw(st.integers(0, 10**6)))
    if kind == "odd":
        return "".join(draw(st.lists(ODD_DIGITS, min_size=1, max_size=4)))
    if kind == "mixed":
        return str(draw(st.integers(0, 99))) + draw(ODD_DIGITS)
    if kind == "signed":
        return draw(st.sampled_from(["-1", "+1", " 1", "1 ", "0x1", "1e3", "1_0", "1.0"]))
    return "9" * draw(st.integers(19, 200))


def random_path(target: Target) -> st.SearchStrategy[str]:
    """Paths near the real ones (with random segments, odd digits, ``..``, NUL, long names)."""
    segment = st.text(SEGMENT_CHARS, min_size=0, max_size=20)
    static = st.sampled_from(["static/client/", "static/tfjs/", "static/chart/",
                              "static/tfjs-wasm/"])
    train_id = target.train["id"]
    return st.one_of(
        st.sampled_from(["", "dashboard", "config.json", "metrics", "api/v1/status",
                         "api/v1/history", "api/v1/clients", "api/v1/model", "api/v1/weights",
                         "api/v1/join", "api/v1/tasks", "api/v1/leave", "api/v1/admin/end",
                         "api/v1/export/model.json", "api/v1/export/weights.bin",
                         "static/client/", "static/client/index.html", "static/client/../",
                         "static/client/%2e%2e/%2e%2e/pyproject.toml", "static/client/%00",
                         "static/client/dashboard.js/", "static", "api", "api/v1/",
                         f"api/v1/tasks/{train_id}/batch", "api/v1/tasks/t-0/update"]),
        version_text().map(lambda v: "api/v1/weights/" + _quoted(v)),
        st.tuples(static, st.lists(segment, max_size=4)).map(
            lambda t: t[0] + "/".join(_quoted(s) for s in t[1])),
        st.tuples(segment, st.sampled_from(["batch", "update", "evaluation", ""])).map(
            lambda t: f"api/v1/tasks/{_quoted(t[0])}/{t[1]}"),
        st.lists(segment, min_size=1, max_size=5).map(
            lambda parts: "/".join(_quoted(s) for s in parts)),
        st.integers(200, 7000).map(lambda n: "static/client/" + "a" * n),  # < 8 KiB line
    )


def path_request_to(target: Target) -> st.SearchStrategy[Request]:
    """Random method and path, random auth and session headers, sometimes a random body."""

    paths = random_path(target)

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        method = draw(METHODS)
        path = draw(paths)
        if path.rstrip("/") == "api/v1/events":
            path = "api/v1/event"
        headers: dict[str, str] = {}
        if draw(st.booleans()):
            headers["Authorization"] = draw(AUTH_HEADERS)
        if draw(st.booleans()):
            headers["X-WebNN-Session"] = draw(TOKENS)
        body = None
        if method not in ("GET", "HEAD") and draw(st.booleans()):
            body = draw(JSON_BODIES)
            headers["Content-Type"] = draw(CONTENT_TYPES)
        return Request(method, path, headers, body)

    return build()


def header_request_to(target: Target) -> st.SearchStrategy[Request]:
    """Real endpoints with random (often non-ASCII) bearer tokens, session tokens and content
    types: admin actions and exports, join, and the session-only reads."""

    kinds = st.sampled_from(["admin", "join", "session", "content_type"])
    admin = st.sampled_from([
        ("POST", "api/v1/admin/pause"), ("POST", "api/v1/admin/resume"),
        ("POST", "api/v1/admin/end"), ("GET", "api/v1/export/model.json"),
        ("GET", "api/v1/export/weights.bin")])
    session_only = st.sampled_from([
        ("GET", "api/v1/model"), ("GET", "api/v1/weights"), ("POST", "api/v1/tasks"),
        ("GET", target.train["urls"]["batch"].lstrip("/")),
        ("POST", target.train["urls"]["submit"].lstrip("/")), ("POST", "api/v1/leave")])
    not_json = CONTENT_TYPES.filter(lambda c: not c.startswith(JSON_TYPE))

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        kind = draw(kinds)
        auth = draw(AUTH_HEADERS)
        if kind == "admin":
            method, path = draw(admin)
            return Request(method, path, {"Authorization": auth}, None)
        if kind == "join":
            return Request("POST", "api/v1/join", {"Authorization": auth,
                                                   "Content-Type": JSON_TYPE}, b"{}")
        if kind == "session":
            method, path = draw(session_only)
            return Request(method, path, {"X-WebNN-Session": draw(TOKENS)}, None)
        return Request("POST", "api/v1/tasks", {
            "X-WebNN-Session": target.fuzzer.token or "",
            "Content-Type": draw(not_json)},
            b'{"role": "nobody"}')

    return build()


def any_request_to(target: Target) -> st.SearchStrategy[Request]:
    return st.one_of(json_request_to(target), frame_request_to(target),
                     path_request_to(target), header_request_to(target))
