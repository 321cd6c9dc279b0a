"""The floor of one exchange from a headless Chromium page: a `fetch` POST against a WebSocket
message round trip, the same bytes each way, against a bare aiohttp server on loopback.

Why: a participating client pays one exchange per task (the update up, the next task's weights
and batch down). In Chromium that exchange costs several times what it costs from Node
(docs/capacity.md, *Clients that keep up*); this measures how much of it is the browser's own
request path, and what a persistent connection (a WebSocket) would save, with no webnn code in
the way. Defaults: 20,000 bytes up and 60,000 down, about a digits_mlp task's q8 update and its
follow-up frame (f16 weights and a batch of 160 examples).

    taskset -c 0 .venv/bin/python bench/browser_roundtrip.py --server-cpu 0 [--rounds 3]
        [--exchanges 300] [--up 20000] [--down 60000]

Prints, per round, the median and 90th percentile milliseconds of each kind (interleaved:
one fetch, one WebSocket message, in turn).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from aiohttp import web
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.e2e import launch_chromium  # noqa: E402

MEASURE = """async ({exchanges, up}) => {
  const body = new Uint8Array(up);
  const socket = new WebSocket(`ws://${location.host}/socket`);
  socket.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  let answered;
  socket.onmessage = (event) => answered(event.data);
  const viaSocket = () => new Promise((resolve) => { answered = resolve; socket.send(body); });
  const viaFetch = async () => (await fetch('echo', {method: 'POST', body})).arrayBuffer();
  for (let i = 0; i < 20; i++) { await viaFetch(); await viaSocket(); }  // warm-up
  const ms = {fetch: [], webSocket: []};
  for (let i = 0; i < exchanges; i++) {
    let start = performance.now(); await viaFetch(); ms.fetch.push(performance.now() - start);
    start = performance.now(); await viaSocket(); ms.webSocket.push(performance.now() - start);
  }
  socket.close();
  const quantile = (values, q) => values.sort((a, b) => a - b)[Math.floor(q * (values.length - 1))];
  return Object.fromEntries(Object.entries(ms).map(
    ([kind, values]) => [kind, {p50: quantile(values, 0.5), p90: quantile(values, 0.9)}]));
}"""


def make_app(answer: bytes) -> web.Application:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>roundtrip</title>",
                            content_type="text/html")

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/octet-stream")

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for _ in ws:
            await ws.send_bytes(answer)
        return ws

    app = web.Application(client_max_size=1 << 24)
    app.router.add_get("/", page)
    app.router.add_post("/echo", echo)
    app.router.add_get("/socket", socket)
    return app


def serve_in_thread(app: web.Application, cpu: int | None) -> str:
    """Run `app` on a loopback port in a thread of its own (pinned to `cpu` where given)."""
    import asyncio

    ready = threading.Event()
    address: list[str] = []

    def run() -> None:
        if cpu is not None:
            os.sched_setaffinity(threading.get_native_id(), {cpu})
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        address.append(f"http://127.0.0.1:{port}/")
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return address[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exchanges", type=int, default=300)
    parser.add_argument("--up", type=int, default=20_000, help="bytes sent per exchange")
    parser.add_argument("--down", type=int, default=60_000, help="bytes answered per exchange")
    parser.add_argument("--server-cpu", type=int, default=None,
                        help="pin the server's thread to this CPU")
    args = parser.parse_args()
    url = serve_in_thread(make_app(os.urandom(args.down)), args.server_cpu)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.goto(url)
        for round_ in range(1, args.rounds + 1):
            result = page.evaluate(MEASURE, {"exchanges": args.exchanges, "up": args.up})
            print(json.dumps({"round": round_, "up": args.up, "down": args.down, **result}))
        browser.close()


if __name__ == "__main__":
    main()
