"""The volunteer page, the dashboard and the browser libraries, served from ``client_js``.

``GET /`` -> ``src/index.html``; ``GET /dashboard`` -> ``src/dashboard.html``; ``/static/client/``
-> ``src/``; ``/static/tfjs/``, ``/static/tfjs-wasm/``, ``/static/chart/`` -> the ``dist`` folders
in ``node_modules``. Pages use relative URLs, so they work under a mount prefix. ``GET
/config.json`` tells a page where TF.js is (the local copy, or `tfjs_url` when configured).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from webnn.server.errors import ProtocolError
from webnn.server.keys import CONFIG

STATIC_DIRS = {
    "static_client": ("/static/client", "src"),
    "static_tfjs": ("/static/tfjs", "node_modules/@tensorflow/tfjs/dist"),
    "static_tfjs_wasm": ("/static/tfjs-wasm", "node_modules/@tensorflow/tfjs-backend-wasm/dist"),
    "static_chart": ("/static/chart", "node_modules/chart.js/dist"),
}
PAGES = {"index": ("/", "src/index.html"), "dashboard": ("/dashboard", "src/dashboard.html")}


def static_urls(request: web.Request) -> dict[str, str]:
    """Where a page finds TF.js, its wasm backend and the chart library (prefix included)."""
    router = request.app.router
    tfjs_url = request.app[CONFIG].tfjs_url
    return {
        "tfjs": tfjs_url or str(router["static_tfjs"].url_for(filename="tf.min.js")),
        "tfjsWasm": str(router["static_tfjs_wasm"].url_for(filename="tf-backend-wasm.min.js")),
        "chart": str(router["static_chart"].url_for(filename="chart.umd.js")),
    }


def _missing(path: Path) -> web.Handler:
    async def handler(request: web.Request) -> web.Response:
        raise ProtocolError(404, "not_found",
                            f"{path} does not exist on the server (run `npm ci` in client_js, or "
                            "set client_dir)")
    return handler


def _page(path: Path) -> web.Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise ProtocolError(404, "not_found", f"{path} does not exist on the server")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    return handler


async def config_json(request: web.Request) -> web.Response:
    return web.json_response({"protocol": 1, "urls": static_urls(request),
                              "api": str(request.app.router["status"].url_for()).rsplit(
                                  "status", 1)[0]})


def add_static_routes(app: web.Application, client_dir: Path) -> None:
    for name, (prefix, sub) in STATIC_DIRS.items():
        directory = client_dir / sub
        if directory.is_dir():
            app.router.add_static(prefix, directory, name=name)
        else:
            app.router.add_get(prefix + "/{filename:.*}", _missing(directory), name=name)
    for name, (route, sub) in PAGES.items():
        app.router.add_get(route, _page(client_dir / sub), name=name)
    app.router.add_get("/config.json", config_json, name="config")
