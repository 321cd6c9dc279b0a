"""End to end with headless Node workers against a real `wnn serve` (digits_mlp, digits data)."""

from __future__ import annotations

import pytest
from support.e2e import client_by_name, start_server, start_worker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_three_workers_train_digits_to_90_percent():
    server = start_server()
    names = ["w-a", "w-b", "w-c"]
    workers = [start_worker(server.url, name) for name in names]
    try:
        best = wait_until(lambda: (a := server.best_accuracy()) >= 0.9 and a, 420,
                          "validation accuracy 0.9")
        assert best >= 0.9
        # Every worker's updates were merged.
        clients = {name: client_by_name(server, name) for name in names}
        for name, client in clients.items():
            assert client is not None, f"{name} is not among the server's clients"
            assert client["kind"] == "node"
            assert client["updatesAccepted"] > 0, f"{name} has no accepted update"
        assert server.status()["merges"] >= 3
        history = server.history()
        assert history[0]["valAccuracy"] < 0.5  # the seeded initial weights are a poor model
        # the Node evaluator sends per-class counts: each entry has the worst class's accuracy
        last = history[-1]
        assert len(last["classAccuracy"]) == 10, last
        assert last["worstClassAccuracy"] == min(last["classAccuracy"]) <= last["valAccuracy"]
        for worker in workers:
            assert worker.process.poll() is None, worker.output.text()
            assert worker.task_lines(), f"{worker.name} logged no task"
    finally:
        codes = [worker.stop() for worker in workers]
        server.stop()
    # SIGTERM makes a worker leave and exit 0, and the server forgets it.
    assert codes == [0, 0, 0], "\n\n".join(w.output.text() for w in workers)
    for worker in workers:
        assert any(line.startswith("left (stopped)") for line in worker.output.lines)


def test_worker_survives_a_server_restart(tmp_path):
    state = tmp_path / "state"
    server = start_server("--state-dir", str(state))
    worker = start_worker(server.url, "survivor", "--role", "train")
    restarted = None
    try:
        wait_until(lambda: server.status()["merges"] >= 5, 180, "5 merges before the restart")
        assert server.stop() == 0
        restarted = start_server("--state-dir", str(state), port=server.port)
        merges_saved = restarted.status()["merges"]
        assert merges_saved >= 5  # resumed from the checkpoint, not from scratch
        wait_until(lambda: restarted.status()["merges"] >= merges_saved + 5, 180,
                   "5 more merges after the restart")
        survivor = client_by_name(restarted, "survivor")
        assert survivor is not None and survivor["updatesAccepted"] >= 1
        assert worker.process.poll() is None, worker.output.text()
        code = worker.stop()
        assert code == 0, worker.output.text()
        assert client_by_name(restarted, "survivor") is None  # it left on SIGTERM
    finally:
        worker.stop()
        server.stop()
        if restarted is not None:
            restarted.stop()
