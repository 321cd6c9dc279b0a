"""Several models in one process: a parent app mounting each model's `create_app` sub-app.

Each model lives at ``/models/<name>/`` (its volunteer page, dashboard and ``api/v1/``); the parent
answers ``GET /`` with an index page listing every model (project, operator, description, state,
version, merges, active clients, links to its page and dashboard; styled with the client's
``style.css``) and ``GET /models.json`` with the same facts as JSON: ``{"models": [{"name",
"url", "dashboard", "state", "version", "steps", "merges", "clients", "project"}]}`` (URLs are
absolute paths; ``project`` as in the model's status answer).
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
            "project": status["project"],
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
    """The index: one card per model (project, operator, state, counters, links), styled with the
    first model's ``static/client/style.css`` (every mount serves the same client)."""
    models = request.app[MODELS]
    cards = [_card(model) for model in models]
    style = html.escape(models[0].prefix.lstrip("/") + "static/client/style.css")
    body = INDEX_TEMPLATE.replace("{style}", style).replace("{cards}", "\n".join(cards))
    return web.Response(text=body, content_type="text/html",
                        headers={"Cache-Control": "no-cache"})


def _card(model: MountedModel) -> str:
    s = model.summary()
    project = s["project"]
    link = html.escape(s["url"].lstrip("/"))
    title = html.escape(project["name"] or s["name"])
    who = (f'<p class="muted">run by {html.escape(project["operator"])}</p>'
           if project["operator"] else "")
    about = (f'<p>{html.escape(project["description"])}</p>' if project["description"] else "")
    state = html.escape(str(s["state"]))
    return (
        f'<section class="card" data-model="{html.escape(s["name"])}">'
        f'<h2><a href="{link}">{title}</a></h2>{who}{about}'
        f'<dl class="stats"><div><dt>state</dt><dd class="state {state}">{state}</dd></div>'
        f'<div><dt>version</dt><dd>{int(s["version"])}</dd></div>'
        f'<div><dt>merges</dt><dd>{int(s["merges"])}</dd></div>'
        f'<div><dt>active clients</dt><dd>{int(s["clients"])}</dd></div></dl>'
        f'<p class="row links"><a class="button" href="{link}">help train</a>'
        f'<a href="{link}dashboard">dashboard</a>'
        f'<span class="muted">model {html.escape(s["name"])}</span></p></section>'
    )


INDEX_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>webnn: models</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{style}">
</head>
<body>
<header>
<h1>Models training here</h1>
<p>Open a model to read what it is for and who runs it; the page asks before it uses your
device.</p>
</header>
<main class="index">
{cards}
</main>
</body></html>
"""
