"""Embedding a scale-out run: ``create_app(config, cluster=ClusterSettings(...))`` (or
`create_cluster_app`) gives an aiohttp application that is one front-end of the run in Redis,
mountable like the single process's app (``parent.add_subapp("/models/x/", app)``).

With ``role="all"`` (the default) the application also runs a merger in the same event loop
(active, or standby when another merger holds the lock), so one embedding process is a whole
run; with ``role="frontend"`` it is a front-end only and the mergers run elsewhere (``wnn serve
--redis URL --role merger``). ``role="merger"`` is refused: a merger serves no HTTP.

Lifecycle: ``on_startup`` starts the merger (if any), then the front-end, which waits for the
run's first published version; ``on_cleanup`` stops both.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from webnn.cluster.frontend import Frontend, create_frontend_app
from webnn.cluster.keys import RunKeys
from webnn.cluster.merger import Merger
from webnn.cluster.settings import ClusterSettings, ClusterSettingsError
from webnn.server.config import ServeConfig, load_parts

MERGER_TASK = web.AppKey("webnn_cluster_merger_task", asyncio.Task)
MERGER_STOP = web.AppKey("webnn_cluster_merger_stop", asyncio.Event)


def create_cluster_app(config: ServeConfig, settings: ClusterSettings) -> web.Application:
    """One front-end of the run `settings` names (and a merger, with role ``all``)."""
    from webnn.cluster.connection import connect

    if settings.role == "merger":
        raise ClusterSettingsError(["role: an embedded app is a front-end ('frontend' or "
                                    "'all'); run a merger with wnn serve --redis URL --role "
                                    "merger"], "ClusterSettings")
    parts = load_parts(config)
    keys = RunKeys(settings.run or parts.spec.name)
    label = settings.label("frontend")
    frontend = Frontend(config, parts, settings, connect(settings.redis_url), keys, label)
    # a given process label names the front-end; its merger's label must differ (metrics,
    # the processes table)
    merger_label = settings.label("merger")
    if merger_label == label:
        merger_label = f"{label}-merger"
    app = create_frontend_app(frontend)

    async def startup(app: web.Application) -> None:
        if settings.role == "all":
            merger = Merger(config, load_parts(config), settings,
                            connect(settings.redis_url), keys, merger_label)
            stop = asyncio.Event()
            app[MERGER_STOP] = stop
            app[MERGER_TASK] = asyncio.create_task(_run_merger(merger, stop))
        await frontend.start()

    async def cleanup(app: web.Application) -> None:
        await frontend.stop()
        if MERGER_TASK in app:
            app[MERGER_STOP].set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(app[MERGER_TASK], 10)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


async def _run_merger(merger: Merger, stop: asyncio.Event) -> None:
    try:
        await merger.run(stop)
    finally:
        await merger.redis.aclose()
