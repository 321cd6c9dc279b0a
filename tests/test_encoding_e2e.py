"""End to end with headless Node workers sending 8-bit (q8) deltas and receiving float16 weights
against a real `wnn serve` (digits_mlp, digits data): they train digits to >= 0.9."""

from __future__ import annotations

import pytest
from support.e2e import client_by_name, start_server, start_worker, wait_until

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


def test_volunteer_page_sends_q8_deltas_and_receives_f16_weights():
    """The page (real headless Chromium) offers every encoding; the server's default picks 8-bit
    deltas and float16 weights, and its updates are merged."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from pathlib import Path

    from support.e2e import CHROMIUM, launch_chromium

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    server = start_server()
    with playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "?role=train&autostart=1")
            page.wait_for_function("() => globalThis.webnnPage?.stats?.updates >= 5",
                                   timeout=300_000)
            browser_clients = [c for c in server.get("api/v1/clients")["clients"]
                               if c["kind"] == "browser"]
            assert browser_clients and all(
                c["encodings"] == {"update": "q8", "weights": "f16"} for c in browser_clients)
            traffic = server.status()["traffic"]
            assert traffic["updates"]["q8"]["count"] >= 5
            assert traffic["weights"]["f16"]["count"] >= 1
            assert not errors, errors
        finally:
            browser.close()
            server.stop()
