"""End to end: `wnn serve --strategy fedbuff_live --lr-scaling sqrt --local-steps-exponent 0.5`
with two headless Node workers: the tasks follow the two live clients (rate x sqrt(2), 4 or 1
local steps instead of 5), the workers train them with their kept optimiser and the model
learns."""

from __future__ import annotations

import re

import pytest
from support.e2e import client_by_name, start_server, start_worker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_two_workers_train_scaled_tasks_of_fedbuff_live():
    server = start_server("--strategy", "fedbuff_live", "--lr-scaling", "sqrt",
                          "--local-steps-exponent", "0.5")
    names = ["s-a", "s-b"]
    workers = [start_worker(server.url, name) for name in names]
    try:
        def scaled() -> dict | None:
            scaling = server.status()["taskScaling"]
            return scaling if scaling["clients"] == 2 else None

        scaling = wait_until(scaled, 240, "two live training clients")
        assert scaling["lrScaling"] == "sqrt" and scaling["localSteps"] == 4  # round(5/1.41)
        assert scaling["learningRate"] == pytest.approx(0.01 * 2 ** 0.5)

        def short_tasks() -> bool:
            steps = [int(m.group(1)) for w in workers for line in w.task_lines()
                     if (m := re.search(r" train v\d+ steps (\d+) ", line))]
            return bool(steps) and set(steps) <= {1, 4, 5} and 4 in steps

        wait_until(short_tasks, 240, "a worker to train a 4-step task")
        best = wait_until(lambda: (a := server.best_accuracy()) >= 0.8 and a, 420,
                          "validation accuracy 0.8")
        assert best >= 0.8
        assert server.status()["strategy"]["name"] == "fedbuff_live"
        for name in names:
            client = client_by_name(server, name)
            assert client is not None and client["updatesAccepted"] > 0, client
    finally:
        codes = [worker.stop() for worker in workers]
        server.stop()
    assert codes == [0, 0], "\n\n".join(w.output.text() for w in workers)
