"""The latency proxy forwards HTTP both ways, byte for byte, and holds every chunk back."""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp
import pytest
from aiohttp import web

from webnn.compare.proxy import LatencyProxy


@pytest.fixture
async def upstream():
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body[::-1], headers={"X-Sha": hashlib.sha256(body).hexdigest()})

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.query.get("who", "")})

    app = web.Application(client_max_size=8 << 20)
    app.router.add_post("/echo", echo)
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_forwards_requests_and_large_bodies(upstream: int) -> None:
    proxy = LatencyProxy("127.0.0.1", upstream, latency=0.01)
    port = await proxy.start()
    body = bytes(range(256)) * 12_000  # ~3 MB: many chunks each way
    async with aiohttp.ClientSession() as session:
        for who in ("a", "b", "c"):  # keep-alive: several requests on one connection
            async with session.get(f"http://127.0.0.1:{port}/hello?who={who}") as r:
                assert await r.json() == {"hello": who}
        async with session.post(f"http://127.0.0.1:{port}/echo", data=body) as r:
            assert r.headers["X-Sha"] == hashlib.sha256(body).hexdigest()
            assert await r.read() == body[::-1]
        results = await asyncio.gather(*[
            session.get(f"http://127.0.0.1:{port}/hello?who={i}") for i in range(8)])
        assert [(await r.json())["hello"] for r in results] == [str(i) for i in range(8)]
    await proxy.close()


async def test_adds_at_least_the_latency(upstream: int) -> None:
    """A lower bound only (a sleep cannot end early); no upper bound is asserted."""
    proxy = LatencyProxy("127.0.0.1", upstream, latency=0.3)
    port = await proxy.start()
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.get(f"http://127.0.0.1:{port}/hello?who=x") as r:
            assert await r.json() == {"hello": "x"}
        assert time.monotonic() - start >= 0.3
    await proxy.close()


async def test_unreachable_target_closes_the_connection() -> None:
    proxy = LatencyProxy("127.0.0.1", 1, latency=0)
    port = await proxy.start()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{port}/")
    await proxy.close()
    with pytest.raises(ValueError, match="latency must be >= 0"):
        LatencyProxy("127.0.0.1", 1, latency=-1)
