"""Local headless Node workers started beside `wnn serve` (``--local-workers N``).

Each worker is ``node client_js/bin/wnn-worker.js --server URL --backend B --name NAME``. Its stdout
and stderr lines are echoed with a ``[NAME]`` prefix. Workers run in their own session (a Ctrl+C in
the terminal reaches only the server, which then stops the workers while it still answers, so they
can leave cleanly) and, on Linux, get SIGTERM if the server process dies without stopping them.
Stopping sends SIGTERM, waits up to a grace period, then kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from webnn.server.config import default_client_dir

BACKENDS = ("cpu", "wasm")
WORKER_SCRIPT = Path("bin") / "wnn-worker.js"


class WorkerError(RuntimeError):
    """Local workers cannot be started (no node, no worker script, no installed TF.js)."""


@dataclass(frozen=True)
class WorkerSetup:
    """The node executable and worker script that local workers run."""

    node: str
    script: Path


def check_worker_setup(client_dir: Path | None = None, node: str | None = None) -> WorkerSetup:
    """Find node and the worker script; `WorkerError` says what is missing and how to fix it."""
    client_dir = Path(client_dir) if client_dir is not None else default_client_dir()
    node_path = shutil.which(node or "node")
    if node_path is None:
        raise WorkerError(
            "--local-workers needs Node.js (node >= 20) on PATH; none was found. "
            "Install Node.js or run without --local-workers."
        )
    script = client_dir / WORKER_SCRIPT
    if not script.is_file():
        raise WorkerError(f"--local-workers needs the worker script {script}; it does not exist")
    if not (client_dir / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        raise WorkerError(
            f"--local-workers needs TF.js installed in {client_dir / 'node_modules'}; "
            f"run `npm ci` in {client_dir} (or `make setup`)"
        )
    return WorkerSetup(node=node_path, script=script)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class WorkerSpec:
    """What one local worker runs against."""

    name: str
    server_url: str
    backend: str = "cpu"
    role: str = "any"
    join_token: str | None = None

    def argv(self, setup: WorkerSetup) -> list[str]:
        argv = [setup.node, str(setup.script), "--server", self.server_url,
                "--role", self.role, "--backend", self.backend, "--name", self.name]
        return argv + (["--join-token", self.join_token] if self.join_token else [])


@dataclass
class LocalWorkers:
    """A group of local worker processes: `start()` them, `stop()` them (SIGTERM, then kill)."""

    setup: WorkerSetup
    specs: list[WorkerSpec]
    echo: Callable[[str], None] = print
    grace_seconds: float = 5.0
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _pumps: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        for spec in self.specs:
            process = await asyncio.create_subprocess_exec(
                *spec.argv(self.setup),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            self.processes[spec.name] = process
            self.echo(f"[{spec.name}] started (pid {process.pid}) -> {spec.server_url}")
            for stream in (process.stdout, process.stderr):
                assert stream is not None
                self._pumps.append(asyncio.create_task(self._pump(spec.name, stream)))
            self._pumps.append(asyncio.create_task(self._watch(spec.name, process)))

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.echo(f"[{name}] {line.decode('utf-8', 'replace').rstrip()}")

    async def _watch(self, name: str, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self.echo(f"[{name}] exited with status {code}")

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
) -> list[WorkerSpec]:
    """`count` workers per served model; names are ``worker-<i>`` or ``<model>-worker-<i>``."""
    if backend not in BACKENDS:
        raise WorkerError(f"--worker-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    several = len(base_urls) > 1
    specs = []
    for model, url in base_urls.items():
        for i in range(1, count + 1):
            name = f"{model}-worker-{i}" if several else f"worker-{i}"
            specs.append(WorkerSpec(name=name, server_url=url, backend=backend,
                                    join_token=join_token))
    return specs
