"""The headless Node worker (``bin/wnn-worker.js`` of the client) as a child process of Python.

The worker and the TF.js it loads come with webnn (`webnn.bundled`: the wheel's copy, or the
checkout's ``client_js`` after ``npm ci``).

Shared by ``wnn serve --local-workers`` (`webnn.server.workers`) and ``wnn compare``
(`webnn.compare.workers`): finding node and the script, the worker's command line, and the
pre-exec hook that ties a worker's life to its parent's.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from webnn import bundled

BACKENDS = ("cpu", "wasm")
WORKER_SCRIPT = Path("bin") / "wnn-worker.js"
_PR_SET_PDEATHSIG = 1


def worker_dir(client_dir: Path | None = None) -> Path:
    """The client folder to run the worker from: `client_dir` when it holds the worker script
    (``bin/wnn-worker.js``), else the bundled client (`webnn.bundled.client_dir`: the installed
    package's copy, or the checkout's ``client_js``). A customised client (``--client-dir``) may
    hold only the page."""
    if client_dir is not None and (Path(client_dir) / WORKER_SCRIPT).is_file():
        return Path(client_dir)
    return bundled.client_dir()


class WorkerSetupError(RuntimeError):
    """Node, the worker script or its installed TF.js is missing; the message says how to fix it."""


@dataclass(frozen=True)
class WorkerCommand:
    """The node executable and the worker script it runs."""

    node: str
    script: Path

    @classmethod
    def find(cls, client_dir: Path, node: str | None = None) -> WorkerCommand:
        """Locate node on PATH and the worker in `client_dir`, with TF.js installed beside it."""
        node_path = shutil.which(node or "node")
        if node_path is None:
            raise WorkerSetupError("Node.js (node >= 20) is needed on PATH; none was found")
        script = Path(client_dir) / WORKER_SCRIPT
        if not script.is_file():
            raise WorkerSetupError(f"the headless worker {script} does not exist")
        modules = Path(client_dir) / "node_modules"
        if not (modules / "@tensorflow" / "tfjs").is_dir():
            raise WorkerSetupError(f"TF.js is not installed in {modules}; run `npm ci` in "
                                   f"{client_dir} (or `make setup`)")
        return cls(node_path, script)

    def help_text(self) -> str:
        """The worker's ``--help`` output."""
        done = subprocess.run([self.node, str(self.script), "--help"], capture_output=True,
                              text=True, timeout=60, check=False)
        return done.stdout + done.stderr


@dataclass(frozen=True)
class WorkerArgs:
    """One worker's options; `argv` renders the worker's command line (see its ``--help``)."""

    server_url: str
    name: str
    role: str = "any"
    backend: str = "cpu"
    speed: float = 1.0
    attack: str | None = None
    attack_scale: float = 1.0
    join_token: str | None = None
    reset_optimizer: bool = False
    encoding: str | None = None  # the only update encoding offered at join (None: all)
    weights_encoding: str | None = None  # the only weights encoding offered (None: all)
    volunteer_id: str | None = None  # sent at join: keeps this client's data shard across restarts
    overlap: bool | None = None  # fetch the next task while computing (None: worker default)

    def argv(self, command: WorkerCommand) -> list[str]:
        argv = [command.node, str(command.script), "--server", self.server_url,
                "--role", self.role, "--backend", self.backend, "--name", self.name]
        if self.speed != 1.0:
            argv += ["--speed", f"{self.speed:g}"]
        if self.attack:
            argv += ["--attack", self.attack, "--attack-scale", f"{self.attack_scale:g}"]
        if self.join_token:
            argv += ["--join-token", self.join_token]
        if self.reset_optimizer:
            argv.append("--reset-optimizer")
        if self.encoding:
            argv += ["--encoding", self.encoding]
        if self.weights_encoding:
            argv += ["--weights-encoding", self.weights_encoding]
        if self.volunteer_id:
            argv += ["--volunteer-id", self.volunteer_id]
        if self.overlap is not None:
            argv.append("--overlap" if self.overlap else "--no-overlap")
        return argv


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send `sig` to the child when its parent dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); None elsewhere. Without it a killed server or
    comparison would leave workers behind.
    """
    if not sys.platform.startswith("linux"):
        return None

    def hook() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return hook
