"""The keep-alive race, measured: clients that reuse an idle connection just as the server's idle
close fires get network errors; clients that keep idle connections for less than the server does
get none, and neither do clients that come back when a ``Retry-After`` told them to.

A `WebnnRunner` with ``header_timeout`` T (the idle close of a keep-alive connection after an
answer; a whole number of seconds) on loopback; `--clients` aiohttp clients each POST a 100 kB
body `--rounds` times, waiting uniformly 0.97 T - 1.03 T between requests:

1. answers ``200``, a client keep-alive of 120 s (longer than T);
2. answers ``200``, a client keep-alive of 0.8 T;
3. answers ``503`` with ``Retry-After: T``, a client keep-alive of 120 s (the server then keeps
   the connection for T + T: `runner.HttpLimits`).

Prints requests answered and errors by kind for each. ``bench/load.py``'s simulated clients keep
idle connections for `load_clients.KEEPALIVE_SECONDS`, below ``wnn serve``'s default T of 15 s.

    .venv/bin/python bench/load_keepalive.py [--idle 1] [--clients 20] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random

import aiohttp
from aiohttp import web

from webnn.server.runner import HttpLimits, WebnnRunner


async def race(idle: int, client_keepalive: float, clients: int, rounds: int,
               busy: bool = False) -> tuple[int, dict[str, int]]:
    """(answered, errors by exception name) for one client keep-alive; `busy`: every answer is
    ``503`` with ``Retry-After: idle``."""
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if busy:
            return web.Response(status=503, text="busy", headers={"Retry-After": str(idle)})
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
    parser.add_argument("--idle", type=int, default=1,
                        help="the server's idle close (HttpLimits.header_timeout), seconds")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for keepalive, busy in ((120.0, False), (0.8 * args.idle, False), (120.0, True)):
        answered, errors = asyncio.run(race(args.idle, keepalive, args.clients, args.rounds,
                                            busy))
        told = f", answers 503 Retry-After: {args.idle}" if busy else ""
        print(f"client keep-alive {keepalive:6.1f} s against the server's {args.idle} s{told}: "
              f"{answered} answered, errors {errors or 'none'}")


if __name__ == "__main__":
    main()
