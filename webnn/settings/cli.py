"""Command-line options generated from settings models (click).

`options(ServeConfig, ProcessSettings)` decorates a command with one option per TOML-file setting:
the flag is the key with dashes (``eval_quorum`` -> ``--eval-quorum``) unless the field's `cli`
names another; the click type comes from the field type and its bounds (``IntRange``,
``FloatRange``, ``Choice`` of a ``Literal``, a byte count, a directory), the help from its
description and default. Every option defaults to None ("not given"), so values from a file are
overridden only by flags actually given. `collect(flags)` turns the parsed flags into settings
keyed like a TOML file (``KEY=VALUE`` pairs as tables, a table setting's ``--<key>-<sub>`` flags
as its table).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import annotated_types
import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from webnn.settings.core import info, key_of, show

F = TypeVar("F", bound=Callable[..., Any])


class ByteSize(click.ParamType):
    """A byte count: an integer, optionally with a K, M or G suffix (powers of 1024)."""

    name = "bytes"
    _UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in "KMG" else ""
        try:
            number = float(text[:-1] if unit else text)
        except ValueError:
            self.fail(f"{value!r} is not a byte count (e.g. 268435456, 256M, 1G)", param, ctx)
        if not number > 0:
            self.fail(f"{value!r}: must be > 0", param, ctx)
        return int(number * self._UNITS[unit])


BYTES = ByteSize()


def parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``("a=1", "b=x")`` -> ``{"a": "1", "b": "x"}``; a value without ``=`` is a usage error."""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected key=value", param_hint=option)
        pairs[key.strip()] = value
    return pairs


def scalar(text: str) -> int | float | str | None:
    """A flag value as TOML would type it: ``5`` -> 5, ``0.5`` -> 0.5, ``none`` -> None."""
    if text.lower() == "none":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def flag_of(key: str, field: FieldInfo) -> str:
    """The command-line flag of a setting (``--eval-quorum``)."""
    cli = info(field).get("cli")
    if isinstance(cli, dict) and "flag" in cli:
        return str(cli["flag"])
    return "--" + key.replace("_", "-")


def cli_fields(*models: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    """``(key, field)`` of every setting of `models` that has a flag, in declaration order."""
    found = []
    for model in models:
        for name, field in model.model_fields.items():
            extra = info(field)
            if extra.get("toml", True) and extra.get("cli", True) is not False:
                found.append((key_of(name, field), field))
    return found


def _bare(annotation: Any) -> Any:
    """The type without ``Annotated`` and ``None``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _bare(typing.get_args(annotation)[0])
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, __import__("types").UnionType) and len(args) == 1:
        return _bare(args[0])
    return annotation


def _bounds(field: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            bounds.update(min=item.gt, min_open=True)
        elif isinstance(item, annotated_types.Le):
            bounds["max"] = item.le
        elif isinstance(item, annotated_types.Lt):
            bounds.update(max=item.lt, max_open=True)
    return bounds


def click_type(field: FieldInfo) -> Any:
    """The click type of a setting: its bounds as a range, its choices, bytes or a folder."""
    cli = info(field).get("cli")
    cli = cli if isinstance(cli, dict) else {}
    if cli.get("parse") == "bytes":
        return BYTES
    if cli.get("dir"):
        return click.Path(file_okay=False)
    kind = _bare(field.annotation)
    if typing.get_origin(kind) is Literal:
        return click.Choice([str(a) for a in typing.get_args(kind)])
    bounds = _bounds(field)
    if kind is int:
        return click.IntRange(**bounds) if bounds else click.INT
    if kind is float:
        return click.FloatRange(**bounds) if bounds else click.FLOAT
    return None


def help_of(field: FieldInfo) -> str:
    """The description with its default: ``Seconds a client has ... [60]``."""
    text = field.description or ""
    text = text[:1].upper() + text[1:]
    default = info(field).get("default_text")
    if default is None and field.default_factory is None and field.default not in (
            None, (), PydanticUndefined):
        value = field.default
        default = show(value) if not isinstance(value, str) else value
        if isinstance(value, bool):
            default = "on" if value else "off"
    return f"{text} [{default}]." if default is not None else f"{text}."


def _option(key: str, field: FieldInfo, *, flag: str | None = None,
            param: str | None = None) -> Callable[[F], F]:
    cli = info(field).get("cli")
    cli = cli if isinstance(cli, dict) else {}
    flag = flag or flag_of(key, field)
    kwargs: dict[str, Any] = {"help": help_of(field), "default": None}
    if "metavar" in cli:
        kwargs["metavar"] = cli["metavar"]
    if "envvar" in cli:
        kwargs.update(envvar=cli["envvar"], show_envvar=True)
    if cli.get("parse") == "pairs" or cli.get("multiple"):
        kwargs["multiple"] = True
        kwargs.pop("default")
    elif _bare(field.annotation) is bool:
        if "/" not in flag:
            flag = f"{flag}/--no-{flag.removeprefix('--')}"
    else:
        kind = click_type(field)
        if kind is not None:
            kwargs["type"] = kind
    return click.option(flag, param or key, **kwargs)


def options(*models: type[BaseModel]) -> Callable[[F], F]:
    """A decorator adding one option per setting of `models` (see the module docstring)."""
    decorators: list[Callable[[F], F]] = []
    for key, field in cli_fields(*models):
        table = _table_model(field)
        if table is None:
            decorators.append(_option(key, field))
            continue
        for sub_key, sub_field in cli_fields(table):
            flag = flag_of(sub_key, sub_field)
            if flag == "--" + sub_key.replace("_", "-"):
                flag = f"--{key}-{sub_key}".replace("_", "-")
            decorators.append(_option(sub_key, sub_field, flag=flag, param=f"{key}_{sub_key}"))

    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _table_model(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a table setting whose parts are separate flags (``partition``)."""
    cli = info(field).get("cli")
    if isinstance(cli, dict) and "table" in cli:
        from webnn.settings import serve

        table: type[BaseModel] = getattr(serve, str(cli["table"]))
        return table
    return None


def collect(flags: dict[str, Any], *models: type[BaseModel]) -> dict[str, Any]:
    """The settings given by flags of `options(*models)`, keyed like a TOML file; a setting not
    given is None (a table, ``{}``). Removes the flags it reads from `flags`."""
    values: dict[str, Any] = {}
    for key, field in cli_fields(*models):
        cli = info(field).get("cli")
        cli = cli if isinstance(cli, dict) else {}
        table = _table_model(field)
        if table is not None:
            parts = {sub: flags.pop(f"{key}_{sub}", None) for sub, _ in cli_fields(table)}
            values[key] = {k: v for k, v in parts.items() if v is not None}
            continue
        value = flags.pop(key, None)
        if cli.get("parse") == "pairs":
            values[key] = _pairs(key, tuple(value or ()), flag_of(key, field))
        elif cli.get("multiple"):
            values[key] = tuple(value or ()) or None
        elif cli.get("dir") and value is not None:
            values[key] = str(Path(value))
        else:
            values[key] = value
    return values


def _pairs(key: str, items: tuple[str, ...], flag: str) -> Any:
    if key != "screening":
        return parse_pairs(items, flag)
    # --screen KEY=VALUE (values typed as TOML would type them) or --screen off
    if any(item.strip().lower() == "off" for item in items):
        if len(items) > 1:
            raise click.BadParameter("`off` cannot be combined with other settings",
                                     param_hint=flag)
        return "off"
    return {k: scalar(v) for k, v in parse_pairs(items, flag).items()}
