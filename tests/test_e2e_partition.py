"""End to end: `wnn serve --partition` with headless Node workers that send --volunteer-id; a
worker killed and started again (a churn restart) keeps its shard."""

from __future__ import annotations

import pytest
from support.e2e import client_by_name, start_server, start_worker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _trained(server, name: str) -> dict | None:
    client = client_by_name(server, name)
    return client if client is not None and client["updatesAccepted"] >= 1 else None


def test_a_restarted_worker_keeps_its_shard():
    server = start_server("--partition", "dirichlet", "--partition-alpha", "0.3",
                          "--partition-shards", "3")
    workers = []
    try:
        partition = server.status()["partition"]
        assert (partition["kind"], partition["shards"], partition["alpha"]) == (
            "dirichlet", 3, 0.3)
        first = start_worker(server.url, "slot-1", "--role", "train",
                             "--volunteer-id", "slot-1")
        workers.append(first)
        shard = wait_until(lambda: _trained(server, "slot-1"), 180, "slot-1 trained")["shard"]
        assert shard is not None
        first.process.kill()  # a vanished volunteer, as a churn restart does
        first.process.wait()
        other = start_worker(server.url, "anonymous", "--role", "train")
        workers.append(other)
        other_shard = wait_until(lambda: _trained(server, "anonymous"), 180,
                                 "anonymous trained")["shard"]
        assert other_shard != shard  # slot-1's shard stays reserved for it
        again = start_worker(server.url, "slot-1b", "--role", "train",
                             "--volunteer-id", "slot-1")
        workers.append(again)
        assert wait_until(lambda: _trained(server, "slot-1b"), 180,
                          "slot-1 back")["shard"] == shard
        assert server.status()["partition"]["volunteers"] == 1
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
