"""Requests that are not HTTP, on raw sockets against a real server on loopback (`WebnnRunner`,
what `wnn serve` runs): every family the HTTP parser refuses (an invalid method token, a request
line or header over its limit, too many headers, raw non-ASCII bytes in the target, a bad
Content-Length, bad chunked encoding, a bad HTTP version) is answered with protocol JSON (400
``bad_http``, a message saying what was wrong), the connection is closed, and the refusal is
counted in /metrics and ``status.httpRefused``; a half-sent request is answered ``408
header_timeout``; hypothesis draws raw request lines, methods and headers and checks no answer is
a 5xx or a non-JSON error. One test runs a real ``wnn serve`` process."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webnn.server.app import create_app
from webnn.server.config import ServeConfig
from webnn.server.multi import create_multi_app
from webnn.server.runner import HttpLimits, WebnnRunner

REPO = Path(__file__).resolve().parents[1]
HEADER_TIMEOUT = 1.0
READ_DEADLINE = 30.0  # a bound on a hang, never a wait


def digits_config(**overrides: Any) -> ServeConfig:
    values: dict[str, Any] = {
        "spec": REPO / "model_specs" / "digits_mlp.json",
        "data": str(REPO / "data_modules" / "digits.py"), "seed": 1,
        "eval_chunk_size": 120, "eval_every_merges": 10**6, "eval_every_seconds": 1e9,
        "evaluate_initial": False, "tick_seconds": 0.05, "admin_token": "admin-token-123"}
    values.update(overrides)
    return ServeConfig(**values)


async def start(app: web.Application, limits: HttpLimits | None = None) -> tuple[WebnnRunner, int]:
    runner = WebnnRunner(app, limits=limits or HttpLimits(header_timeout=HEADER_TIMEOUT))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def exchange(port: int, *parts: bytes, between: asyncio.Event | None = None) -> bytes:
    """Send `parts` on one connection (waiting for `between`, if given, after the first) and
    read everything up to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index and between is not None:
                await between.wait()
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), READ_DEADLINE)
    finally:
        writer.close()


