"""Admin actions (pause, resume, end), model export, Prometheus metrics and server-sent events."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from webnn.server.events import stream_events
from webnn.server.export import model_json
from webnn.server.http import require_admin, require_reader
from webnn.server.keys import COORDINATOR, EVENTS, METRICS
from webnn.server.wire import json_response


async def pause(request: web.Request) -> web.Response:
    require_admin(request)
    coordinator = request.app[COORDINATOR]
    coordinator.pause()
    return json_response(coordinator.status())


async def resume(request: web.Request) -> web.Response:
    require_admin(request)
    coordinator = request.app[COORDINATOR]
    coordinator.resume()
    return json_response(coordinator.status())


async def end(request: web.Request) -> web.Response:
    require_admin(request)
    coordinator = request.app[COORDINATOR]
    coordinator.end("ended by the admin")
    return json_response(coordinator.status())


async def export_model_json(request: web.Request) -> web.Response:
    """The current model's ``model.json``; its weights path ``weights.bin`` resolves next to it."""
    require_admin(request)
    coordinator = request.app[COORDINATOR]
    return json_response(model_json(coordinator.spec, "weights.bin"),
                         headers={"X-WebNN-Version": str(coordinator.model.version)},
                         envelope=False)


async def export_weights(request: web.Request) -> web.Response:
    require_admin(request)
    version, steps, data = request.app[COORDINATOR].weights(None)
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"X-WebNN-Version": str(version), "X-WebNN-Steps": str(steps)})


async def metrics(request: web.Request) -> web.Response:
    coordinator = request.app[COORDINATOR]
    registry = request.app[METRICS]
    registry.active_clients.set(len(coordinator.sessions))
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def events(request: web.Request) -> web.StreamResponse:
    require_reader(request)
    return await stream_events(request, request.app[EVENTS], request.app[COORDINATOR].status())


def add_admin_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/admin/pause", pause, name="admin_pause")
    r.add_post("/api/v1/admin/resume", resume, name="admin_resume")
    r.add_post("/api/v1/admin/end", end, name="admin_end")
    r.add_get("/api/v1/export/model.json", export_model_json, name="export_model")
    r.add_get("/api/v1/export/weights.bin", export_weights, name="export_weights")
    r.add_get("/api/v1/events", events, name="events")
    r.add_get("/metrics", metrics, name="metrics")
