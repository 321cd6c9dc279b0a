"""A real `wnn serve` process: banner, a Python client training through it, SIGTERM writes a
checkpoint that a restart resumes, SIGKILL loses at most one checkpoint interval, and bad settings
fail before serving.

`ServeProcess`/`start_serve` are imported by the other ``test_cli_*`` modules (pytest puts
``tests/`` on ``sys.path``). Waits have generous deadlines that only guard against hanging.
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
import pytest
from click.testing import CliRunner
from processes import stop_process
from protocol_client import ProtocolClient

from webnn.cli import main

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture
def processes() -> Any:
    """Collects started servers and kills any a test left running."""
    started: list[ServeProcess] = []
    yield started
    for served in started:
        served.stop(signal.SIGKILL)


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


async def test_sigterm_writes_a_checkpoint_that_a_restart_resumes(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    state = tmp_path / "state"
    args = (str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state), "--seed", "3",
            "--checkpoint-every-merges", "1000")
    first = start_serve(*args)
    processes.append(first)
    assert first.url.startswith("http://127.0.0.1:") and first.url.endswith("/")
    assert first.find(r"dashboard:\s+http://127\.0\.0\.1:\d+/dashboard")

    before, weights_before = await train(first.url, updates=4)
    assert before["merges"] == 4 and before["version"] >= 1 and before["steps"] > 0
    assert before["history"]  # at least the initial model's evaluation
    assert current_checkpoint_state(state) is None  # nothing written yet at this interval

    assert first.stop(signal.SIGTERM) == 0, first.output()
    assert "SIGTERM received" in first.output()
    saved = current_checkpoint_state(state)
    assert saved is not None and saved["merges"] == 4

    second = start_serve(*args)
    processes.append(second)
    after, weights_after = await snapshot(second.url)
    for key in ("version", "steps", "merges"):
        assert after[key] == before[key], key
    assert after["history"] == before["history"]
    np.testing.assert_array_equal(weights_after, weights_before)
    assert second.stop() == 0


async def test_sigkill_resumes_from_the_last_checkpoint(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    state = tmp_path / "state"
    args = (str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state),
            "--checkpoint-every-merges", "1")
    first = start_serve(*args)
    processes.append(first)
    at_three, weights_three = await train(first.url, updates=3)
    wait_for(lambda: (current_checkpoint_state(state) or {}).get("merges") == 3,
             "the checkpoint of merge 3")
    at_four, weights_four = await train(first.url, updates=1, seed=1)
    first.stop(signal.SIGKILL)  # no cleanup: whatever checkpoint was complete is what survives

    second = start_serve(*args)
    processes.append(second)
    resumed, weights = await snapshot(second.url)
    assert resumed["merges"] in (3, 4)  # at most one checkpoint interval (1 merge) lost
    expected, expected_weights = (at_three, weights_three) if resumed["merges"] == 3 else (
        at_four, weights_four)
    assert (resumed["version"], resumed["steps"]) == (expected["version"], expected["steps"])
    np.testing.assert_array_equal(weights, expected_weights)
    assert second.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "no-such-strategy"], "no-such-strategy"),
        (["--strategy", "fedasync", "--param", "nonsense=1"], "nonsense"),
        (["--data", "no_such_module_xyz"], "no_such_module_xyz"),
        (["--spec-file-instead"], "No such option"),
    ],
)
def test_bad_values_exit_before_serving(args: list[str], message: str) -> None:
    argv = [str(DIGITS_SPEC), "--data", str(DIGITS_DATA), *args, "--port", "0"]
    result = CliRunner().invoke(main, ["serve", *argv])  # in process: the same code, faster
    assert result.exit_code != 0
    assert message in result.output
    assert "listening" not in result.output


def test_invalid_spec_names_the_json_path(tmp_path: Path) -> None:
    spec = json.loads(DIGITS_SPEC.read_text())
    spec["layers"][0]["units"] = -3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    done = subprocess.run([str(WNN), "serve", str(bad), "--data", str(DIGITS_DATA)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "$.layers[0].units" in done.stderr, done.stderr
