"""`create_app(config)`: one served model as an aiohttp application (standalone or a sub-app).

All state hangs off the application through `web.AppKey`s (see `keys.py`); nothing lives at module
level, so several models can be served by one process, each mounted with
``parent.add_subapp("/models/name/", create_app(config))``. Every URL handed out is built from the
app's named routes, which carry the mount prefix.

Lifecycle: ``on_startup`` prepares the validation chunks, starts the initial evaluation and the
periodic tick; ``on_shutdown`` closes the event streams; ``on_cleanup`` stops the tick and writes a
final checkpoint (so `web.run_app` stopping on SIGINT/SIGTERM leaves a checkpoint behind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from webnn.server.admin import add_admin_routes
from webnn.server.config import ServeConfig, load_parts
from webnn.server.coordinator import Coordinator
from webnn.server.errors import error_middleware
from webnn.server.events import EventBus
from webnn.server.keys import CONFIG, COORDINATOR, EVENTS, METRICS
from webnn.server.metrics import Metrics
from webnn.server.routes import add_protocol_routes
from webnn.server.static import add_static_routes

if TYPE_CHECKING:
    from webnn.cluster.settings import ClusterSettings

BODY_MARGIN = 2 << 20


def create_app(config: ServeConfig, cluster: ClusterSettings | None = None) -> web.Application:
    """Build the app for `config`; loads spec, data, strategy and any checkpoint in `state_dir`.

    Raises `ConfigError` (bad configuration, spec, data or strategy) or `StateError` (a state dir
    written for another model); both are `ValueError`s with a message naming what is wrong.
    With `cluster` (scale-out settings: needs the ``cluster`` extra) the app is one front-end
    of a scale-out run in Redis instead (docs/scale-out.md).
    """
    if cluster is not None:
        from webnn.cluster.embed import create_cluster_app

        return create_cluster_app(config, cluster)
    parts = load_parts(config)
    metrics = Metrics()
    events = EventBus()
    coordinator = Coordinator(config, parts, metrics, events)
    app = web.Application(
        middlewares=[error_middleware, metrics.middleware(), coordinator.join_middleware()],
        client_max_size=coordinator.layout.nbytes + BODY_MARGIN,
    )
    app[CONFIG] = config
    app[COORDINATOR] = coordinator
    app[METRICS] = metrics
    app[EVENTS] = events
    add_protocol_routes(app)
    add_admin_routes(app)
    assert config.client_dir is not None
    add_static_routes(app, config.client_dir)
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


async def _startup(app: web.Application) -> None:
    await app[COORDINATOR].start()


async def _shutdown(app: web.Application) -> None:
    app[EVENTS].close()


async def _cleanup(app: web.Application) -> None:
    await app[COORDINATOR].stop()
