"""End to end in real headless Chromium (Debian's, driven by Playwright) against a real `wnn serve`:
the volunteer page trains and its updates are merged; the dashboard shows live data and its admin
actions work only with the admin token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from support.e2e import (
    ARTIFACTS,
    start_server,
    start_worker,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

pytest.importorskip("playwright.sync_api")  # the browser fixture (conftest) needs it


def browser_clients(server):
    return [c for c in server.clients() if c["kind"] == "browser" and c["updatesAccepted"] > 0]


def test_volunteer_page_trains_and_its_updates_are_merged(browser):
    server = start_server()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server.url + "?autostart=1")  # a lab run: no consent panel
        page.wait_for_function("() => globalThis.webnnPage && globalThis.webnnPage.backend",
                               timeout=120_000)
        backend = page.locator("#backend").inner_text()
        assert backend in ("webgl", "cpu"), backend
        assert page.locator("#toggle").inner_text() == "Stop"
        page.wait_for_function("() => globalThis.webnnPage.stats.updates >= 10", timeout=300_000)
        wait_until(lambda: browser_clients(server), 60, "the browser's merged updates")
        first = server.history()[0]["valAccuracy"]
        wait_until(lambda: server.best_accuracy() >= first + 0.2, 300,
                   "validation accuracy to rise by 0.2 from the browser's updates")
        # The page shows this device's contribution and the model's curve.
        page.wait_for_function(
            "() => document.querySelector('#updates').textContent !== '0'"
            " && document.querySelector('#version').textContent !== '-'"
            " && document.querySelector('#val-accuracy').textContent !== '-'"
            " && globalThis.webnnPage.history.length >= 2")
        assert page.locator("#clients").inner_text() not in ("", "-", "0")
        # Phone-sized screen: nothing wider than the viewport.
        assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "volunteer_page_phone.png"), full_page=True)

        # Stop stops contributing and leaves; Start joins again.
        page.click("#toggle")
        page.wait_for_function("() => globalThis.webnnPage.phase === 'stopped'")
        wait_until(lambda: not [c for c in server.clients() if c["kind"] == "browser"], 30,
                   "the stopped page to leave")
        page.click("#toggle")
        page.wait_for_function("() => globalThis.webnnPage.phase === 'running'")
        wait_until(lambda: [c for c in server.clients() if c["kind"] == "browser"], 30,
                   "the restarted page to join")
        # Closing the tab sends a leave.
        page.close(run_before_unload=True)
        wait_until(lambda: not [c for c in server.clients() if c["kind"] == "browser"], 30,
                   "the closed tab to leave")
        assert not errors, errors
    finally:
        context.close()
        server.stop()


def send_refused_update(server) -> str:
    """Join, take a train task and submit it with the wrong content type (refused 415
    ``wrong_content_type``), then leave; answers the error code."""
    _, joined = server.post("api/v1/join", {"client": {"kind": "python", "name": "refused"}})
    session = {"X-WebNN-Session": joined["token"], "Content-Type": "application/json"}

    def post(path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(server.url + path.lstrip("/"), headers=session,
                                         data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    task = wait_until(lambda: post("api/v1/tasks", {"role": "train"})[1]["task"], 60, "a task")
    status, answer = post(task["urls"]["submit"], {"weights": []})
    post("api/v1/leave", {})
    assert status == 415, answer
    return answer["error"]["code"]


def test_dashboard_shows_live_clients_and_guards_admin_actions(browser):
    server = start_server()
    assert send_refused_update(server) == "wrong_content_type"
    workers = [start_worker(server.url, name) for name in ("dash-1", "dash-2")]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.url + "dashboard")
        page.wait_for_function(
            "() => document.querySelectorAll('#client-rows tr').length === 2", timeout=120_000)
        # Live: the rows fill with updates and the merge count moves without a reload.
        page.wait_for_function(
            "() => [...document.querySelectorAll('#client-rows tr')]"
            ".every(tr => Number(tr.children[3].textContent.split(' ')[0]) > 0)", timeout=120_000)
        names = page.locator("#client-rows tr td:nth-child(2)").all_inner_texts()
        assert sorted(names) == ["dash-1", "dash-2"]
        merges = int(page.locator("#merges").inner_text())
        page.wait_for_function(
            f"() => Number(document.querySelector('#merges').textContent) > {merges}",
            timeout=120_000)
        assert page.locator("#strategy-name").inner_text() == server.status()["strategy"]["name"]
        # Refused updates by reason, from status.rejected.
        page.wait_for_function(
            "() => document.querySelector('#refusals tr[data-reason=wrong_content_type]')")
        assert page.locator(
            "#refusals tr[data-reason=wrong_content_type] td").all_inner_texts() == [
                "wrong_content_type", "1"]
        # "Last seen" uses the server's clock: a just-seen worker is a few seconds ago at most.
        seen = page.locator("#client-rows tr td:nth-child(9)").all_inner_texts()
        assert all(text.endswith(" s ago") and int(text.split()[0]) < 60 for text in seen), seen
        page.wait_for_function("() => globalThis.webnnDashboard.history.length >= 1")

        # Without a token, and with a wrong one, pause changes nothing.
        page.click("button[data-action=pause]")
        page.wait_for_function("() => globalThis.webnnDashboard.lastAdmin?.code === 'no_token'")
        page.fill("#admin-token", "not-the-admin-token")
        page.click("button[data-action=pause]")
        page.wait_for_function(
            "() => globalThis.webnnDashboard.lastAdmin?.code === 'admin_token_required'")
        assert "refused" in page.locator("#admin-message").inner_text()
        assert server.status()["state"] == "running"
        # With the token it pauses, and resumes.
        page.fill("#admin-token", server.admin_token)
        page.click("button[data-action=pause]")
        page.wait_for_function("() => globalThis.webnnDashboard.lastAdmin?.ok === true")
        assert server.status()["state"] == "paused"
        page.wait_for_function(
            "() => document.querySelector('#server-state').textContent === 'paused'")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        page.click("button[data-action=resume]")
        wait_until(lambda: server.status()["state"] == "running", 30, "resume")
    finally:
        page.close()
        for worker in workers:
            worker.stop()
        server.stop()
