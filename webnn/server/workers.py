"""Local headless Node workers started beside `wnn serve` (``--local-workers N``).

Each worker is ``node client_js/bin/wnn-worker.js --server URL --backend B --name NAME`` plus
`LocalWorkers.extra_args` (``--quiet`` unless the server is verbose: no per-task lines). Its lines
go to `LocalWorkers.say` with the worker's name as their source: stdout lines as information, stderr
lines (problems, retries, crashes) as warnings. Workers run in their own session (a Ctrl+C in
the terminal reaches only the server, which then stops the workers while it still answers, so they
can leave cleanly) and, on Linux, get SIGTERM if the server process dies without stopping them.
Stopping sends SIGTERM, waits up to a grace period, then kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from webnn.node_worker import BACKENDS, WorkerArgs, WorkerCommand, WorkerSetupError, die_with_parent
from webnn.server.config import default_client_dir


class WorkerError(RuntimeError):
    """Local workers cannot be started (no node, no worker script, no installed TF.js)."""


def check_worker_setup(client_dir: Path | None = None, node: str | None = None) -> WorkerCommand:
    """Find node and the worker script; `WorkerError` says what is missing and how to fix it."""
    try:
        return WorkerCommand.find(client_dir or default_client_dir(), node)
    except WorkerSetupError as exc:
        raise WorkerError(f"--local-workers: {exc}") from None


def print_line(source: str, message: str, level: str = "info") -> None:
    """The default `LocalWorkers.say`: ``[source] message`` on stdout."""
    tag = "" if level == "info" else f"{level.upper()}: "
    print(f"[{source}] {tag}{message}", flush=True)


@dataclass
class LocalWorkers:
    """A group of local worker processes: `start()` them, `stop()` them (SIGTERM, then kill).
    `say(source, message, level)` receives every line (level "info" or "warning")."""

    command: WorkerCommand
    specs: list[WorkerArgs]
    say: Callable[[str, str, str], None] = print_line
    extra_args: Sequence[str] = ()
    grace_seconds: float = 5.0
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _pumps: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        for spec in self.specs:
            process = await asyncio.create_subprocess_exec(
                *spec.argv(self.command), *self.extra_args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
            self.processes[spec.name] = process
            self.say(spec.name, f"started (pid {process.pid}) -> {spec.server_url}", "info")
            for stream, level in ((process.stdout, "info"), (process.stderr, "warning")):
                assert stream is not None
                self._pumps.append(asyncio.create_task(self._pump(spec.name, stream, level)))
            self._pumps.append(asyncio.create_task(self._watch(spec.name, process)))

    async def _pump(self, name: str, stream: asyncio.StreamReader, level: str) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.say(name, text, level)

    async def _watch(self, name: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self.say(name, f"exited with status {code}", "info" if code == 0 else "warning")

    async def stop(self) -> None:
        """SIGTERM every running worker, wait `grace_seconds`, SIGKILL the rest, reap all."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if running:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in running], timeout=self.grace_seconds
            )
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            for process in running:
                await process.wait()
        # Let the output pumps drain what the workers wrote last, then end them.
        if self._pumps:
            await asyncio.wait(self._pumps, timeout=1.0)
        for pump in self._pumps:
            pump.cancel()
        self._pumps.clear()


def worker_specs(
    base_urls: dict[str, str], count: int, backend: str, join_token: str | None = None
) -> list[WorkerArgs]:
    """`count` workers per served model; names are ``worker-<i>`` or ``<model>-worker-<i>``, and
    each name is also the worker's volunteer id, so with a data partition a restarted server's
    workers train on the same shards as before."""
    if backend not in BACKENDS:
        raise WorkerError(f"--worker-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    several = len(base_urls) > 1
    specs = []
    for model, url in base_urls.items():
        for i in range(1, count + 1):
            name = f"{model}-worker-{i}" if several else f"worker-{i}"
            specs.append(WorkerArgs(server_url=url, name=name, backend=backend,
                                    join_token=join_token, volunteer_id=name))
    return specs
