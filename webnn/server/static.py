"""The volunteer page, the dashboard and the browser libraries, served from ``client_js``.

``GET /`` -> ``src/index.html``; ``GET /dashboard`` -> ``src/dashboard.html``; ``/static/client/``
-> ``src/``; ``/static/tfjs/``, ``/static/tfjs-wasm/``, ``/static/tfjs-webgpu/``, ``/static/chart/``
-> the ``dist`` folders
in ``node_modules``. A customised client folder (``--client-dir``) without those ``dist`` folders
gets the bundled client's (`webnn.bundled.client_dir`), so it need only hold ``src/``. An installed
wheel's bundled client holds only the ``dist`` files the pages load (see ``setup.py``). Pages use
relative URLs, so they work under a mount prefix. ``GET /config.json`` tells a page where TF.js is
(the local copy, or `tfjs_url` when configured).

Static files are served by `_directory` (not aiohttp's static resource, whose missing files and
directories answer an empty 404 or a 403): a file is served only when the resolved path is a
regular file inside its folder; anything else (missing, a directory, ``..``, a link leading out,
a name with NUL or control characters) answers the protocol's JSON 404 ``not_found``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from webnn import bundled
from webnn.server.errors import ProtocolError
from webnn.server.keys import CONFIG
from webnn.server.wire import json_response

MAX_PATH_CHARS = 1024

STATIC_DIRS = {
    "static_client": ("/static/client", "src"),
    "static_tfjs": ("/static/tfjs", "node_modules/@tensorflow/tfjs/dist"),
    "static_tfjs_wasm": ("/static/tfjs-wasm", "node_modules/@tensorflow/tfjs-backend-wasm/dist"),
    "static_tfjs_webgpu": ("/static/tfjs-webgpu",
                           "node_modules/@tensorflow/tfjs-backend-webgpu/dist"),
    "static_chart": ("/static/chart", "node_modules/chart.js/dist"),
}
PAGES = {"index": ("/", "src/index.html"), "dashboard": ("/dashboard", "src/dashboard.html")}


def static_urls(request: web.Request) -> dict[str, str]:
    """Where a page finds TF.js, its wasm and WebGPU backends and the chart library (prefix
    included)."""
    router = request.app.router
    tfjs_url = request.app[CONFIG].tfjs_url
    return {
        "tfjs": tfjs_url or str(router["static_tfjs"].url_for(filename="tf.min.js")),
        "tfjsWasm": str(router["static_tfjs_wasm"].url_for(filename="tf-backend-wasm.min.js")),
        "tfjsWebgpu": str(router["static_tfjs_webgpu"].url_for(
            filename="tf-backend-webgpu.min.js")),
        "chart": str(router["static_chart"].url_for(filename="chart.umd.js")),
    }


def _missing(path: Path) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        # the file's name, not its path on the server (that is the operator's business)
        raise ProtocolError(404, "not_found",
                            f"{path.name} is not installed on the server (run `npm ci` in "
                            "client_js, or set client_dir to a client that has it)")
    return handler


def _not_found(shown: str) -> ProtocolError:
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return ProtocolError(404, "not_found", f"no file {shown!r} here")


def _resolve(root: Path, filename: str) -> Path | None:
    """The regular file `filename` names inside `root` (already resolved), or None."""
    if not filename or len(filename) > MAX_PATH_CHARS or any(ord(c) < 32 for c in filename):
        return None
    parts = filename.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    try:
        path = root.joinpath(*parts).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, or not encodable
        return None
    return path


def _directory(root: Path) -> Handler:
    resolved = root.resolve()

    async def handler(request: web.Request) -> web.StreamResponse:
        filename = request.match_info["filename"]
        path = _resolve(resolved, filename)
        if path is None:
            raise _not_found(filename)
        return web.FileResponse(path)
    return handler


def _page(path: Path) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise ProtocolError(404, "not_found", f"{path.name} is not installed on the server")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
    return handler


async def config_json(request: web.Request) -> web.Response:
    api = str(request.app.router["status"].url_for()).rsplit("status", 1)[0]
    return json_response({"urls": static_urls(request), "api": api})


def library_dir(client_dir: Path, sub: str) -> Path:
    """`client_dir`'s folder `sub`, or the bundled client's when `client_dir` lacks it."""
    directory = client_dir / sub
    if directory.is_dir():
        return directory
    bundled_dir = bundled.client_dir() / sub
    return bundled_dir if bundled_dir.is_dir() else directory


def add_static_routes(app: web.Application, client_dir: Path) -> None:
    for name, (prefix, sub) in STATIC_DIRS.items():
        directory = client_dir / sub if sub == "src" else library_dir(client_dir, sub)
        handler = _directory(directory) if directory.is_dir() else _missing(directory)
        app.router.add_get(prefix + "/{filename:.*}", handler, name=name)
    for name, (route, sub) in PAGES.items():
        app.router.add_get(route, _page(client_dir / sub), name=name)
    app.router.add_get("/config.json", config_json, name="config")
