"""webnn's server. For embedding a model in your own aiohttp site (docs/architecture.md):

- `create_app(config)`: one model as an aiohttp application (`webnn.server.app`);
- `create_multi_app({name: app})`: several models under ``/models/<name>/``;
- `WebnnRunner(app, limits=HttpLimits())`: the runner `wnn serve` uses: requests that are not
  HTTP get protocol JSON (``400 bad_http``) and are counted, and a request line and headers must
  complete within ``HttpLimits.header_timeout`` (`webnn.server.runner`).

Names are imported on first use, so ``import webnn.server.x`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "webnn.server.app",
    "create_multi_app": "webnn.server.multi",
    "HttpLimits": "webnn.server.runner",
    "WebnnRunner": "webnn.server.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'webnn.server' has no attribute {name!r}")
