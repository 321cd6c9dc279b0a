"""Declared strategy parameters: each strategy's `Param`s are one settings model.

A strategy declares ``params = (Param("alpha", float, 0.6, "mixing weight", minimum=0), ...)``;
`params_model` turns the declaration into a pydantic model (type, ``Literal`` choices, inclusive
bounds, default, description), the same machinery `webnn.settings` uses for every other setting.
A strategy may also declare the model itself (``params = AlphaParams``, a pydantic model whose
fields are int, float, bool, str or a ``Literal``, optional or not): `declared_params` then gives
its `Param`s (for listings) and validation uses the model, with its own validators.
Values come from the command line (``--param alpha=0.6``, always strings) or from files and code
(already typed): strings are read as the declared type (``yes``/``no`` for booleans, ``none`` for
an optional parameter), then the model checks them. `resolve_params` raises `ParamError` listing
every problem, each named ``strategy.<name>.<param>``; `check_strategy_params` lists them for a
settings reader that reports them under its own key path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from webnn.merge.errors import ParamError
from webnn.settings.core import did_you_mean, problems_from
from webnn.settings.errors import Problem

PARAM_TYPES: tuple[type, ...] = (int, float, bool, str)
"""The types a parameter may declare."""

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_NONE = frozenset({"none", "null"})
_PARAMS_CONFIG = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


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

    def annotation(self) -> Any:
        """The field type of this parameter in its strategy's settings model."""
        kind: Any = Literal[self.choices] if self.choices is not None else self.type
        if self.default is None:
            kind = Optional[kind]  # noqa: UP007, UP045 - a runtime type expression
        return Annotated[kind, BeforeValidator(self._read)]

    def field(self) -> Any:
        """The pydantic field: default, description and bounds."""
        return Field(self.default, description=self.help, ge=self.minimum, le=self.maximum)

    def coerce(self, value: Any) -> Any:
        """`value` (typed, or a string) as the declared type; `ParamError` names the param."""
        model = _single_model(self)
        try:
            return getattr(model.model_validate({self.name: value}), self.name)
        except ValidationError as error:
            problem = problems_from(error, model)[0]
            raise ParamError(self.name, f"{self.name}: {problem.message}") from None

    def _read(self, value: Any) -> Any:
        """A string as the declared type when it reads as one (else left for the model to
        refuse); numpy scalars as Python numbers; 0/1 as booleans."""
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in _NONE:
                return None
            if self.type is bool:
                lowered = text.lower()
                return True if lowered in _TRUE else False if lowered in _FALSE else value
            if self.type in (int, float):
                try:
                    number = int(text) if self.type is int else float(text)
                except ValueError:
                    return value
                return number
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if self.type is bool and isinstance(value, int | np.integer) and not isinstance(
                value, bool) and value in (0, 1):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for ``wnn strategies --json``)."""
        return {"name": self.name, "type": self.type_name, "default": self.default,
                "help": self.help,
                "choices": list(self.choices) if self.choices is not None else None,
                "minimum": self.minimum, "maximum": self.maximum}


@cache
def _single_model(param: Param) -> type[BaseModel]:
    return params_model("", (param,))


class DeclaredParams(tuple[Param, ...]):
    """The `Param`s of a strategy that declared a pydantic model; `model` is that model."""

    model: type[BaseModel]

    def __new__(cls, params: tuple[Param, ...], model: type[BaseModel]) -> DeclaredParams:
        self = super().__new__(cls, params)
        self.model = model
        return self


def declared_params(model: type[BaseModel]) -> DeclaredParams:
    """The `Param`s of a parameters model (name, type, default, description, choices, inclusive
    bounds), carrying the model; a field of another type is a `TypeError`."""
    import annotated_types

    params = []
    for name, field in model.model_fields.items():
        kind, choices, optional = _param_type(field.annotation)
        if kind is None:
            raise TypeError(f"{model.__name__}.{name}: a parameter is an int, float, bool, str "
                            f"or a Literal of them, optional or not; got {field.annotation!r}")
        bounds: dict[str, Any] = {}
        for item in field.metadata:
            if isinstance(item, annotated_types.Ge | annotated_types.Gt):
                bounds["minimum"] = getattr(item, "ge", getattr(item, "gt", None))
            if isinstance(item, annotated_types.Le | annotated_types.Lt):
                bounds["maximum"] = getattr(item, "le", getattr(item, "lt", None))
        default = None if field.is_required() or optional and field.default is None else \
            field.get_default(call_default_factory=True)
        params.append(Param(name, kind, default, field.description or "", choices=choices,
                            **bounds))
    return DeclaredParams(tuple(params), model)


def _param_type(annotation: Any) -> tuple[type | None, tuple[Any, ...] | None, bool]:
    """``(type, choices, optional)`` of a parameter field's annotation."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _param_type(args[0])
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            kind, choices, _ = _param_type(rest[0])
            return kind, choices, True
        return None, None, True
    if origin is Literal:
        kinds = {type(a) for a in args}
        return (kinds.pop() if len(kinds) == 1 else None), tuple(args), False
    return (annotation if annotation in PARAM_TYPES else None), None, False


