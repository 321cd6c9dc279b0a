"""Declared strategy parameters and the coercion of their values.

Values come from the command line (``--strategy-param alpha=0.6``, always strings) or from config
files (already typed). `Param.coerce` turns either into the declared type and checks it against the
declared choices and bounds; `resolve_params` does that for a whole strategy, filling in defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from webnn.merge.errors import ParamError

PARAM_TYPES: tuple[type, ...] = (int, float, bool, str)
"""The types a parameter may declare."""

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_NONE = frozenset({"none", "null"})


@dataclass(frozen=True)
class Param:
    """One parameter of a strategy: ``Param("alpha", float, 0.6, "mixing weight", minimum=0)``.

    `type` is one of int, float, bool, str. A `default` of None makes the parameter optional: then
    None (or the string ``none``) is also accepted. `choices` restricts the value to a set;
    `minimum` and `maximum` are inclusive bounds for numbers.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise TypeError(f"parameter name {self.name!r} is not a Python identifier")
        if self.type not in PARAM_TYPES:
            raise TypeError(f"parameter {self.name!r}: type must be int, float, bool or str, "
                            f"not {self.type!r}")
        if self.default is not None:
            try:
                self.coerce(self.default)
            except ParamError as exc:
                raise TypeError(f"parameter {self.name!r}: bad default: {exc}") from None

    @property
    def type_name(self) -> str:
        return self.type.__name__

    def coerce(self, value: Any) -> Any:
        """`value` (typed, or a string) as the declared type; `ParamError` names the param."""
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            if self.default is None:
                return None
            raise ParamError(self.name,
                             f"{self.name} needs {_article(self.type_name)}, got {value!r}")
        converted = _convert(self.type, value)
        if converted is None:
            raise ParamError(self.name, f"{self.name} must be {_article(self.type_name)}, "
                                        f"got {value!r}")
        if self.choices is not None and converted not in self.choices:
            options = ", ".join(repr(c) for c in self.choices)
            raise ParamError(self.name, f"{self.name} must be one of {options}, got {value!r}")
        if self.minimum is not None and converted < self.minimum:
            raise ParamError(self.name, f"{self.name} must be >= {self.minimum}, got {value!r}")
        if self.maximum is not None and converted > self.maximum:
            raise ParamError(self.name, f"{self.name} must be <= {self.maximum}, got {value!r}")
        return converted

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for ``wnn strategies --json``)."""
        return {"name": self.name, "type": self.type_name, "default": self.default,
                "help": self.help,
                "choices": list(self.choices) if self.choices is not None else None,
                "minimum": self.minimum, "maximum": self.maximum}


def resolve_params(strategy: str, declared: tuple[Param, ...],
                   given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter's value: the given one coerced, else the default.

    Raises `ParamError` for a name the strategy does not declare (listing the ones it does) or for
    a bad value (naming the parameter and the strategy).
    """
    known = {p.name: p for p in declared}
    for key in given:
        if key not in known:
            takes = ", ".join(known) if known else "none"
            raise ParamError(key, f"strategy {strategy!r} has no parameter {key!r} "
                                  f"(its parameters: {takes})")
    values: dict[str, Any] = {}
    for param in declared:
        if param.name not in given:
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.coerce(given[param.name])
        except ParamError as exc:
            raise ParamError(param.name, f"strategy {strategy!r}: {exc}") from None
    return values


def _convert(kind: type, value: Any) -> Any:
    """`value` as `kind`, or None when it is not a sensible value of that type."""
    if isinstance(value, str):
        return _parse(kind, value)
    is_bool = isinstance(value, bool | np.bool_)
    if kind is bool:
        if is_bool or (isinstance(value, int | np.integer) and value in (0, 1)):
            return bool(value)
        return None
    if kind is str or is_bool:  # a bool is not a number here, and only strings are strings
        return None
    if kind is int:
        return int(value) if isinstance(value, int | np.integer) else None
    if isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value):
        return float(value)
    return None


def _parse(kind: type, text: str) -> Any:
    """A string as `kind`, or None; floats must be finite."""
    if kind is str:
        return text
    stripped = text.strip()
    if kind is bool:
        lowered = stripped.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else None
    try:
        number = int(stripped) if kind is int else float(stripped)
    except ValueError:
        return None
    return number if kind is int or math.isfinite(number) else None


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
