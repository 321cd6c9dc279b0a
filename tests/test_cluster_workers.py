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
from support.redis import (  # noqa: F401 (fixture)
    get_json,
    redis_server,
    start_run,
    wait_for_version,
)

pytestmark = pytest.mark.e2e
PER_PROCESS = ("capacity", "httpRefused", "traffic")
"""Status blocks of the front-end that answers (`capacity`, `httpRefused`), or counted by each
front-end and added to the run's every second (`traffic`): not compared across front-ends."""


def _get(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read(), dict(answer.headers)


def _status(server: subprocess.Popen, output: OutputPump, base: str) -> dict | None:
    """The run's status from `base`, None while nothing answers; fails at once (with the
    output) if the server exited."""
    assert server.poll() is None, output.text()
    try:
        return json.loads(_get(base + "api/v1/status")[0])
    except OSError:
        return None


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
            return _status(server, output, base)

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
        answers = {json.dumps({k: v for k, v in status().items()
                               if k not in ("elapsed", *PER_PROCESS)},
                              sort_keys=True) for _ in range(6)}
        assert status()["capacity"]["process"] in {"frontend-0", "frontend-1"}
        assert len(answers) == 1
        assert "front-end(s) on port" in output.text()
    finally:
        if worker is not None:
            worker.stop()
        code = stop_process(server)
    assert code == 0, output.text()


def test_node_workers_on_two_frontends_reach_a_validated_evaluation_and_end_on_max_merges(
        redis_server):  # noqa: F811
    """Two front-ends on their own ports and a merger; a Node worker (role any: training and
    evaluation) on each. The run validates evaluations (quorum 2: both workers agree), ends on
    --max-merges after its final evaluation, the workers exit on the end, and both front-ends
    answer the same history and status."""
    mergers, fronts = start_run(redis_server.url, "--strategy", "fedbuff", "--param", "k=2",
                                "--max-merges", "16")
    urls = [f.url for f in fronts]
    workers = []
    try:
        wait_for_version(redis_server.client(), "digits_mlp")
        workers = [start_worker(url, f"node-{i}") for i, url in enumerate(urls)]
        for worker in workers:
            code = worker.process.wait(240)
            assert code == 0, worker.output.text()
        statuses = [get_json(url, "api/v1/status") for url in urls]
        histories = [get_json(url, "api/v1/history")["history"] for url in urls]
        assert histories[0] == histories[1]
        history = histories[0]
        assert any(h["validated"] for h in history), history
        final = history[-1]
        assert final["final"] and final["evaluated"], final
        assert final["version"] == statuses[0]["version"]
        assert 0 <= final["valAccuracy"] <= 1
        for status in statuses:
            assert status["state"] == "ended"
            assert status["endReason"] == "max_merges=16 reached"
            assert status["merges"] >= 16
        strip = [{k: v for k, v in s.items() if k not in ("clients", *PER_PROCESS)}
                 for s in statuses]
        assert strip[0] == strip[1]
    finally:
        for worker in workers:
            worker.stop()
        for process in fronts + mergers:
            process.stop()


def test_local_workers_train_against_the_shared_port(redis_server):  # noqa: F811
    port = free_port()
    argv = [str(WNN), "serve", str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--redis",
            redis_server.url, "--processes", "2", "--strategy", "fedbuff", "--param", "k=2",
            "--port", str(port), "--local-workers", "2"]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = OutputPump(server.stdout)
    base = f"http://127.0.0.1:{port}/"
    try:
        def status() -> dict | None:
            return _status(server, output, base)

        wait_until(lambda: (status() or {}).get("merges", 0) >= 4, 240,
                   "the local workers' updates to be merged")
        assert (status() or {})["clients"] >= 1
        assert "[worker-1] started" in output.text() and "[worker-2] started" in output.text()
    finally:
        assert stop_process(server) == 0, output.text()
    assert "[worker-1]" in output.text()
