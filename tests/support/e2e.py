"""Helpers for the end-to-end tests: a real `wnn serve`, real Node workers, real headless Chromium.

Imported by the ``test_e2e_*`` modules (pytest puts ``tests/`` on ``sys.path``); holds no tests.
Waiting uses generous deadlines that only guard against hanging: no test asserts a duration.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
WNN = ROOT / ".venv" / "bin" / "wnn"
CLIENT_DIR = ROOT / "client_js"
WORKER = CLIENT_DIR / "bin" / "wnn-worker.js"
DIGITS_SPEC = ROOT / "model_specs" / "digits_mlp.json"
DIGITS_DATA = ROOT / "data_modules" / "digits.py"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], deadline_seconds: float, what: str,
               interval: float = 0.25) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline_seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what} after {deadline_seconds:.0f} s")
        time.sleep(interval)


class OutputPump:
    """Collect a child's output lines in a thread, so its pipe never fills up."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Server:
    """A running `wnn serve`: its base URL, admin token and output."""

    process: subprocess.Popen
    url: str
    admin_token: str
    port: int
    output: OutputPump

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict | None = None,
             token: str | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def status(self) -> dict:
        return self.get("api/v1/status")

    def history(self) -> list[dict]:
        return self.get("api/v1/history")["history"]

    def clients(self) -> list[dict]:
        return self.get("api/v1/clients")["clients"]

    def best_accuracy(self) -> float:
        return max((h["valAccuracy"] or 0.0 for h in self.history()), default=0.0)

    def stop(self) -> int:
        return stop_process(self.process)


def start_server(*extra: str, port: int = 0, deadline: float = 90.0,
                 spec: Path = DIGITS_SPEC) -> Server:
    """Start ``wnn serve <spec> --data digits`` (default spec digits_mlp) and wait for its banner
    (URL, admin token)."""
    argv = [str(WNN), "serve", str(spec), "--data", str(DIGITS_DATA), "--port", str(port),
            *extra]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = OutputPump(process.stdout)

    def banner() -> tuple[str, str] | None:
        text = output.text()
        url = re.search(r"volunteer page:\s+(\S+)", text)
        token = re.search(r"admin token:\s+(\S+)", text)
        if process.poll() is not None:
            raise AssertionError(f"wnn serve exited ({process.returncode}):\n{text}")
        return (url.group(1), token.group(1)) if url and token else None

    try:
        url, token = wait_until(banner, deadline, "wnn serve to print its URL")
    except AssertionError:
        process.kill()
        raise
    if not url.endswith("/"):
        url += "/"
    bound = int(re.search(r":(\d+)/", url).group(1))
    return Server(process=process, url=url, admin_token=token, port=bound, output=output)


@dataclass
class Worker:
    """A running ``wnn-worker.js``."""

    name: str
    process: subprocess.Popen
    output: OutputPump
    argv: list[str] = field(default_factory=list)

    def task_lines(self) -> list[str]:
        return [line for line in self.output.lines if line.startswith("task ")]

    def stop(self) -> int:
        """SIGTERM (the worker leaves), then wait; kill if it hangs."""
        return stop_process(self.process)


def start_worker(server_url: str, name: str, *extra: str) -> Worker:
    argv = ["node", str(WORKER), "--server", server_url, "--name", name, *extra]
    process = subprocess.Popen(argv, cwd=CLIENT_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    return Worker(name=name, process=process, output=OutputPump(process.stdout), argv=argv)


def client_by_name(server: Server, name: str) -> dict | None:
    return next((c for c in server.clients() if c.get("name") == name), None)


def launch_chromium(playwright):
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
