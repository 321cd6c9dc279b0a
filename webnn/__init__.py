"""webnn: train neural networks across volunteers' web browsers with asynchronous weight merging."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy, so `import webnn` stays light (no aiohttp import for the spec or compare tools)
    if name == "create_app":
        from webnn.server.app import create_app

        return create_app
    if name == "ServeConfig":
        from webnn.server.config import ServeConfig

        return ServeConfig
    raise AttributeError(f"module 'webnn' has no attribute {name!r}")