def split(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, headers, body


def error_of(raw: bytes) -> tuple[int, dict]:
    """The status and error object of one raw answer, checking the documented shape."""
    status, headers, body = split(raw)
    assert headers["content-type"].startswith("application/json"), raw[:300]
    payload = json.loads(body)
    assert set(payload) == {"protocol", "error"} and payload["protocol"] == 1, payload
    assert set(payload["error"]) == {"code", "message"}, payload
    return status, payload["error"]


async def get(port: int, path: str) -> bytes:
    raw = await exchange(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                         .encode())
    return split(raw)[2]


async def counts(port: int, prefix: str = "") -> tuple[dict[str, float], dict[str, int]]:
    """``({metric line key: value} for the refusal counters, status.httpRefused)``."""
    metrics = (await get(port, f"{prefix}/metrics")).decode()
    found = {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^(webnn_(?:requests|http)_refused_total\{[^}]*\}) (\S+)$", metrics, re.M)}
    status = json.loads(await get(port, f"{prefix}/api/v1/status"))
    return found, status["httpRefused"]


LONG = b"a" * 9000
FAMILIES: dict[str, tuple[bytes, str, str]] = {
    # name: (raw request, reason counted, words the message must hold)
    "invalid method token": (b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n", "bad_method", "method"),
    "unknown method token": (b"BR\x01W / HTTP/1.1\r\nHost: t\r\n\r\n", "bad_method", "method"),
    "TLS on the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
                             "bad_method", "HTTPS"),
    "request line over 8 KiB": (b"GET /" + LONG + b" HTTP/1.1\r\nHost: t\r\n\r\n",
                                "line_too_long", "longer than 8190 bytes"),
    "header over 8 KiB": (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + LONG + b"\r\n\r\n",
                          "line_too_long", "longer than 8190 bytes"),
    "too many headers": (b"GET / HTTP/1.1\r\nHost: t\r\n"
                         + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
                         "too_many_headers", "more than 128 headers"),
    "non-ASCII target": (b"GET /api/v1/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n", "bad_target",
                         "url"),
    "Content-Length not a number": (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\n"
                                    b"Content-Length: abc\r\n\r\n", "bad_content_length",
                                    "Content-Length"),
    "two Content-Lengths": (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                            b"Content-Length: 2\r\n\r\nab", "bad_content_length",
                            "Content-Length"),
    "Content-Length with chunked": (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\n"
                                    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                                    b"0\r\n\r\n", "bad_content_length", "Transfer-Encoding"),
    "bad chunk size": (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\nzz\r\n{}\r\n0\r\n\r\n", "bad_transfer_encoding", "chunk"),
    "unknown transfer coding": (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\n"
                                b"Transfer-Encoding: gzip\r\n\r\n", "bad_transfer_encoding",
                                "Transfer-Encoding"),
    "bad HTTP version": (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", "bad_request_line", "version"),
    "space in a header name": (b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: 1\r\n\r\n",
                               "bad_header", "header"),
    "NUL in a header value": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
                              "bad_header", "header"),
}


@pytest.fixture
async def served() -> Any:
    runner, port = await start(create_app(digits_config()))
    yield port
    await runner.cleanup()


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_malformed_http_gets_json_and_is_counted(served: int, family: str) -> None:
    raw_request, reason, words = FAMILIES[family]
    before_metrics, before_status = await counts(served)
    raw = await exchange(served, raw_request)  # returns on the close: the connection is closed
    status, error = error_of(raw)
    assert status == 400 and error["code"] == "bad_http", (status, error)
    assert words.lower() in error["message"].lower(), error["message"]
    assert "\x00" not in error["message"] and "\xff" not in error["message"]
    after_metrics, after_status = await counts(served)
    key = 'webnn_requests_refused_total{code="bad_http"}'
    assert after_metrics[key] - before_metrics.get(key, 0) == 1
    key = f'webnn_http_refused_total{{reason="{reason}"}}'
    assert after_metrics[key] - before_metrics.get(key, 0) == 1
    assert after_status.get(reason, 0) - before_status.get(reason, 0) == 1
    assert sum(after_status.values()) - sum(before_status.values()) == 1


async def test_a_bad_chunk_after_the_headers_is_answered_at_once(served: int) -> None:
    """The headers arrive, the handler starts reading the body, then a bad chunk size: the read
    fails (not a 10 s body timeout) and the answer is the same JSON, counted once."""
    sent = asyncio.Event()
    head = (b"POST /api/v1/join HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    started = time.monotonic()
    answer = asyncio.ensure_future(exchange(served, head, b"zz\r\n{}\r\n0\r\n\r\n", between=sent))
    await asyncio.sleep(0)  # the head goes out before the chunk; no timing is asserted on it
    sent.set()
    raw = await answer
    status, error = error_of(raw)
    assert status == 400 and error["code"] == "bad_http" and "chunk" in error["message"]
    assert time.monotonic() - started < 9.0  # the body timeout (10 s) did not answer it
    assert raw.count(b"HTTP/1.") == 1  # one answer, then the connection closed
    _, status_counts = await counts(served)
    assert status_counts == {"bad_transfer_encoding": 1}
    status = json.loads(await get(served, "/api/v1/status"))
    assert status["clients"] == 0  # the join never happened


async def test_a_half_sent_request_gets_408_header_timeout(served: int) -> None:
    started = time.monotonic()
    slow = asyncio.ensure_future(exchange(served, b"GET /api/v1/status HTTP/1.1\r\nHo"))
    # meanwhile other connections are served
    assert json.loads(await get(served, "/api/v1/status"))["state"] == "running"
    raw = await slow
    waited = time.monotonic() - started
    status, error = error_of(raw)
    assert status == 408 and error["code"] == "header_timeout", error
    assert f"{HEADER_TIMEOUT:g} s" in error["message"]
    assert split(raw)[1]["connection"].lower() == "close"
    assert waited >= HEADER_TIMEOUT * 0.9
    metrics, status_counts = await counts(served)
    assert status_counts == {"header_timeout": 1}
    assert metrics['webnn_requests_refused_total{code="header_timeout"}'] == 1


async def test_an_idle_connection_is_closed_without_an_answer(served: int) -> None:
    started = time.monotonic()
    raw = await exchange(served)  # connect, send nothing
    assert raw == b"" and time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    _, status_counts = await counts(served)
    assert status_counts == {}


async def test_keep_alive_requests_after_an_answer_get_their_own_deadline(served: int) -> None:
    """A good request, its answer, then half of a second request on the same connection: the
    deadline runs from the first answer and the half-sent request gets the 408."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    try:
        writer.write(b"GET /api/v1/status HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_DEADLINE)
        status, headers, _ = split(head)
        assert status == 200
        await reader.readexactly(int(headers["content-length"]))
        answered = time.monotonic()
        writer.write(b"GET /api/v1/sta")
        raw = await asyncio.wait_for(reader.read(), READ_DEADLINE)
        assert time.monotonic() - answered >= HEADER_TIMEOUT * 0.9
    finally:
        writer.close()
    status, error = error_of(raw)
    assert status == 408 and error["code"] == "header_timeout"


async def test_several_models_each_count_a_malformed_request() -> None:
    apps = {"a": create_app(digits_config()), "b": create_app(digits_config(seed=2))}
    runner, port = await start(create_multi_app(apps))
    try:
        status, error = error_of(await exchange(port, FAMILIES["invalid method token"][0]))
        assert status == 400 and error["code"] == "bad_http"
        for name in apps:
            _, status_counts = await counts(port, f"/models/{name}")
            assert status_counts == {"bad_method": 1}
        # outside the models, answers are protocol JSON too
        status, error = error_of(await exchange(
            port, b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
        assert status == 404 and error["code"] == "not_found"
    finally:
        await runner.cleanup()


async def test_limits_are_settings(served: int) -> None:
    """Smaller limits than the defaults apply, and the message names them."""
    runner, port = await start(create_app(digits_config()),
                               HttpLimits(max_line_size=100, max_field_size=200, max_headers=4,
                                          header_timeout=HEADER_TIMEOUT))
    try:
        _, error = error_of(await exchange(port, b"GET /" + b"a" * 150 + b" HTTP/1.1\r\n\r\n"))
        assert "longer than 100 bytes" in error["message"]
        _, error = error_of(await exchange(
            port, b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(6))
            + b"\r\n"))
        assert "more than 4 headers" in error["message"]
        ok = split(await exchange(port, b"GET /api/v1/status HTTP/1.1\r\nHost: t\r\n"
                                        b"Connection: close\r\n\r\n"))
        assert ok[0] == 200
    finally:
        await runner.cleanup()
    with pytest.raises(ValueError, match="header_timeout"):
        HttpLimits(header_timeout=0)
    with pytest.raises(TypeError, match="HttpLimits"):
        WebnnRunner(create_app(digits_config()), keepalive_timeout=3)


def test_wnn_serve_answers_malformed_http_with_json(processes: list) -> None:
    """The real command: `wnn serve` runs the same runner, with its HTTP limits settings."""
    from support.serve_cli import start_serve

    server = start_serve(str(REPO / "model_specs" / "digits_mlp.json"), "--data",
                         str(REPO / "data_modules" / "digits.py"), "--quiet",
                         "--max-field-size", "4096")
    processes.append(server)
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])

    async def check() -> None:
        for family in ("invalid method token", "header over 8 KiB", "non-ASCII target",
                       "bad chunk size"):
            status, error = error_of(await exchange(port, FAMILIES[family][0]))
            assert status == 400 and error["code"] == "bad_http", (family, error)
            if family == "header over 8 KiB":  # --max-field-size 4096 applies
                assert "longer than 4096 bytes" in error["message"], error
        metrics, status_counts = await counts(port)
        assert metrics['webnn_requests_refused_total{code="bad_http"}'] == 4
        assert status_counts == {"bad_method": 1, "line_too_long": 1, "bad_target": 1,
                                 "bad_transfer_encoding": 1}

    asyncio.run(check())


# --------------------------------------------------------------------------- hypothesis


class RawHarness:
    """A model served by `WebnnRunner` on a private loop in a daemon thread, for sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = self.run(self._start())

    async def _start(self) -> tuple[WebnnRunner, int]:
        return await start(create_app(digits_config()), HttpLimits(header_timeout=5.0))

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def close(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def raw_harness() -> Any:
    harness = RawHarness()
    yield harness
    harness.close()


TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE",
                     "CONNECT", "PRI", "get", "G E T", ""]).map(str.encode),
    st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=1, max_size=12).filter(lambda b: b" " not in b and b"\r\n" not in b))
