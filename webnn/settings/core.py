"""Declaring settings once (pydantic v2 models) and reading them with every problem reported.

A setting is a field of a pydantic model declared with `setting(default, description, ...)`: its
type and constraints (``gt``, ``ge``, ``le``, ``Literal`` choices) are the one statement of what is
valid; `SettingInfo` (kept in the field's ``json_schema_extra``) adds what the readers need: the
scope (``process`` or ``model``), whether TOML files and the command line take it, the key it has
there, and how the command line spells it. `read(model, table)` validates a mapping and raises one
`ConfigError` listing every problem with its dotted path; `problems_from` turns a pydantic
``ValidationError`` into those problems (plain messages in the terms of a TOML file, ``got`` the
value as TOML would write it, and "did you mean" for an unknown key).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from webnn.settings.errors import ConfigError, Problem

M = TypeVar("M", bound=BaseModel)

Scope = Literal["process", "model"]


def setting(default: Any = PydanticUndefined, description: str = "", *,
            factory: Any = None, scope: Scope = "model", toml: bool = True,
            key: str | None = None, cli: dict[str, Any] | bool = True,
            default_text: str | None = None, path: str | None = None,
            type_text: str | None = None, **constraints: Any) -> Any:
    """A settings field: ``lease_seconds: float = setting(60.0, "seconds ...", gt=0)``.

    `scope`: ``process`` (one value per ``wnn serve`` process, top level of a TOML file) or
    ``model`` (one per served model). `toml`: TOML files (and so the CLI) take it. `key`: its
    name in files and on the command line when not the field name. `cli`: False for no flag,
    True for a flag generated from the type, or a dict of overrides (``flag``, ``metavar``,
    ``multiple``, ``parse``: ``pairs``/``bytes``, ``envvar``, ``secondary`` for a boolean's
    ``--no`` flag, ``dir``: a directory path). `default_text`: the default as the docs show it
    when it is computed (a generated token, the bundled client); `type_text`: the type as the docs
    show it when the annotation says too little (``Any``). `path`: ``path`` (resolved
    against a TOML file's folder) or ``data`` (resolved when it names a ``.py`` file).
    Constraints (``gt``, ``ge``, ``le``, ``lt``, ``min_length``) go to pydantic."""
    extra: dict[str, Any] = {"scope": scope, "toml": toml, "cli": cli}
    if key is not None:
        constraints["alias"] = key
    if default_text is not None:
        extra["default_text"] = default_text
    if path is not None:
        extra["path_kind"] = path
    if type_text is not None:
        extra["type_text"] = type_text
    if factory is not None:
        return Field(default_factory=factory, description=description, json_schema_extra=extra,
                     **constraints)
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def info(field: FieldInfo) -> dict[str, Any]:
    """The `setting` extras of a field (empty for a plain pydantic field)."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def key_of(name: str, field: FieldInfo) -> str:
    """The name a setting has in files and on the command line (its alias, if any)."""
    return field.alias or name


def nested(problems: Iterable[tuple[str, str]]) -> PydanticCustomError:
    """An error for a validator to raise that holds problems below the field, each as
    ``(sub path, message)`` (``("action", "must be one of refuse, clip")``)."""
    pairs = tuple(problems)
    text = "; ".join(f"{p}: {m}" if p else m for p, m in pairs)
    return PydanticCustomError("nested", "{text}", {"text": text, "problems": pairs})


def split_problem(text: str, head: str) -> tuple[str, str]:
    """``("action", "must be ...")`` from a message ``"<head>.action: must be ..."`` written by a
    checker that names its own key path (`PartitionConfig`, `ScreeningConfig`)."""
    problem = Problem.parse(text)
    path = problem.path
    if path == head:
        return "", problem.message
    if path.startswith(head + ".") or path.startswith(head + "["):
        return path[len(head):].lstrip("."), problem.message
    return "", text


# ---- showing values and types the way a TOML file writes them

def show(value: Any) -> str:
    """`value` as TOML/JSON writes it: ``"x"``, ``3``, ``true``, ``[1, 2]``; a table is
    ``a table``; anything else its repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, dict | Mapping):
        return "a table"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def number(value: Any) -> str:
    """A bound as people write it: 0.0 -> 0, 0.5 -> 0.5."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def type_label(annotation: Any) -> str:
    """A type as the docs and messages name it: ``an integer``, ``a number (optional)``, ``one of
    q8, f16``, ``an array of strings``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_label(args[0])
    if origin in (typing.Union, types.UnionType):
        labels = [type_label(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(labels))
        return text + " (optional)" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple, Sequence):
        inner = [a for a in args if a is not Ellipsis]
        return "an array" + (f" of {_plural(type_label(inner[0]))}" if inner else "")
    if origin in (dict, Mapping):
        return "a table"
    if isinstance(annotation, type) and (issubclass(annotation, BaseModel)
                                         or hasattr(annotation, "__pydantic_fields__")):
        return "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    name = getattr(annotation, "__name__", "")
    if name in ("Path", "PurePath", "PosixPath"):
        return "a path"
    return "a value" if annotation is Any else name or str(annotation)


def _plural(label: str) -> str:
    for article in ("an ", "a "):
        if label.startswith(article):
            return label[len(article):] + "s"
    return label


# ---- pydantic errors as problems

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "mapping_type": "a table", "list_type": "an array", "tuple_type": "an array",
    "set_type": "an array", "path_type": "a path (a string)", "none_required": "none",
    "dataclass_type": "a table", "dataclass_exact_type": "a table",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def dotted(loc: Sequence[Any]) -> str:
    """``("models", 1, "seed")`` -> ``models[1].seed``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``unknown key; did you mean `eval_quorum`?`` or, with no close name, the known keys."""
    names = sorted(set(known))
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    return f"unknown key (known: {', '.join(names)})" if names else "unknown key"


def _model_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that holds the key at `loc` (for the known keys of an unknown one)."""
    annotation: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        target = _find_model(annotation)
        if target is None or part not in _fields_by_key(target):
            return None
        annotation = _fields_by_key(target)[part].annotation
    return _find_model(annotation)


def _find_model(annotation: Any) -> Any:
    """The settings model (a pydantic model or dataclass) in `annotation`, if any."""
    if isinstance(annotation, type) and (issubclass(annotation, BaseModel) or hasattr(
            annotation, "__pydantic_fields__")):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _fields_by_key(model: Any) -> dict[str, FieldInfo]:
    """``{key: field}`` of a pydantic model or dataclass."""
    found: dict[str, FieldInfo] = getattr(model, "__pydantic_fields__", {})
    return {(f.alias or name): f for name, f in found.items()}


def problems_from(error: ValidationError, model: type[BaseModel] | None = None,
                  known: Mapping[str, Iterable[str]] | None = None) -> list[Problem]:
    """Every error of `error` as a `Problem` with its dotted path and a plain message.

    `known` may give the known keys per parent path (``""`` for the top level) where `model` cannot
    tell them (an unknown key then gets "did you mean")."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        path = dotted(loc)
        kind = item["type"]
        ctx = item.get("ctx") or {}
        value = item.get("input")
        if kind == "nested":
            for sub, message in ctx.get("problems", ()):
                problems.append(Problem(sub, message).under(path))
            continue
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            parent = dotted(loc[:-1])
            names: Iterable[str] = ()
            if known is not None and parent in known:
                names = known[parent]
            else:
                holder = _model_at(model, loc[:-1]) if model is not None else None
                if holder is not None:
                    names = _fields_by_key(holder)
            problems.append(Problem(path, did_you_mean(str(loc[-1]), names)))
            continue
        problems.append(Problem(path, _message(kind, ctx, value, item, model, loc)))
    return problems


def _message(kind: str, ctx: Mapping[str, Any], value: Any, item: Mapping[str, Any],
             model: type[BaseModel] | None, loc: Sequence[Any]) -> str:
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind in _BOUNDS:
        name, sign = _BOUNDS[kind]
        return f"must be {sign} {number(ctx.get(name))}, got {show(value)}"
    if kind == "literal_error":
        choices = _choices(str(ctx.get("expected", "")))
        return f"expected one of {', '.join(choices)}, got {show(value)}"
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        field = _field_at(model, loc)
        what = type_label(field.annotation) if field is not None else ""
        return f"missing (expected {what})" if what and what != "a value" else "missing"
    if kind == "too_short":
        return f"must hold at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must hold at most {ctx.get('max_length')} item(s)"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", item.get("msg", "")))
    return str(item.get("msg", kind))


def _choices(expected: str) -> list[str]:
    import re

    quoted = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    return quoted or [expected]


def _field_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> FieldInfo | None:
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    holder = _model_at(model, loc[:-1])
    return _fields_by_key(holder).get(loc[-1]) if holder is not None else None


# ---- reading tables

def read(model: type[M], table: Any, *, source: str | None = None, prefix: str = "",
         context: Mapping[str, Any] | None = None) -> M:
    """`table` validated as `model`; raises `ConfigError` listing every problem (paths under
    `prefix`)."""
    try:
        return model.model_validate(table, context=dict(context or {}))
    except ValidationError as error:
        problems = [p.under(prefix) for p in problems_from(error, model)]
        raise ConfigError(problems, source) from None


@cache
def partial_model(*models: type[BaseModel], scopes: tuple[str, ...] = ("process", "model"),
                  name: str = "") -> type[BaseModel]:
    """The TOML-file settings (``toml=True``) of `models` in `scopes`, each optional (default
    None), without model validators: reads a table that gives some of the settings with the same
    types and constraints; `given(instance)` then holds the keys the table set."""
    fields: dict[str, Any] = {}
    for model in models:
        for field_name, field in model.model_fields.items():
            extra = info(field)
            if not extra.get("toml", True) or extra.get("scope", "model") not in scopes:
                continue
            loose = copy.copy(field)
            loose.default = None
            loose.default_factory = None
            fields[field_name] = (field.annotation, loose)
    title = name or "Partial" + "".join(m.__name__ for m in models)
    return create_model(title,  # type: ignore[call-overload,no-any-return]
                        __config__=models[0].model_config, **fields)


def given(instance: BaseModel) -> dict[str, Any]:
    """The settings a table set, by their file key, with their validated values."""
    fields = type(instance).model_fields
    return {key_of(name, fields[name]): getattr(instance, name)
            for name in instance.model_fields_set}
