"""End to end with headless Node workers sending 8-bit (q8) deltas and receiving float16 weights
against a real `wnn serve` (digits_mlp, digits data): they train digits to >= 0.9."""

from __future__ import annotations

import pytest
from test_e2e_support import client_by_name, start_server, start_worker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_q8_workers_train_digits_to_90_percent():
    server = start_server("--update-encoding", "q8", "--weights-encoding", "f16")
    names = ["q8-a", "q8-b", "q8-c"]
    workers = [start_worker(server.url, name, "--encoding", "q8", "--weights-encoding", "f16")
               for name in names]
    try:
        best = wait_until(lambda: (a := server.best_accuracy()) >= 0.9 and a, 420,
                          "validation accuracy 0.9")
        assert best >= 0.9
        for name in names:
            client = client_by_name(server, name)
            assert client is not None, f"{name} is not among the server's clients"
            assert client["encodings"] == {"update": "q8", "weights": "f16"}
            assert client["updatesAccepted"] > 0, f"{name} has no accepted update"
        traffic = server.status()["traffic"]
        assert set(traffic["updates"]) == {"q8"}, traffic
        params = server.get("api/v1/model")["totalParams"]
        # one byte per parameter plus the scales and the frame's header (4x fewer than float32)
        assert params < traffic["updates"]["q8"]["meanBytes"] < params * 1.1
        for worker in workers:
            assert "encodings q8/f16" in worker.output.text()
    finally:
        codes = [worker.stop() for worker in workers]
        server.stop()
    assert codes == [0, 0, 0], "\n\n".join(w.output.text() for w in workers)
