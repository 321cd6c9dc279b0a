"""``wnn serve --redis URL --processes 2`` (two front-ends on one port, an active and a standby
merger, all forked by one supervisor) trained by a real headless Node worker."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest
from support.e2e import (
    DIGITS_DATA,
    DIGITS_SPEC,
    WNN,
    OutputPump,
    free_port,
    start_worker,
    wait_until,
)
from support.processes import stop_process
from support.redis import redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read(), dict(answer.headers)


def test_a_node_worker_trains_against_two_frontends_and_metrics_name_every_process(
        redis_server):  # noqa: F811
    port = free_port()
    argv = [str(WNN), "serve", str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--redis",
            redis_server.url, "--processes", "2", "--strategy", "fedbuff", "--param", "k=2",
            "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = OutputPump(server.stdout)
    base = f"http://127.0.0.1:{port}/"
    worker = None
    try:
        def status() -> dict | None:
            assert server.poll() is None, output.text()
            try:
                return json.loads(_get(base + "api/v1/status")[0])
            except OSError:
                return None

        wait_until(status, 120, "the front-ends to answer")
        worker = start_worker(base, "node-1", "--role", "train", "--max-tasks", "6")
        wait_until(lambda: (status() or {}).get("merges", 0) >= 4, 180,
                   "the worker's updates to be merged")
        assert status()["version"] >= 2  # fedbuff k=2: a version per two updates
        code = worker.process.wait(180)
        assert code == 0, worker.output.text()

        # /metrics from any front-end lists every process (2 front-ends, 2 mergers).
        def labels() -> set[str]:
            text = _get(base + "metrics")[0].decode()
            return set(re.findall(r'webnn_merges_total\{process="([^"]+)"\}', text))

        wait_until(lambda: {"frontend-0", "frontend-1", "merger-0", "merger-1"} <= labels(),
                   30, "every process in /metrics")
        # the same status whichever front-end answers (new connection each time)
        answers = {json.dumps({k: v for k, v in status().items() if k != "elapsed"},
                              sort_keys=True) for _ in range(6)}
        assert len(answers) == 1
        assert "front-end(s) on port" in output.text()
    finally:
        if worker is not None:
            worker.stop()
        code = stop_process(server)
    assert code == 0, output.text()