targets = st.one_of(
    st.sampled_from([b"/", b"/api/v1/status", b"/api/v1/join", b"/api/v1/weights/1", b"*",
                     b"http://t/api/v1/status", b"/%00", b"/../../etc/passwd", b"//x",
                     b"/api/v1/weights/\xd9\xa1"]),
    st.binary(min_size=0, max_size=40).filter(lambda b: b" " not in b and b"\r\n" not in b),
    st.integers(8000, 8300).map(lambda n: b"/" + b"x" * n))
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x", b"http/1.1",
                            b"", b"HTTP/01.1", b"HTTP/1.1 extra"])
header_names = st.one_of(
    st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Host", b"Content-Type",
                     b"Expect", b"Upgrade", b"Connection", b"X-WebNN-Session",
                     b"Authorization"]),
    st.text(TOKEN_CHARS, min_size=1, max_size=20).map(str.encode),
    st.binary(min_size=0, max_size=20).filter(lambda b: b"\r\n" not in b and b":" not in b))
header_values = st.one_of(
    st.sampled_from([b"0", b"-1", b"abc", b"chunked", b"gzip", b"chunked, chunked",
                     b"100-continue", b"websocket", b"99999999999999999999", b" 5",
                     b"Bearer \xff"]),
    st.binary(min_size=0, max_size=40).filter(lambda b: b"\r\n" not in b),
    st.integers(8000, 8300).map(lambda n: b"v" * n))
