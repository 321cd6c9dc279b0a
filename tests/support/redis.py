"""A real ``redis-server`` for the scale-out tests, and ``wnn serve --redis`` processes.

`redis_server` (a pytest fixture: import it into the test module) starts
``redis-server --port P --bind 127.0.0.1 --save ''`` on a free loopback port (never a system
service) and stops it afterwards; the test is skipped when the binary is missing (``make redis``
installs it). `ClusterProcess` runs one role of a run (``--role frontend`` / ``merger``) as its
own process, so a test can SIGKILL exactly that one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from support.e2e import DIGITS_DATA, DIGITS_SPEC, WNN, OutputPump, free_port, wait_until
from support.processes import stop_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    output: OutputPump

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):  # a synchronous client, for checks from the test
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)


def start_redis() -> RedisServer:
    if not shutil.which(REDIS_SERVER):
        pytest.skip("redis-server is not installed (make redis)")
    port = free_port()
    process = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = OutputPump(process.stdout)
    server = RedisServer(process, port, output)

    def ready() -> bool:
        assert process.poll() is None, output.text()
        try:
            return bool(server.client().ping())
        except Exception:
            return False

    wait_until(ready, 30, "redis-server to answer PING", interval=0.05)
    return server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        stop_process(server.process)


@dataclass
class ClusterProcess:
    """One ``wnn serve --redis`` process (a role, or the whole supervisor)."""

    role: str
    process: subprocess.Popen
    output: OutputPump
    port: int | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> int:
        return stop_process(self.process)


def start_role(redis_url: str, role: str, *extra: str, port: int | None = None,
               spec: str = str(DIGITS_SPEC), data: str = str(DIGITS_DATA),
               wait: bool = True) -> ClusterProcess:
    """``wnn serve SPEC --data DATA --redis URL --role ROLE`` (a front-end on `port`, a free
    one by default); with `wait`, returns once a front-end listens."""
    if role != "merger" and port is None:
        port = free_port()
    argv = [str(WNN), "serve", spec, "--data", data, "--redis", redis_url, "--role", role,
            "--keep-stream", "--quiet", *extra]
    if port is not None:
        argv += ["--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = OutputPump(process.stdout)
    found = ClusterProcess(role, process, output, port, argv)
    if wait and role != "merger":
        def listening() -> bool:
            assert process.poll() is None, output.text()
            return any(re.search(r"listening on", line) for line in output.lines)

        wait_until(listening, 120, f"{role} to listen", interval=0.1)
    return found


def wait_for_version(client, run: str, deadline: float = 120.0) -> None:
    """Until the run's merger has published a version."""
    wait_until(lambda: client.hget(f"wnn:{run}:current", "version") is not None, deadline,
               "the merger's first version", interval=0.1)


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds


ADMIN_TOKEN = "cluster-admin-token"


def start_run(redis_url: str, *extra: str, frontends: int = 2,
              mergers: int = 1) -> tuple[list[ClusterProcess], list[ClusterProcess]]:
    """`mergers` merger processes and `frontends` front-ends (each on its own port, so a test
    can ask each one) of one run, all with `extra` settings and the admin token
    `ADMIN_TOKEN`; returns once every front-end listens."""
    common = ("--admin-token", ADMIN_TOKEN, *extra)
    started = [start_role(redis_url, "merger", *common) for _ in range(mergers)]
    fronts = [start_role(redis_url, "frontend", *common) for _ in range(frontends)]
    return started, fronts


def get_json(url: str, path: str, token: str | None = None) -> dict:
    """GET `path` of a front-end as JSON (urllib; no session)."""
    import json
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url + path, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def post_json(url: str, path: str, token: str | None = None) -> tuple[int, dict]:
    """POST ``{}`` to `path` of a front-end; (status, JSON answer), errors included."""
    import json
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
