"""Several models in one process: a parent app mounting each model's `create_app` sub-app.

Each model lives at ``/models/<name>/`` (its volunteer page, dashboard and ``api/v1/``); the parent
answers ``GET /`` with an index page listing every model (name, link, version, active clients) and
``GET /models.json`` with the same facts as JSON: ``{"models": [{"name", "url", "dashboard",
"state", "version", "steps", "merges", "clients"}]}`` (URLs are absolute paths).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from webnn.server.errors import error_middleware
from webnn.server.keys import COORDINATOR
from webnn.server.wire import json_response


@dataclass(frozen=True)
class MountedModel:
    """A model app and the path prefix it is mounted at (``/models/<name>/``)."""

    name: str
    prefix: str
    app: web.Application

    def summary(self) -> dict:
        """The index entry: links plus the live counters of the model's coordinator."""
        status = self.app[COORDINATOR].status()
        return {
            "name": self.name, "url": self.prefix, "dashboard": f"{self.prefix}dashboard",
            "state": status["state"], "version": status["version"], "steps": status["steps"],
            "merges": status["merges"], "clients": status["clients"],
        }


MODELS = web.AppKey("webnn_models", tuple[MountedModel, ...])


def create_multi_app(apps: dict[str, web.Application]) -> web.Application:
    """Mount each ``name -> app`` at ``/models/<name>/`` under a parent app with an index page."""
    if not apps:
        raise ValueError("create_multi_app needs at least one model app")
    parent = web.Application(middlewares=[error_middleware])  # JSON errors outside the mounts
    parent.router.add_get("/", index_page)
    parent.router.add_get("/models.json", models_json)
    mounted = []
    for name, app in apps.items():
        prefix = f"/models/{name}/"
        # "/models/x" -> "/models/x/" so the page's relative URLs resolve; registered before the
        # sub-app, whose prefix resource would otherwise answer it with a 404
        parent.router.add_get(prefix.rstrip("/"), _redirect_to(prefix))
        parent.add_subapp(prefix, app)
        mounted.append(MountedModel(name=name, prefix=prefix, app=app))
    parent[MODELS] = tuple(mounted)
    return parent


def _redirect_to(location: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location)

    return handler


async def models_json(request: web.Request) -> web.Response:
    return json_response({"models": [m.summary() for m in request.app[MODELS]]})


async def index_page(request: web.Request) -> web.Response:
    rows = []
    for model in request.app[MODELS]:
        s = model.summary()
        link = html.escape(s["url"].lstrip("/"))
        rows.append(
            f'<tr><td><a href="{link}">{html.escape(s["name"])}</a></td>'
            f'<td><a href="{link}dashboard">dashboard</a></td>'
            f"<td>{html.escape(str(s['state']))}</td><td>{int(s['version'])}</td>"
            f"<td>{int(s['merges'])}</td><td>{int(s['clients'])}</td></tr>"
        )
    body = INDEX_TEMPLATE.replace("{rows}", "\n".join(rows))
    return web.Response(text=body, content_type="text/html")


INDEX_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>webnn: models</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 48rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }
td:nth-child(n+4) { text-align: right; }
</style></head>
<body>
<h1>Models training here</h1>
<p>Open a model to help train it in this browser tab.</p>
<table>
<thead><tr><th>model</th><th></th><th>state</th><th>version</th><th>merges</th><th>clients</th></tr>
</thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
