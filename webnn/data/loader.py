"""Loading a data module: a Python file or dotted module with ``load(**options) -> Dataset``.

Options arrive as strings (``--data-option seq_len=64``). Each is converted to the type of the
matching ``load`` parameter, taken from its annotation (``int``, ``float``, ``bool``, ``str``,
``Path``, or one of those ``| None``) or else from the type of its default; a parameter with neither
gets the string as is, for the module to parse. An option ``load`` does not take is an error, unless
``load`` has ``**kwargs`` (then it receives the string). Booleans accept true/false, yes/no, on/off,
1/0.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from webnn.data.base import DatasetError, IterableDataset
from webnn.data.checks import interface_problems
from webnn.pyfile import PyFileError, import_file

_OPTION_TYPES: dict[Any, type] = {int: int, float: float, bool: bool, str: str, Path: Path,
                                  "int": int, "float": float, "bool": bool, "str": str,
                                  "Path": Path, "pathlib.Path": Path}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class DataModuleError(Exception):
    """A data module cannot be found, imported or loaded, or returned no usable dataset."""


def load_data_module(ref: str, options: Mapping[str, Any] | None = None) -> IterableDataset:
    """Import the data module `ref` (a ``.py`` path or dotted name); return ``load(**options)``.

    Raises `DataModuleError` naming the module and what went wrong: not found, failed to import,
    no ``load``, an option it does not take or cannot convert, ``load`` raised, or returned
    something that is not a dataset.
    """
    module, label = import_data_module(ref)
    load = getattr(module, "load", None)
    if not callable(load):
        raise DataModuleError(f"data module {label} has no load() function; define load(**options) "
                              "returning a webnn.data.ArrayDataset or IterableDataset")
    kwargs = coerce_options(load, dict(options or {}), label)
    try:
        dataset = load(**kwargs)
    except (DataModuleError, DatasetError) as exc:
        raise DataModuleError(f"data module {label}: {exc}") from exc
    except Exception as exc:
        raise DataModuleError(f"data module {label}: load() raised {type(exc).__name__}: {exc}"
                              ) from exc
    problems = interface_problems(dataset)
    if problems:
        raise DataModuleError(f"data module {label}: load() returned an unusable dataset: "
                              + "; ".join(problems))
    return dataset


def import_data_module(ref: str) -> tuple[ModuleType, str]:
    """The module for `ref` and a label for messages (the path as given, or the dotted name)."""
    if ref.endswith(".py") or "/" in ref or "\\" in ref:
        return _import_file(Path(ref)), ref
    try:
        return importlib.import_module(ref), ref
    except ModuleNotFoundError as exc:
        if exc.name is None or not (ref == exc.name or ref.startswith(exc.name + ".")):
            raise DataModuleError(f"data module {ref} failed to import: {exc}") from exc
        hint = ""
        for candidate in (Path(f"{ref}.py"), Path("data_modules") / f"{ref}.py"):
            if candidate.is_file():
                hint = f"; did you mean {candidate}?"
                break
        raise DataModuleError(f"no data module {ref!r}: not a .py path and not an importable "
                              f"module{hint}") from exc
    except Exception as exc:
        raise DataModuleError(f"data module {ref} failed to import: {type(exc).__name__}: {exc}"
                              ) from exc


def coerce_options(load: Any, options: Mapping[str, Any], label: str) -> dict[str, Any]:
    """`options` converted to the types ``load`` declares (see the module docstring)."""
    signature = _signature(load)
    takes = {name: p for name, p in signature.parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key not in takes:
            if open_ended:
                kwargs[key] = value
                continue
            listed = ", ".join(takes) or "none"
            raise DataModuleError(f"data module {label}: load() takes no option {key!r} "
                                  f"(its options: {listed})")
        kwargs[key] = _convert(value, _option_type(takes[key]), key, label)
    missing = [name for name, p in takes.items() if p.default is p.empty and name not in kwargs]
    if missing:
        raise DataModuleError(f"data module {label}: load() needs the option(s) "
                              f"{', '.join(missing)} (--data-option {missing[0]}=...)")
    return kwargs


def _import_file(path: Path) -> ModuleType:
    try:
        return import_file(path, "data module")
    except PyFileError as exc:
        raise DataModuleError(str(exc)) from exc.__cause__


def _signature(load: Any) -> inspect.Signature:
    try:
        return inspect.signature(load, eval_str=True)
    except Exception:  # an annotation that does not evaluate: fall back to the raw strings
        return inspect.signature(load)


def _option_type(param: inspect.Parameter) -> type | None:
    """int/float/bool/str/Path from the annotation (``X | None`` too), else from the default."""
    annotation = param.annotation
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split("|") if p.strip() not in ("None", "")]
        annotation = parts[0] if len(parts) == 1 else None
    elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if annotation in _OPTION_TYPES:
        return _OPTION_TYPES[annotation]
    if param.default is not param.empty and type(param.default) in _OPTION_TYPES:
        return _OPTION_TYPES[type(param.default)]
    return None


def _convert(value: Any, kind: type | None, key: str, label: str) -> Any:
    if kind is None or not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        return kind(value) if kind in (str, Path) else kind(text)
    except ValueError:
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise DataModuleError(f"data module {label}: option {key}={value!r} must be {article} "
                              f"{kind.__name__}") from None
