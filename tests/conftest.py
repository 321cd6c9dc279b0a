"""Shared fixtures: the digits model and data, serve configs, and apps running on loopback ports."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPEC = REPO / "model_specs" / "digits_mlp.json"
DIGITS_DATA = REPO / "data_modules" / "digits.py"


@pytest.fixture(scope="session")
def load_script() -> Callable[[str, Path], Any]:
    """Import a script that is not a package module (a `bench/` script, a data module) from its
    file under `name`, registered in `sys.modules` (dataclasses and pickling need it there)."""

    def load(name: str, path: Path) -> Any:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def digits_spec() -> Any:
    """The shipped digits_mlp spec."""
    from webnn.spec import load_spec

    return load_spec(DIGITS_SPEC)


@pytest.fixture(scope="session")
def digits_data() -> str:
    """The shipped digits data module (1438 training, 359 validation examples of 8x8 images)."""
    return str(DIGITS_DATA)


@pytest.fixture
def make_config(digits_spec: Any, digits_data: Any, tmp_path: Path) -> Callable[..., Any]:
    """``make_config(**overrides)``: a `ServeConfig` for the digits model (in memory by default)."""
    from webnn.server.config import ServeConfig

    def make(**overrides: Any) -> ServeConfig:
        values: dict[str, Any] = {"spec": digits_spec, "data": digits_data, "strategy": "average",
                                  "seed": 1, "eval_chunk_size": 120, "eval_every_merges": 5,
                                  "eval_every_seconds": 1e9, "tick_seconds": 0.05,
                                  "admin_token": "admin-token-123"}
        values.update(overrides)
        return ServeConfig(**values)

    return make


@dataclasses.dataclass
class Served:
    """An app listening on a loopback port; `url` is its base URL (with the mount prefix)."""

    app: web.Application
    url: str
    runner: web.AppRunner

    stopped: bool = False

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(app, prefix=None)``: run `app` (mounted under `prefix`) on 127.0.0.1."""
    running: list[Served] = []

    async def start(app: web.Application, prefix: str | None = None) -> Served:
        root = app
        if prefix:
            root = web.Application()
            root.add_subapp(prefix, app)
        runner = web.AppRunner(root)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        served = Served(app=app, url=f"http://{host}:{port}{prefix or '/'}", runner=runner)
        running.append(served)
        return served

    yield start
    for served in reversed(running):
        await served.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def processes() -> Any:
    """Collects the ``wnn serve`` processes a test starts and kills any it left running."""
    import signal

    started: list[Any] = []
    yield started
    for served in started:
        served.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def browser() -> Any:
    """Debian's headless Chromium through Playwright, one per test module (see support.e2e)."""
    from playwright import sync_api
    from support.e2e import CHROMIUM, launch_chromium

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    with sync_api.sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()
