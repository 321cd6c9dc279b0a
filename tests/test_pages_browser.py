"""The volunteer page and the dashboard in real headless Chromium (Debian's, driven by Playwright)
against a real `wnn serve` on loopback (issue 14, "pages that earn trust"): the page names the
project and its operator, asks before it uses the device and remembers the answer (nothing loads
or trains before), and shows connection loss, a pause and the end of the run as its main status;
the dashboard after the end (elapsed frozen, admin buttons disabled, end condition and progress,
parameters never null, one time origin); the styled multi-model index. Screenshots go to
test-artifacts/pages_*.png. Every wait is on an event (a page state, the server's state)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.e2e import (
    ARTIFACTS,
    DIGITS_DATA,
    DIGITS_SPEC,
    start_server,
    wait_until,
)
from support.serve_cli import start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

pytest.importorskip("playwright.sync_api")  # the browser fixture (conftest) needs it

PROJECT = {"name": "Digits for everyone", "operator": "Example Lab, University of Nowhere",
           "contact": "mailto:lab@example.org",
           "description": "We teach a small network to read handwritten digits, to show that "
                          "browsers can train a model together."}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
LONG = 300_000  # ms: a busy 2-core machine running SwiftShader WebGL


@pytest.fixture(scope="module")
def project_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "digits_project.json"
    path.write_text(json.dumps({**json.loads(DIGITS_SPEC.read_text()), "project": PROJECT}))
    return path


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"pages_{name}.png"), full_page=True)


def wait_phase(page, phase: str, timeout: int = LONG) -> None:
    page.wait_for_function("(p) => globalThis.webnnPage?.phase === p", arg=phase,
                           timeout=timeout)


def browsers_on(server) -> list[dict]:
    return [c for c in server.clients() if c["kind"] == "browser"]


def status_card(page) -> str:
    return page.locator("#status-card").inner_text()


CONTRAST = """(selectors) => {
    const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((c) => {
        c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length < 4 || c[3] > 0) return c;
        }
        return [255, 255, 255];
    };
    return selectors.flatMap((s) => [...document.querySelectorAll(s)])
        .filter((el) => el.offsetParent !== null && el.textContent.trim() && !el.disabled)
        .map((el) => {
            const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
            return [el.id || el.className || el.tagName,
                    (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
        });
}"""


def check_readable_and_accessible(page) -> None:
    """Phone width without sideways scrolling; a live status; every control named; text contrast
    of at least 4.5:1 (WCAG AA) for the status, the muted texts, links and buttons."""
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    ratios = page.evaluate(CONTRAST, ["h1", "#status-title", "#status-detail", ".muted", "a",
                                      "button", "dt", "dd"])
    assert ratios and all(ratio >= 4.5 for _, ratio in ratios), ratios
    assert page.locator("#status-title").get_attribute("aria-live") == "polite"
    assert page.evaluate("() => document.documentElement.lang") == "en"
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, select, input, a')]
        .filter(e => e.offsetParent !== null)
        .filter(e => !(e.innerText || e.getAttribute('aria-label') || e.labels?.length))
        .map(e => e.outerHTML)""")
    assert not unnamed, unnamed


