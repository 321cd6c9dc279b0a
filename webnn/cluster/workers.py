"""Local workers beside a scale-out run (``wnn serve --redis URL --local-workers N``): the same
headless Node workers the single process starts (`webnn.server.workers.LocalWorkers`), pointed
at the port the front-ends share. With ``--role all`` they run in one more child of the
supervisor (not restarted: a worker that exits is reported, as in the single process); with
``--role frontend`` in the front-end's own event loop. A merger starts none.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from webnn.node_worker import worker_dir
from webnn.server.workers import LocalWorkers, WorkerError, check_worker_setup, worker_specs

PORT_WAIT_SECONDS = 60.0
"""How long the workers' process waits for the shared port to accept connections."""

MakeWorkers = Callable[[str], LocalWorkers]


def worker_group(config: Any, process: dict[str, Any], say: Callable[[str, str, str], None]
                 ) -> MakeWorkers | None:
    """A factory of the `LocalWorkers` for base URL ``http://host:port`` (None without
    ``local_workers``); raises `WorkerError` when Node or the worker files are missing."""
    count = int(process.get("local_workers") or 0)
    if count <= 0:
        return None
    command = check_worker_setup(worker_dir(config.client_dir))

    def make(base: str) -> LocalWorkers:
        specs = worker_specs({"model": f"{base}/"}, count, process["worker_backend"],
                             config.join_token)
        return LocalWorkers(command=command, specs=specs, say=say, extra_args=("--quiet",))

    return make


def wait_for_port(host: str, port: int, seconds: float = PORT_WAIT_SECONDS) -> bool:
    """Until `host`:`port` accepts a connection (True) or `seconds` passed (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.1)
    return False


async def run_workers(make: MakeWorkers, base: str, stop: asyncio.Event) -> None:
    """Start the workers, wait for `stop`, stop them (SIGTERM, then SIGKILL)."""
    group = make(base)
    await group.start()
    try:
        await stop.wait()
    finally:
        await group.stop()


def workers_main(make: MakeWorkers, base: str, host: str, port: int) -> None:
    """The supervisor's workers child: once the port answers, run the workers until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
    connect = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    if not wait_for_port(connect, port):
        return

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await run_workers(make, base, stop)

    asyncio.run(main())


__all__ = ["MakeWorkers", "WorkerError", "run_workers", "worker_group", "workers_main"]
