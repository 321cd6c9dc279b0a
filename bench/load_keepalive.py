"""The keep-alive race, measured: clients that reuse an idle connection just as the server's idle
close fires get network errors; clients that keep idle connections for less than the server does
get none.

A `WebnnRunner` with ``header_timeout`` T (the idle close of a keep-alive connection after an
answer) on loopback; `--clients` aiohttp clients each POST a 100 kB body `--rounds` times,
waiting uniformly 0.97 T - 1.03 T between requests, once with a client keep-alive longer than T
and once shorter. Prints requests answered and errors by kind for each. ``bench/load.py``'s
simulated clients keep idle connections for `load_clients.KEEPALIVE_SECONDS`, below
``wnn serve``'s default T of 15 s, for this reason.

    .venv/bin/python bench/load_keepalive.py [--idle 1.0] [--clients 20] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random

import aiohttp
from aiohttp import web

from webnn.server.runner import HttpLimits, WebnnRunner


async def race(idle: float, client_keepalive: float, clients: int,
               rounds: int) -> tuple[int, dict[str, int]]:
    """(answered, errors by exception name) for one client keep-alive."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/update", answer)
    runner = WebnnRunner(app, models=[], limits=HttpLimits(header_timeout=idle))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/update"
    errors: collections.Counter[str] = collections.Counter()
    answered = 0
    body = b"x" * 100_000
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=client_keepalive)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            async def client(rng: random.Random) -> None:
                nonlocal answered
                for _ in range(rounds):
                    try:
                        async with http.post(url, data=body) as reply:
                            await reply.read()
                            answered += 1
                    except (aiohttp.ClientError, OSError) as error:
                        errors[type(error).__name__] += 1
                    await asyncio.sleep(rng.uniform(0.97 * idle, 1.03 * idle))

            await asyncio.gather(*(client(random.Random(n)) for n in range(clients)))
    finally:
        await runner.cleanup()
    return answered, dict(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=1.0,
                        help="the server's idle close (HttpLimits.header_timeout), seconds")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for keepalive in (120.0, 0.8 * args.idle):
        answered, errors = asyncio.run(race(args.idle, keepalive, args.clients, args.rounds))
        print(f"client keep-alive {keepalive:6.1f} s against the server's {args.idle:g} s: "
              f"{answered} answered, errors {errors or 'none'}")


if __name__ == "__main__":
    main()