def test_consent_is_asked_first_remembered_and_forgotten(browser, project_spec):
    server = start_server(spec=project_spec)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server.url)
        wait_phase(page, "consent", 120_000)
        # The project, its operator, contact and description, from the spec's project block.
        assert page.locator("#project-name").inner_text() == PROJECT["name"]
        assert page.locator("#operator-name").inner_text() == PROJECT["operator"]
        assert page.locator("#contact").get_attribute("href") == PROJECT["contact"]
        assert page.locator("#project-description").inner_text() == PROJECT["description"]
        consent = page.locator("#consent-text").inner_text()
        assert PROJECT["name"] in consent and PROJECT["operator"] in consent
        assert "processor" in consent
        # Nothing loads or trains before the answer, even once the page has read the status.
        page.wait_for_function("() => globalThis.webnnPage.status !== null", timeout=60_000)
        assert page.evaluate("() => typeof globalThis.tf") == "undefined"
        assert page.evaluate("() => globalThis.webnnPage.loop") is None
        assert browsers_on(server) == []
        check_readable_and_accessible(page)
        shot(page, "consent_phone")

        # "Not now" with the keyboard: nothing starts, and the answer is not stored.
        for _ in range(20):
            if page.evaluate("() => document.activeElement?.id") == "consent-no":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement?.id") == "consent-no"
        # the keyboard focus is visible
        assert page.evaluate(
            "() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
        page.keyboard.press("Enter")
        wait_phase(page, "stopped", 30_000)
        assert page.locator("#status-title").inner_text() == "Not contributing"
        assert page.evaluate("() => localStorage.getItem(webnnPage.consentKey)") is None
        assert page.evaluate("() => typeof globalThis.tf") == "undefined"

        # Start is a yes: it trains, and the answer is remembered.
        page.locator("#toggle").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => globalThis.webnnPage.stats?.updates >= 1", timeout=LONG)
        wait_phase(page, "running", 30_000)
        assert json.loads(page.evaluate(
            "() => localStorage.getItem(webnnPage.consentKey)"))["given"] is True
        wait_until(lambda: browsers_on(server), 60, "the page to join")

        # A later visit starts without asking.
        page.reload()
        page.wait_for_function("() => globalThis.webnnPage?.stats?.updates >= 1", timeout=LONG)
        assert page.locator("#consent").is_hidden()
        assert page.locator("#forget").is_visible()

        # Stop and forget: the page leaves, and asks again.
        page.click("#forget")
        wait_phase(page, "consent", 60_000)
        assert page.evaluate("() => localStorage.getItem(webnnPage.consentKey)") is None
        wait_until(lambda: not browsers_on(server), 60, "the page to leave after forget")
        page.reload()
        wait_phase(page, "consent", 120_000)
        assert not errors, errors
    finally:
        context.close()
        server.stop()


def test_connection_loss_is_the_main_status_and_the_page_recovers(browser, project_spec):
    server = start_server(spec=project_spec)
    page = browser.new_page(**PHONE)
    restarted = None
    try:
        page.goto(server.url + "?autostart=1")
        page.wait_for_function("() => globalThis.webnnPage?.stats?.updates >= 1", timeout=LONG)
        wait_phase(page, "running")
        port = server.port
        server.stop()
        wait_phase(page, "lost", 120_000)
        assert page.locator("#status-title").inner_text() == "Connection lost"
        assert re.fullmatch(r"retrying (in \d+ s|now…)",
                            page.locator("#status-detail").inner_text())
        assert "Contributing" not in status_card(page)
        assert page.locator("#message").inner_text() == ""
        shot(page, "connection_lost_phone")
        # The server comes back on the same port: the page carries on by itself.
        restarted = start_server(spec=project_spec, port=port)
        wait_phase(page, "running", LONG)
        wait_until(lambda: [c for c in browsers_on(restarted) if c["updatesAccepted"] > 0],
                   300, "the page's updates to reach the restarted server")
    finally:
        page.close()
        server.stop()
        if restarted is not None:
            restarted.stop()


def test_a_refusal_is_an_error_not_a_lost_connection(browser, project_spec):
    """A server that refuses to describe its model (a join token the page does not have) is not
    "connection lost": retrying would not help, and the page says why."""
    server = start_server("--join-token", "members-only-token", spec=project_spec)
    page = browser.new_page(**PHONE)
    try:
        page.goto(server.url)
        wait_phase(page, "error", 120_000)
        assert page.locator("#status-title").inner_text() == "Something went wrong"
        assert "join" in page.locator("#status-detail").inner_text().lower()
        assert page.evaluate("() => typeof globalThis.tf") == "undefined"
    finally:
        page.close()
        server.stop()


def test_paused_then_ended_and_the_dashboard_after_the_end(browser, project_spec):
    server = start_server("--strategy", "fedasync", "--max-merges", "40", spec=project_spec)
    page = browser.new_page(**PHONE)
    dashboard = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server.url + "?autostart=1")
        page.wait_for_function("() => globalThis.webnnPage?.stats?.updates >= 1", timeout=LONG)
        assert server.post("api/v1/admin/pause", token=server.admin_token)[0] == 200
        wait_phase(page, "paused", 120_000)
        assert page.locator("#status-title").inner_text() == "Paused by the project"
        assert "Contributing" not in status_card(page)
        shot(page, "paused_phone")
        assert server.post("api/v1/admin/resume", token=server.admin_token)[0] == 200
        wait_phase(page, "running", 120_000)

        wait_phase(page, "ended", 600_000)
        card = status_card(page)
        assert "Training has ended" in card
        assert "wait" not in (card + page.locator("#message").inner_text()).lower()
        assert page.locator("#toggle").is_hidden()
        assert server.status()["state"] == "ended"
        check_readable_and_accessible(page)
        shot(page, "ended_phone")
        # A visitor who comes after the end is told so and asked nothing; nothing loads.
        late = browser.new_page(**PHONE)
        try:
            late.goto(server.url)
            wait_phase(late, "ended", 120_000)
            assert late.locator("#consent").is_hidden()
            assert late.evaluate("() => typeof globalThis.tf") == "undefined"
        finally:
            late.close()

        dashboard.goto(server.url + "dashboard")
        dashboard.wait_for_function(
            "() => globalThis.webnnDashboard?.status?.state === 'ended'"
            " && globalThis.webnnDashboard.history.length >= 2", timeout=120_000)
        # elapsed stops at the end: two more status answers later it reads the same
        count = dashboard.evaluate("() => webnnDashboard.statusCount")
        elapsed = dashboard.locator("#elapsed").inner_text()
        dashboard.wait_for_function(f"() => webnnDashboard.statusCount >= {count + 2}",
                                    timeout=120_000)
        assert dashboard.locator("#elapsed").inner_text() == elapsed
        # pause, resume and end are disabled after the end; export (the final model) is not
        for action in ("pause", "resume", "end"):
            assert dashboard.locator(f"button[data-action={action}]").is_disabled(), action
        assert dashboard.locator("button[data-action=export]").is_enabled()
        # the end condition with its progress
        end = dashboard.locator("#end-conditions [data-end=maxMerges]").inner_text()
        assert "max merges" in end and re.search(r"\d+ of 40", end), end
        # fedasync's a and b show their defaults, nothing reads null
        params = dashboard.locator("#strategy-params").inner_text()
        assert "null" not in params
        assert dashboard.locator(
            "#strategy-params tr[data-param=a] td:nth-child(2)").inner_text() == "0.5"
        # one time origin: both charts count seconds from the run's start (status.elapsed)
        status = dashboard.evaluate("() => webnnDashboard.status")
        curve = dashboard.evaluate("() => webnnDashboard.curve.loss.map(p => p.x)")
        merges = dashboard.evaluate("() => webnnDashboard.merges.map(p => p.x)")
        history = server.history()
        validated = [h["elapsed"] for h in history if h["valLoss"] is not None]
        assert curve == pytest.approx(validated, abs=0.051)
        assert max(merges) == pytest.approx(status["elapsed"])
        assert max(curve) <= status["elapsed"] + 0.1
        # the main curve takes the width of the page's grid
        widths = dashboard.evaluate("""() => [
            document.querySelector('#curve').getBoundingClientRect().width,
            document.querySelector('main').getBoundingClientRect().width]""")
        assert widths[0] >= 0.8 * widths[1], widths
        shot(dashboard, "dashboard_ended")
    finally:
        page.close()
        dashboard.close()
        server.stop()