def params_model(strategy: str, declared: tuple[Param, ...]) -> type[BaseModel]:
    """The settings model of a strategy's parameters: the model it declared, or one built from
    its `Param`s (one field per `Param`)."""
    model = getattr(declared, "model", None)
    if model is not None:
        return model  # type: ignore[no-any-return]
    return _built_model(strategy, declared)


@cache
def _built_model(strategy: str, declared: tuple[Param, ...]) -> type[BaseModel]:
    fields = {p.name: (p.annotation(), p.field()) for p in declared}
    name = "".join(part.title() for part in strategy.replace("-", "_").split("_")) or "Strategy"
    return create_model(f"{name}Params",  # type: ignore[call-overload,no-any-return]
                        __config__=_PARAMS_CONFIG, **fields)


def param_problems(strategy: str, declared: tuple[Param, ...],
                   given: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """``(values, problems)``: every declared parameter's value (given, else the default) and
    every problem, each with the parameter name as its path."""
    model = params_model(strategy, declared)
    by_name = {p.name: p for p in declared}
    unknown = [k for k in given if k not in by_name]
    problems: list[Problem] = [
        Problem(k, did_you_mean(k, by_name).replace("unknown key", "unknown parameter", 1)
                if by_name else f"unknown parameter (strategy {strategy!r} takes none)")
        for k in unknown]
    try:
        values = model.model_validate({k: by_name[k]._read(v) for k, v in given.items()
                                       if k in by_name})
    except ValidationError as error:
        for problem in problems_from(error, model):
            message = problem.message
            if message.startswith("unknown key"):
                message = "unknown parameter" + message[len("unknown key"):]
                if not declared:
                    message = f"unknown parameter (strategy {strategy!r} takes none)"
            problems.append(Problem(problem.path, message))
    if problems:
        return {}, problems
    return {p.name: getattr(values, p.name) for p in declared}, []


def resolve_params(strategy: str, declared: tuple[Param, ...],
                   given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter's value: the given one read as its type, else the default.

    Raises `ParamError` listing every problem as ``strategy.<name>.<param>: message``
    (`param` names the first) for a name the strategy does not declare or a bad value."""
    values, problems = param_problems(strategy, declared, given)
    if problems:
        named = [p.under(f"strategy.{strategy}") for p in problems]
        message = named[0] if len(named) == 1 else (
            f"strategy {strategy!r}: {len(named)} problems:\n  " + "\n  ".join(named))
        raise ParamError(problems[0].path, str(message), named)
    return values


def check_strategy_params(ref: str, given: Mapping[str, Any]) -> list[Problem]:
    """Every problem with `given` as parameters of the strategy `ref` (a name or reference),
    each with the parameter as its path; a strategy that cannot be loaded is one problem with an
    empty path. The strategy is also built once, which runs its own checks across parameters."""
    from webnn.merge.registry import get_strategy

    try:
        cls = get_strategy(ref)
    except Exception as exc:  # the registry's message names the known strategies
        return [Problem("", str(exc))]
    _, problems = param_problems(cls.name or cls.__name__, cls.params, given)
    if problems:
        return problems
    try:
        cls(**dict(given))
    except ParamError as exc:
        return [Problem(exc.param, str(exc))]
    except Exception as exc:  # a strategy's own checks: reported, never a traceback
        return [Problem("", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError)
                        else str(exc))]
    return []


def is_finite_number(value: Any) -> bool:
    """A real number that is not NaN or infinite (booleans are not numbers here)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
