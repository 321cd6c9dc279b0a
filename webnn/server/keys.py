"""The `web.AppKey`s under which `create_app` stores one model's state on its application."""

from __future__ import annotations

from aiohttp import web

from webnn.server.config import ServeConfig
from webnn.server.coordinator import Coordinator
from webnn.server.events import EventBus
from webnn.server.metrics import Metrics

CONFIG = web.AppKey("webnn_config", ServeConfig)
COORDINATOR = web.AppKey("webnn_coordinator", Coordinator)
METRICS = web.AppKey("webnn_metrics", Metrics)
EVENTS = web.AppKey("webnn_events", EventBus)
