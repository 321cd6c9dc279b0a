"""Embed webnn in your own aiohttp site: your routes, plus a training app mounted at /training/.

    python examples/embed.py        # then open http://127.0.0.1:8080/

Ctrl+C stops the site; the training app writes a checkpoint to state/embed on the way out and
resumes from it next time.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import webnn

HERE = Path(__file__).resolve().parent.parent  # the repository: shipped specs and data modules


async def home(request: web.Request) -> web.Response:
    return web.Response(
        text='<h1>My site</h1><p><a href="training/">Help train our digit recogniser</a></p>',
        content_type="text/html",
    )


def make_app(state_dir: Path | None = Path("state/embed")) -> web.Application:
    site = web.Application()
    site.router.add_get("/", home)
    training = webnn.create_app(webnn.ServeConfig(
        spec=HERE / "model_specs" / "digits_mlp.json",
        data=HERE / "data_modules" / "digits.py",
        state_dir=state_dir,
    ))
    site.add_subapp("/training/", training)
    return site


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8080)
