"""Every setting declared once, typed (pydantic v2): serve settings (`ServeConfig`,
`ProcessSettings`), strategy parameters (`webnn.merge.params`), the compare config
(`webnn.compare.config`). Readers report every problem at once as a `ConfigError` of
`Problem`s, each with its dotted path, and "did you mean" for unknown keys.

Modules: `errors` (`ConfigError`, `Problem`; no pydantic), `core` (`setting`, reading tables,
pydantic errors as problems), `serve` (the serve models), `cli` (click options generated from a
model), `reference` (docs/settings.md).
"""

from __future__ import annotations

from typing import Any

from webnn.settings.errors import ConfigError, Problem

__all__ = ["ConfigError", "Problem", "ServeConfig", "ProcessSettings"]


def __getattr__(name: str) -> Any:
    # lazy: `webnn.settings.errors` is imported by light modules that need no pydantic
    if name in ("ServeConfig", "ProcessSettings"):
        from webnn.settings import serve

        return getattr(serve, name)
    raise AttributeError(f"module 'webnn.settings' has no attribute {name!r}")