raw_requests = st.builds(
    lambda method, target, version, headers, body, sep: (
        method + b" " + target + (b" " + version if version else b"") + sep
        + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
        + b"Connection: close\r\n\r\n" + body),
    methods, targets, versions, st.lists(st.tuples(header_names, header_values), max_size=6),
    st.binary(max_size=64), st.sampled_from([b"\r\n", b"\n", b"\r\n"]))


async def first_answer(port: int, request: bytes) -> bytes:
    """Send `request` and read the first final answer (headers and a Content-Length body), or
    whatever came before the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_DEADLINE)
            except asyncio.IncompleteReadError as partial:
                return partial.partial
            status, headers, _ = split(head)
            if status == 100:
                continue
            length = 0 if request.startswith(b"HEAD ") else int(
                headers.get("content-length", "0"))
            return head + await asyncio.wait_for(reader.readexactly(length), READ_DEADLINE)
    finally:
        writer.close()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=raw_requests)
def test_raw_requests_never_get_a_5xx_or_a_non_json_error(raw_harness: RawHarness,
                                                          request: bytes) -> None:
    answer = raw_harness.run(first_answer(raw_harness.port, request))
    if not answer:  # closed without an answer (never the case for a parser error)
        return
    status, headers, _ = split(answer)
    assert status < 500, answer[:400]
    if status >= 400 and request.startswith(b"HEAD "):
        # a HEAD answer has the error's headers but no body (RFC 9110, 9.3.2): under load a
        # HEAD can meet a refusal (a header timeout, a throttle) like any other request
        assert headers["content-type"].startswith("application/json"), answer[:300]
    elif status >= 400:
        error_of(answer)


def test_raw_requests_changed_nothing(raw_harness: RawHarness) -> None:
    """After the raw requests above (module order), the model is untouched."""
    status = json.loads(raw_harness.run(get(raw_harness.port, "/api/v1/status")))
    assert (status["version"], status["steps"], status["merges"]) == (0, 0, 0)
