"""Running the roles: one front-end or merger in this process (``--role``), or a supervisor
(``--processes N``) that forks N front-ends on one port (``SO_REUSEPORT``: the kernel spreads
connections over them) and `ClusterSettings.mergers` mergers (one active, the rest standby),
and starts a replacement for any child that dies until it is told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from webnn.cluster.connection import connect
from webnn.cluster.frontend import Frontend, create_frontend_app
from webnn.cluster.keys import RunKeys
from webnn.cluster.merger import Merger
from webnn.cluster.settings import ClusterSettings
from webnn.cluster.workers import MakeWorkers, run_workers, workers_main
from webnn.server.config import ServeConfig, load_parts
from webnn.server.runner import HttpLimits, WebnnRunner

log = logging.getLogger("webnn.cluster")
RESTART_SECONDS = 0.5


def run_keys(config: ServeConfig, settings: ClusterSettings, name: str) -> RunKeys:
    return RunKeys(settings.run or name)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


async def serve_frontend(config: ServeConfig, settings: ClusterSettings, host: str, port: int,
                         label: str, on_ready: Callable[[], None] | None = None,
                         limits: HttpLimits | None = None,
                         workers: MakeWorkers | None = None, base: str = "") -> None:
    """One front-end on `host`:`port` (shared with the others through ``reuse_port``) until
    SIGINT/SIGTERM, in a `WebnnRunner` (malformed HTTP answered with protocol JSON, `limits`
    on request lines, headers and the header timeout, as ``wnn serve``); with `workers`, local
    workers against `base` in the same event loop."""
    parts = load_parts(config)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    redis = connect(settings.redis_url)
    frontend = Frontend(config, parts, settings, redis,
                        run_keys(config, settings, parts.spec.name), label)
    await frontend.start()
    app = create_frontend_app(frontend)
    runner = WebnnRunner(app, handle_signals=False, limits=limits or HttpLimits(),
                         models=[app])
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=True).start()
        log.info("%s: serving on %s:%d", label, host, port)
        if on_ready is not None:
            on_ready()
        if workers is not None:
            await run_workers(workers, base, stop)
        else:
            await stop.wait()
    finally:
        await runner.cleanup()
        await frontend.stop()


async def serve_merger(config: ServeConfig, settings: ClusterSettings, label: str) -> None:
    """One merger (active or standby) until SIGINT/SIGTERM."""
    parts = load_parts(config)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    redis = connect(settings.redis_url)
    merger = Merger(config, parts, settings, redis, run_keys(config, settings, parts.spec.name),
                    label)
    try:
        await merger.run(stop)
    finally:
        await redis.aclose()


@dataclass
class Child:
    role: str
    index: int
    process: multiprocessing.process.BaseProcess | None = None
    restarts: int = 0


def _child_main(config: ServeConfig, settings: ClusterSettings, role: str, index: int,
                host: str, port: int, limits: HttpLimits | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    label = settings.label(role, index)
    if role == "frontend":
        asyncio.run(serve_frontend(config, settings, host, port, label, limits=limits))
    else:
        asyncio.run(serve_merger(config, settings, label))


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def supervise(config: ServeConfig, settings: ClusterSettings, host: str, port: int,
              say: Callable[[str], None], limits: HttpLimits | None = None,
              workers: MakeWorkers | None = None, base: str = "") -> int:
    """Fork the front-ends and mergers, restart any that die, stop them all on SIGINT/SIGTERM;
    with `workers`, one more child runs local workers against `base` (not restarted); returns
    the port served."""
    context = multiprocessing.get_context("fork")
    if port == 0:
        port = free_port(host)
    children = [Child("merger", i) for i in range(settings.mergers)]
    children += [Child("frontend", i) for i in range(settings.processes)]
    if workers is not None:
        children.append(Child("workers", 0))
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def start(child: Child) -> None:
        if child.role == "workers":
            assert workers is not None
            child.process = context.Process(target=workers_main, daemon=False,
                                            args=(workers, base, host, port), name="workers")
            child.process.start()
            return
        child.process = context.Process(target=_child_main, daemon=False,
                                        args=(config, settings, child.role, child.index, host,
                                              port, limits), name=f"{child.role}-{child.index}")
        child.process.start()

    try:
        for child in children:
            start(child)
        pids = ", ".join(f"{c.role}-{c.index}={c.process.pid}" for c in children if c.process)
        say(f"scale-out: {settings.processes} front-end(s) on port {port}, "
            f"{settings.mergers} merger(s), Redis {settings.redis_url}; pids {pids}")
        while not stopping:
            time.sleep(0.2)
            for child in children:
                assert child.process is not None
                if child.role == "workers" and not child.process.is_alive():
                    continue  # its workers' exits were reported; not restarted
                if not child.process.is_alive() and not stopping:
                    child.restarts += 1
                    say(f"scale-out: {child.role}-{child.index} (pid {child.process.pid}) "
                        f"exited with {child.process.exitcode}; starting it again")
                    time.sleep(RESTART_SECONDS)
                    start(child)
    finally:
        for child in children:
            if child.process is not None and child.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            if child.process is not None:
                child.process.join(max(0.1, deadline - time.monotonic()))
                if child.process.is_alive():
                    child.process.kill()
                    child.process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return port
