"""Finding strategies by name: built-ins, ``module:attr`` references, and entry points.

A name is looked up in this order: a reference containing ``:`` (``package.module:Class`` or
``path/to/file.py:Class``), a built-in name, an entry point of group ``webnn.strategies`` (how an
installed package registers its strategies, e.g. in its pyproject.toml
``[project.entry-points."webnn.strategies"] ema = "mypkg.strategies:Ema"``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from webnn.merge.base import Strategy
from webnn.merge.dcasgd import DcAsgd
from webnn.merge.dp import DifferentialPrivacy
from webnn.merge.errors import StrategyError
from webnn.merge.fedasync import FedAsync
from webnn.merge.fedbuff import FedBuff
from webnn.merge.fedbuff_live import FedBuffLive
from webnn.merge.fedopt import FedOpt
from webnn.merge.robust import Robust
from webnn.merge.webnn_strategies import WebNNAverage, WebNNMimic, WebNNWeighted
from webnn.pyfile import PyFileError, import_file

ENTRY_POINT_GROUP = "webnn.strategies"

BUILTIN_STRATEGIES: tuple[type[Strategy], ...] = (WebNNAverage, WebNNWeighted, WebNNMimic,
                                                 FedAsync, FedBuff, FedBuffLive, FedOpt, DcAsgd,
                                                 Robust, DifferentialPrivacy)
"""Built-in strategy classes, in listing order."""


@dataclass(frozen=True)
class StrategyInfo:
    """One listed strategy: `name`, where it comes from (`origin`), the class, or why it failed."""

    name: str
    origin: str
    strategy: type[Strategy] | None
    error: str | None = None


def builtin_strategies() -> dict[str, type[Strategy]]:
    """Built-in strategies by name (a new dict each call)."""
    return {cls.name: cls for cls in BUILTIN_STRATEGIES}


def get_strategy(name_or_ref: str) -> type[Strategy]:
    """The strategy class for a built-in name, a ``module:attr`` reference or an entry-point name.

    Raises `StrategyError`; for an unknown name the message lists every known one.
    """
    return _resolve(name_or_ref)[0]


def strategy_info(name_or_ref: str) -> StrategyInfo:
    """Like `get_strategy`, but never raises: a failure is reported in `StrategyInfo.error`."""
    try:
        cls, origin = _resolve(name_or_ref)
    except StrategyError as exc:
        return StrategyInfo(name_or_ref, "reference" if ":" in name_or_ref else "unknown", None,
                            str(exc))
    return StrategyInfo(name_or_ref, origin, cls)


def _resolve(name_or_ref: str) -> tuple[type[Strategy], str]:
    """The class and where it came from (``built-in``, ``entry point ...``, ``reference``)."""
    if ":" in name_or_ref:
        return _load_reference(name_or_ref), "reference"
    builtins = builtin_strategies()
    if name_or_ref in builtins:
        return builtins[name_or_ref], "built-in"
    points = [ep for ep in _entry_points() if ep.name == name_or_ref]
    if len(points) > 1:
        owners = ", ".join(f"{ep.value} ({_dist_name(ep)})" for ep in points)
        raise StrategyError(f"strategy {name_or_ref!r} is registered more than once: {owners}; "
                            "name the one you mean as module:attr")
    if points:
        return _load_entry_point(points[0]), _entry_origin(points[0])
    known = sorted(set(builtins) | {ep.name for ep in _entry_points()})
    raise StrategyError(f"unknown strategy {name_or_ref!r}; known strategies: {', '.join(known)} "
                        "(or give module:attr for your own)")


def create_strategy(name_or_ref: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """An instance of the named strategy with `params` (strings coerced to the declared types)."""
    return get_strategy(name_or_ref)(**dict(params or {}))


def available_strategies() -> list[StrategyInfo]:
    """Built-ins, then installed entry points by name; one that fails to load carries `error`."""
    infos = [StrategyInfo(cls.name, "built-in", cls) for cls in BUILTIN_STRATEGIES]
    builtins = builtin_strategies()
    for ep in sorted(_entry_points(), key=lambda e: (e.name, e.value)):
        origin = _entry_origin(ep)
        if ep.name in builtins:
            infos.append(StrategyInfo(ep.name, origin, None,
                                      f"shadowed by the built-in strategy {ep.name!r}"))
            continue
        try:
            infos.append(StrategyInfo(ep.name, origin, _load_entry_point(ep)))
        except StrategyError as exc:
            infos.append(StrategyInfo(ep.name, origin, None, str(exc)))
    return infos


def check_strategy_class(obj: object, where: str) -> type[Strategy]:
    """`obj` if it is a concrete `Strategy` subclass with a name, else a `StrategyError`."""
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyError(f"{where} is {obj!r}, not a subclass of webnn.merge.Strategy")
    if getattr(obj, "__abstractmethods__", None):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise StrategyError(f"{where} ({obj.__qualname__}) does not implement {missing}")
    if not isinstance(obj.name, str) or not obj.name:
        raise StrategyError(f"{where} ({obj.__qualname__}) has no name")
    return obj


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _entry_origin(ep: importlib.metadata.EntryPoint) -> str:
    return f"entry point {ep.value} ({_dist_name(ep)})"


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> type[Strategy]:
    where = f"entry point {ep.name!r} = {ep.value!r} ({_dist_name(ep)})"
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must not look like an unknown name
        raise StrategyError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    return check_strategy_class(obj, where)


def _load_reference(ref: str) -> type[Strategy]:
    """``package.module:Attr`` or ``path/to/file.py:Attr`` (Attr may be dotted)."""
    module_ref, _, attr = ref.rpartition(":")
    if not module_ref or not attr:
        raise StrategyError(f"strategy reference {ref!r} is not of the form module:attr")
    module = _import_file(module_ref) if module_ref.endswith(".py") else _import_module(module_ref)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise StrategyError(f"strategy reference {ref!r}: {module_ref} has no attribute "
                                f"{attr!r}") from None
    return check_strategy_class(obj, f"strategy reference {ref!r}")


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise StrategyError(f"no module named {name!r} (for a file, give path/to/file.py:attr)"
                                ) from exc
        raise StrategyError(f"module {name!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise StrategyError(f"module {name!r} failed to import: {type(exc).__name__}: {exc}"
                            ) from exc


def _import_file(path_text: str) -> ModuleType:
    try:
        return import_file(path_text, "strategy")
    except PyFileError as exc:
        raise StrategyError(str(exc)) from exc.__cause__
