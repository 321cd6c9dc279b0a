"""Headless Node worker processes for a comparison run, with churn and crash supervision.

A `ClientSlot` is one volunteer: it runs ``node client_js/bin/wnn-worker.js`` with the slot's role,
backend, speed factor and attack, writes the worker's output to a log file, and (with churn) stops
the worker after an exponential online time and starts a fresh one after an exponential offline
time. A worker that exits by itself with a non-zero status is restarted; a slot whose workers keep
crashing raises `WorkerCrashed` with the tail of the log, which fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from webnn.compare.config import Churn
from webnn.node_worker import WorkerArgs, WorkerCommand, die_with_parent

MAX_CRASHES = 3
"""A slot fails the run after this many worker crashes."""


class WorkerCrashed(RuntimeError):
    """A client's worker kept exiting with an error."""


@dataclass
class SlotStats:
    starts: int = 0
    crashes: int = 0
    churn_events: int = 0


@dataclass
class ClientSlot:
    """One client of a run (see module docstring)."""

    args: WorkerArgs
    command: WorkerCommand
    log_path: Path
    churn: Churn | None = None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    stats: SlotStats = field(default_factory=SlotStats)
    _process: asyncio.subprocess.Process | None = None

    def argv(self) -> list[str]:
        return self.args.argv(self.command)

    @property
    def name(self) -> str:
        return self.args.name

    async def _start(self) -> asyncio.subprocess.Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.stats.starts + 1}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL))
        self.stats.starts += 1
        return self._process

    async def run(self) -> None:
        """Keep a worker running (with churn) until cancelled; raises `WorkerCrashed`."""
        try:
            while True:
                process = await self._start()
                online = (self.rng.exponential(self.churn.mean_online_seconds)
                          if self.churn else None)
                try:
                    code = await asyncio.wait_for(process.wait(), online)
                except TimeoutError:
                    assert self.churn is not None  # only churn sets a timeout
                    await self.stop(signal.SIGKILL if self.churn.signal == "kill"
                                    else signal.SIGTERM)
                    self.stats.churn_events += 1
                    await asyncio.sleep(self.rng.exponential(self.churn.mean_offline_seconds))
                    continue
                if code == 0:  # the worker finished (the server ended): stay idle
                    await asyncio.Event().wait()
                self.stats.crashes += 1
                if self.stats.crashes >= MAX_CRASHES:
                    raise WorkerCrashed(f"worker {self.name} exited with status {code} "
                                        f"{self.stats.crashes} times; last output:\n"
                                        f"{self.log_tail()}")
                await asyncio.sleep(0.5)
        finally:
            await self.stop(signal.SIGTERM)

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Send `sig` to the worker, then SIGKILL if it has not exited after `grace` seconds."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.rstrip().splitlines()[-lines:])
