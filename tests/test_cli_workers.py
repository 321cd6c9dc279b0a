"""`wnn serve --local-workers`: a Node worker started beside the server trains the model with no
browser open, its output is prefixed, and stopping the server stops it; missing parts are clear
errors before serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from support.serve_cli import (
    DIGITS_DATA,
    DIGITS_SPEC,
    ROOT,
    WNN,
    ServeProcess,
    start_serve,
    wait_for,
)

from webnn.server.workers import WorkerError, check_worker_setup

WORKER = ROOT / "client_js" / "bin" / "wnn-worker.js"


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.e2e
@pytest.mark.skipif(not WORKER.is_file(), reason="client_js/bin/wnn-worker.js does not exist yet")
def test_one_local_worker_makes_merges_happen(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--local-workers", "1",
                         "--state-dir", str(tmp_path / "state"))
    processes.append(served)
    assert served.find(r"starting 1 local worker")
    pid = int(wait_for(lambda: served.find(r"\[worker-1\] started \(pid (\d+)\)"),
                       "the worker to start").group(1))
    wait_for(lambda: get_json(served.url + "api/v1/status")["merges"] >= 2,
             "two merges from the local worker", deadline=300)
    names = [c.get("name") for c in get_json(served.url + "api/v1/clients")["clients"]]
    assert "worker-1" in names
    # the worker's own lines come through with its prefix
    assert len([line for line in served.lines if "[worker-1] " in line]) > 1

    assert served.stop(signal.SIGTERM) == 0, served.output()
    assert served.find(r"\[worker-1\] exited with status")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_missing_worker_script_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkerError,
                       match=r"--local-workers: the headless worker .*wnn-worker\.js does not"):
        check_worker_setup(tmp_path)


def test_missing_node_is_a_clear_error_before_serving(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no node on PATH
    done = subprocess.run([str(WNN), "serve", str(DIGITS_SPEC), "--data", str(DIGITS_DATA),
                           "--local-workers", "1", "--port", "0"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode != 0
    assert "--local-workers: Node.js (node >= 20) is needed on PATH" in done.stderr
    assert "listening" not in done.stdout


def test_local_workers_keep_their_names_as_volunteer_ids() -> None:
    """With a data partition, a restarted `wnn serve --local-workers` gives each worker back its
    shard: the worker's name is sent as its volunteer id."""
    from webnn.server.workers import worker_specs

    specs = worker_specs({"digits": "http://127.0.0.1:1/"}, 2, "cpu")
    assert [(s.name, s.volunteer_id) for s in specs] == [("worker-1", "worker-1"),
                                                         ("worker-2", "worker-2")]
    from webnn.node_worker import WorkerCommand

    argv = specs[0].argv(WorkerCommand("node", Path("wnn-worker.js")))
    assert argv[argv.index("--volunteer-id") + 1] == "worker-1"
