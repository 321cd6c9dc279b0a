"""The volunteer page's backend in real headless Chromium against a real `wnn serve`: WebGPU where
the browser gives an adapter, else WebGL, else CPU (client_js/src/backend.js). Headless Chromium
here gives no WebGPU adapter, so the page falls back, reports the backend it chose and trains;
a page whose `navigator.gpu` hands out an adapter that cannot make a device loads the served
WebGPU bundle, fails to start it and falls back the same way (with overlap on: `?overlap=1`)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from support.e2e import start_server, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

pytest.importorskip("playwright.sync_api")  # the browser fixture (conftest) needs it

# A navigator.gpu whose adapter cannot make a device: TF.js's webgpu backend registers (it looks
# for navigator.gpu) and fails when it starts.
BROKEN_GPU = """
Object.defineProperty(Navigator.prototype, 'gpu', {configurable: true, get() {
  return {requestAdapter: async () => ({features: new Set(), limits: {},
    requestDevice: async () => { throw new Error('no device for this test'); }})};
}});
"""


@pytest.fixture(scope="module")
def server():
    server = start_server()
    yield server
    server.stop()


def trains_with(server, page, query: str) -> str:
    """Open the page with `query`, wait for 3 of its updates to be accepted; its backend."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + query)
    page.wait_for_function("() => globalThis.webnnPage && globalThis.webnnPage.backend",
                           timeout=120_000)
    page.wait_for_function("() => globalThis.webnnPage.stats.updates >= 3", timeout=300_000)
    backend = page.evaluate("() => globalThis.webnnPage.backend")
    assert page.locator("#backend").inner_text() == backend
    name = query.split("name=")[1].split("&")[0]
    mine = wait_until(lambda: next((c for c in server.clients() if c["name"] == name
                                    and c["updatesAccepted"] >= 3), None),
                      60, f"{name}'s accepted updates")
    assert mine["backend"] == backend  # what join reported is what trains
    assert not errors, errors
    return backend


def test_without_a_webgpu_adapter_the_page_falls_back_and_trains(browser, server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "?autostart=0")
        adapter = page.evaluate(
            "async () => Boolean(navigator.gpu && await navigator.gpu.requestAdapter())")
        backend = trains_with(server, page, "?autostart=1&name=plain")
        assert backend == ("webgpu" if adapter else "webgl") or backend == "cpu", (adapter, backend)
        # the WebGPU bundle is loaded only when an adapter exists
        loaded = page.evaluate("() => Boolean(globalThis.tf.findBackend('webgpu'))")
        assert loaded == adapter
    finally:
        context.close()


def test_a_webgpu_adapter_without_a_device_falls_back_to_webgl_with_overlap(browser, server):
    model = json.loads(urllib.request.urlopen(server.url + "api/v1/model", timeout=30).read())
    bundle = model["urls"]["tfjsWebgpu"]
    assert bundle == "/static/tfjs-webgpu/tf-backend-webgpu.min.js"
    with urllib.request.urlopen(server.url + bundle.lstrip("/"), timeout=30) as response:
        assert response.status == 200 and len(response.read()) > 100_000
    context = browser.new_context()
    context.add_init_script(BROKEN_GPU)
    page = context.new_page()
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text))
    try:
        backend = trains_with(server, page, "?autostart=1&overlap=1&name=broken-gpu")
        assert backend in ("webgl", "cpu"), backend
        assert page.evaluate("() => globalThis.webnnPage.loop.overlap") is True
        # the served bundle loaded and registered webgpu, which then failed to start
        assert page.evaluate("() => globalThis.tf.findBackend('webgpu') === null"), \
            "webgpu should have no instance after failing"
        assert any("webgpu failed" in text for text in warnings), warnings
    finally:
        context.close()
