"""Bounded resources under abuse, over real HTTP: a slow sender of an update body is answered
``408 body_timeout`` and closed while the server keeps serving others, its body budget released;
a join flood from one address gets ``429 rate_limited`` after the burst and a flood from many
addresses stops at the session cap."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
from aiohttp import web
from support.protocol_client import Answer, ProtocolClient, encode_frame

from webnn.server.app import create_app
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE
from webnn.server.runner import HttpLimits, WebnnRunner

BODY_TIMEOUT = 1.0


async def test_a_slow_sender_is_answered_408_and_closed(make_config, serve, http):
    served = await serve(create_app(make_config(body_timeout=BODY_TIMEOUT,
                                                evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await client.join()
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    frame = encode_frame({"baseVersion": task["version"], "steps": task["localSteps"],
                          "loss": 1.0, "accuracy": 0.5}, {"weights": weights})
    host, port = served.url.split("//")[1].rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"POST {task['urls']['submit']} HTTP/1.1\r\nHost: {host}\r\n"
            f"X-WebNN-Session: {client.token}\r\nContent-Type: {FRAME_TYPE}\r\n"
            f"Content-Length: {len(frame)}\r\n\r\n").encode()
    writer.write(head + frame[:100])  # headers and a few bytes, then nothing
    await writer.drain()
    started = time.monotonic()
    answer = asyncio.ensure_future(reader.read())  # everything up to the close

    # meanwhile the server keeps serving: status answers, the body's bytes are reserved
    other = ProtocolClient(http, served.url)
    status = (await other.get("api/v1/status")).body
    assert status["capacity"]["bodyBytes"] >= len(frame) and not answer.done()

    raw = await asyncio.wait_for(answer, 30)  # returns on the close (a bound, not a sleep)
    waited = time.monotonic() - started
    writer.close()
    text = raw.decode("latin-1")
    assert text.startswith("HTTP/1.1 408"), text
    assert '"code":"body_timeout"' in text and "Connection: close" in text
    assert waited >= BODY_TIMEOUT * 0.9
    status = (await other.get("api/v1/status")).body
    assert status["capacity"]["bodyBytes"] == 0  # the budget was released
    assert status["rejected"].get("body_timeout") == 1
    assert status["merges"] == 0
    # not held against the client: the task is still open and the same update goes through
    answer = await client.submit_update(task, weights)
    assert answer.status == 200, answer.body


async def test_a_join_flood_from_one_address_is_rate_limited(make_config, serve, http):
    served = await serve(create_app(make_config(join_burst=20, joins_per_minute=60)))
    probe = ProtocolClient(http, served.url)

    async def join() -> Answer:
        return await probe.request("POST", "api/v1/join", json_body={}, session=False)

    answers = await asyncio.gather(*(join() for _ in range(200)))
    statuses = [a.status for a in answers]
    assert statuses.count(200) in (20, 21)  # the burst (one more token may refill meanwhile)
    assert statuses.count(429) == 200 - statuses.count(200)
    for answer in answers:
        if answer.status == 429:
            assert answer.code == "rate_limited" and int(answer.headers["Retry-After"]) >= 1
    status = (await probe.get("api/v1/status")).body
    assert status["clients"] == statuses.count(200)
    assert status["capacity"]["refused"]["rate_limited"] == statuses.count(429)


async def test_a_join_flood_from_many_addresses_stops_at_the_session_cap(make_config, serve,
                                                                        http):
    served = await serve(create_app(make_config(max_sessions=50, trusted_proxies=("127.0.0.1",),
                                                evaluate_initial=False)))
    probe = ProtocolClient(http, served.url)

    async def join(i: int):
        return await probe.request("POST", "api/v1/join", json_body={}, session=False,
                                   headers={"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"})

    answers = await asyncio.gather(*(join(i) for i in range(150)))
    assert sum(a.status == 200 for a in answers) == 50
    assert all(a.code == "busy" and a.headers["Retry-After"] for a in answers if a.status != 200)
    status = (await probe.get("api/v1/status")).body
    assert status["clients"] == 50
    # the sessions that got in still work
    client = ProtocolClient(http, served.url)
    client.token = next(a.body["token"] for a in answers if a.status == 200)
    task = (await client.task("train"))["task"]
    assert task is not None
    assert np.isfinite(await client.weights_array(task["urls"]["weights"])).all()


async def test_a_slow_sender_of_headers_is_answered_408_and_closed(make_config):
    """`WebnnRunner`'s header deadline (`HttpLimits.header_timeout`, 15 s in `wnn serve`; 1 s
    here) answers a request whose headers never complete with JSON 408 and closes it, while
    others are served."""
    runner = WebnnRunner(create_app(make_config(evaluate_initial=False)),
                         limits=HttpLimits(header_timeout=1.0))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /api/v1/join HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        await writer.drain()
        started = time.monotonic()
        closed = asyncio.ensure_future(reader.read())
        async with (aiohttp.ClientSession() as http,  # others are served meanwhile
                    http.get(f"http://{host}:{port}/api/v1/status") as answer):
            assert answer.status == 200 and not closed.done()
        raw = await asyncio.wait_for(closed, 30)  # returns on the close (a bound, not a sleep)
        assert raw.startswith(b"HTTP/1.1 408") and b'"code":"header_timeout"' in raw, raw
        assert time.monotonic() - started >= 0.5
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_slow_sender_of_a_json_body_is_answered_408(make_config, serve, http,
                                                           monkeypatch):
    monkeypatch.setattr("webnn.server.http.JSON_BODY_TIMEOUT", 0.5)
    served = await serve(create_app(make_config(evaluate_initial=False)))
    host, port = served.url.split("//")[1].rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /api/v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"client\"")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    text = raw.decode("latin-1")
    assert text.startswith("HTTP/1.1 408") and '"code":"body_timeout"' in text, text
    status = (await ProtocolClient(http, served.url).get("api/v1/status")).body
    assert status["clients"] == 0