INDEX_CONFIG = """
data = "{data}"
seed = 5

[[models]]
name = "digits"
spec = "{spec}"
strategy = "average"

[[models]]
name = "project"
spec = "{project}"
strategy = "fedasync"
"""


def test_multi_model_index_is_styled_like_the_pages(browser, project_spec, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(INDEX_CONFIG.format(data=DIGITS_DATA, spec=DIGITS_SPEC,
                                          project=project_spec))
    served = start_serve("--config", str(config), url_label="index")
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    try:
        page.goto(served.url)
        cards = page.locator("section.card")
        assert cards.count() == 2
        style = page.evaluate("""() => {
            const card = getComputedStyle(document.querySelector('section.card'));
            return [card.borderRadius, card.backgroundColor,
                    getComputedStyle(document.body).fontFamily]}""")
        assert style[0] == "10px" and style[1] == "rgb(255, 255, 255)", style
        assert "serif" not in style[2].replace("sans-serif", ""), style
        project = page.locator("section.card[data-model=project]")
        assert PROJECT["name"] in project.inner_text()
        assert PROJECT["operator"] in project.inner_text()
        shot(page, "index")
        project.get_by_role("link", name="help train").click()
        wait_phase(page, "consent", 120_000)
        assert page.locator("#project-name").inner_text() == PROJECT["name"]
    finally:
        page.close()
        served.stop()
