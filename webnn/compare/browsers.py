"""Volunteers as real browser tabs: headless Chromium (Playwright) opening the volunteer page.

One Chromium per run (`Chromium`), one isolated browser context per client (`BrowserSlot`, the
same interface as `ClientSlot`: `name`, `stats`, `run()`). Opening
``<server>/?role=train&name=..&backend=..`` starts contributing. Churn closes the tab: ``kill``
first cuts the tab's network (a phone that went away: no goodbye reaches the server), ``term``
closes it normally (the page says goodbye). A tab whose page reports an error
(``webnnPage.phase == "error"``) or crashes is reopened; one that keeps failing raises
`WorkerCrashed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np

from webnn.compare.config import Churn
from webnn.compare.workers import MAX_CRASHES, SlotStats, WorkerCrashed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")
WATCH_SECONDS = 1.0


class Chromium:
    """A headless Chromium for one run; `close()` ends it and every tab."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        self.executable = executable
        self._playwright: Any = None
        self.browser: Any = None

    async def start(self) -> Chromium:
        try:
            from playwright.async_api import async_playwright
        except ImportError as exc:
            raise RuntimeError("worker = \"chromium\" needs the playwright package "
                               "(pip install playwright)") from exc
        self._playwright = await async_playwright().start()
        self.browser = await self._playwright.chromium.launch(
            executable_path=self.executable, headless=True, args=list(CHROMIUM_ARGS))
        return self

    async def close(self) -> None:
        if self.browser is not None:
            with contextlib.suppress(Exception):
                await self.browser.close()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()


@dataclass
class BrowserSlot:
    """One volunteer tab (see module docstring)."""

    name: str
    chromium: Chromium
    server_url: str
    role: str = "train"
    backend: str = "cpu"
    churn: Churn | None = None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    stats: SlotStats = field(default_factory=SlotStats)
    last_error: str = ""
    overlap: bool | None = None  # the page's ?overlap=1|0 (None: the page's default)

    @property
    def page_url(self) -> str:
        query = {"role": self.role, "name": self.name, "backend": self.backend,
                 "autostart": "1"}  # a lab run: the tab starts without the consent panel
        if self.overlap is not None:
            query["overlap"] = "1" if self.overlap else "0"
        return self.server_url + "?" + urlencode(query)

    async def run(self) -> None:
        """Keep a tab open (with churn) until cancelled; raises `WorkerCrashed`."""
        while True:
            context = await self.chromium.browser.new_context()
            try:
                page = await context.new_page()
                crashed = asyncio.Event()
                page.on("crash", lambda *_, event=crashed: event.set())
                await page.goto(self.page_url)
                self.stats.starts += 1
                online = (self.rng.exponential(self.churn.mean_online_seconds)
                          if self.churn else None)
                failed = await self._watch(page, crashed, online)
                if not failed:  # churn: the volunteer leaves
                    if self.churn is not None and self.churn.signal == "kill":
                        await context.route("**/*", lambda route: route.abort())
                    await page.close(run_before_unload=self.churn is not None
                                     and self.churn.signal == "term")
                    self.stats.churn_events += 1
            finally:
                with contextlib.suppress(Exception):
                    await context.close()
            if failed:
                self.stats.crashes += 1
                if self.stats.crashes >= MAX_CRASHES:
                    raise WorkerCrashed(f"browser tab {self.name} failed {self.stats.crashes} "
                                        f"times; last error: {self.last_error}")
                await asyncio.sleep(0.5)
            elif self.churn is not None:  # not failed: only churn ends a page
                await asyncio.sleep(self.rng.exponential(self.churn.mean_offline_seconds))

    async def _watch(self, page: Any, crashed: asyncio.Event, online: float | None) -> bool:
        """Wait `online` seconds (None: forever); True when the page crashed or shows an error."""
        loop = asyncio.get_running_loop()
        until = None if online is None else loop.time() + online
        while until is None or loop.time() < until:
            if crashed.is_set():
                self.last_error = "the page crashed"
                return True
            state = await page.evaluate(
                "() => globalThis.webnnPage ? [webnnPage.phase, webnnPage.error] : null")
            if state and state[0] == "error":
                self.last_error = str(state[1])
                return True
            step = WATCH_SECONDS if until is None else min(WATCH_SECONDS, until - loop.time())
            await asyncio.sleep(max(step, 0))
        return False
