"""TF.js key and value casing: layer configs are camelCase in JavaScript and snake_case on disk.

These follow `toSnakeCase`/`toCamelCase` in tfjs-layers, which `model.toJSON()` and
`tf.models.modelFromJSON` apply to every key and every string value except layer names.
"""

from __future__ import annotations

import re
from typing import Any

_FIRST = re.compile(r"(.)([A-Z][a-z0-9]+)")
_SECOND = re.compile(r"([a-z])([A-Z])")
_UNDERSCORES = re.compile(r"_+(\w|$)")


def to_snake(name: str) -> str:
    """``kernelInitializer`` -> ``kernel_initializer``; ``hardSigmoid`` -> ``hard_sigmoid``."""
    snake = _SECOND.sub(r"\1_\2", _FIRST.sub(r"\1_\2", name)).lower()
    return snake if not snake.startswith("_") else "private" + snake


def to_camel(name: str) -> str:
    """``kernel_initializer`` -> ``kernelInitializer``; names without ``_`` are kept."""
    if len(name) <= 1 or "_" not in name:
        return name
    return _UNDERSCORES.sub(lambda m: m.group(1).upper(), name)


def pythonic(config: Any, key: str | None = None) -> Any:
    """A camelCase TF.js config in the snake_case form of a saved ``model.json``.

    ``name`` and ``class_name`` string values are kept verbatim, as TF.js does.
    """
    if config is None or isinstance(config, bool | int | float):
        return config
    if isinstance(config, str):
        return to_snake(config)
    if isinstance(config, list | tuple):
        return [pythonic(item, key) for item in config]
    out = {}
    for k, v in config.items():
        if k in ("name", "className", "class_name") and isinstance(v, str):
            out[to_snake(k)] = v
        else:
            out[to_snake(k)] = pythonic(v, k)
    return out
