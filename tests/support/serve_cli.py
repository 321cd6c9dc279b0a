"""A real ``wnn serve`` process for CLI tests: start it, read its banner, train through it.

Waits have generous deadlines that only guard against hanging (a busy 2-core machine is slow).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from support.processes import stop_process
from support.protocol_client import ProtocolClient

ROOT = Path(__file__).resolve().parents[2]
WNN = Path(sys.executable).parent / "wnn"
DIGITS_SPEC = ROOT / "model_specs" / "digits_mlp.json"
DIGITS_DATA = ROOT / "data_modules" / "digits.py"
BANNER_DEADLINE = 120.0


def wait_for(predicate: Callable[[], Any], what: str, deadline: float = 60.0) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline
    while not (value := predicate()):
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)
    return value


@dataclass
class ServeProcess:
    """A running ``wnn serve``; its output lines are collected by a thread."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    url: str = ""
    admin_token: str = ""

    def output(self) -> str:
        return "\n".join(self.lines)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def find(self, pattern: str) -> re.Match | None:
        return re.search(pattern, self.output())

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` and wait for the exit status (kill if it hangs)."""
        return stop_process(self.process, signum, timeout=60)


def start_serve(*args: str, url_label: str = "volunteer page") -> ServeProcess:
    """Run ``wnn serve ARGS --port 0`` and wait until it prints `url_label` and the admin token."""
    process = subprocess.Popen(
        [str(WNN), "serve", *args, "--port", "0", "--host", "127.0.0.1"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = ServeProcess(process)
    threading.Thread(target=served._pump, daemon=True).start()

    def banner() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"wnn serve exited with {process.returncode}:\n{served.output()}")
        return bool(served.find(rf"{url_label}:\s+http\S+") and served.find(r"admin token:\s+\S+"))

    try:
        wait_for(banner, "wnn serve to print its URL", BANNER_DEADLINE)
    except AssertionError:
        served.stop(signal.SIGKILL)
        raise
    served.url = served.find(rf"{url_label}:\s+(http\S+)").group(1)
    served.admin_token = served.find(r"admin token:\s+(\S+)").group(1)
    return served


def current_checkpoint_state(state_dir: Path) -> dict | None:
    """The ``state.json`` of the checkpoint ``CURRENT`` names, or None before the first one."""
    try:
        current = (state_dir / "CURRENT").read_text().strip()
        return json.loads((state_dir / current / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


async def train(url: str, updates: int, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Join `url`, submit `updates` train updates, answer evaluations; return (status, weights)."""
    rng = np.random.default_rng(seed)
    async with aiohttp.ClientSession() as http:
        client = ProtocolClient(http, url)
        await client.join(name="cli-test")
        done = 0
        while done < updates:
            answer = await client.train_once(rng)
            if answer is None:  # only evaluation work is waiting: do it, then train again
                await client.evaluate_all()
                continue
            assert answer.status == 200 and answer.body["accepted"], answer.body
            done += 1
        await client.evaluate_all()
        weights = await client.weights_array()
        status = (await client.get("api/v1/status")).body
        history = (await client.get("api/v1/history")).body["history"]
        await client.leave()
    return {**status, "history": history}, weights


async def snapshot(url: str) -> tuple[dict, np.ndarray]:
    return await train(url, updates=0)
