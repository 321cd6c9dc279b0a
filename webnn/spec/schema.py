"""The JSON Schema of model specs (``schema.json``, shipped in the package) and plain-language
problems from it.

`check(instance, definition)` validates against the whole schema or one of its ``$defs`` and turns
every schema error into a `Finding`: the path parts of the bad field and a reason a user can act on
(wrong type, unknown name with close suggestions, missing or unknown field, out-of-range value).
The schema's ``x-error`` annotation gives the wording for a constraint, ``x-kind`` names what an
enumeration lists (``activation``, ``layer type``...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from webnn.spec.errors import either, suggest, unknown_name

Parts = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """A schema problem: `parts` locate the field (``("layers", 2, "units")``)."""

    parts: Parts
    message: str


@cache
def schema() -> dict[str, Any]:
    """The model-spec JSON Schema (parsed once; treat as read-only)."""
    return json.loads(resources.files("webnn.spec").joinpath("schema.json").read_text("utf-8"))


# JSON Schema counts 3.0 as an integer; a layer size of 3.0 would then reach TF.js as a float.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))


@cache
def _validator(definition: str | None) -> Draft202012Validator:
    root = schema()
    if definition is None:
        return _StrictValidator(root)
    return _StrictValidator({"$defs": root["$defs"], "$ref": f"#/$defs/{definition}"})


def enum(definition: str) -> list[str]:
    """The names a ``$defs`` enumeration allows (activations, losses, layer types...)."""
    return list(schema()["$defs"][definition]["enum"])


def defaults(definition: str) -> dict[str, Any]:
    """``default`` annotations of a ``$defs`` object's properties: a layer kind's defaults."""
    properties = schema()["$defs"][definition].get("properties", {})
    return {k: v["default"] for k, v in properties.items()
            if isinstance(v, dict) and "default" in v}


def check(instance: Any, definition: str | None = None) -> list[Finding]:
    """Every schema problem of `instance` (the whole spec, or a ``$defs`` entry such as ``layer``),
    in document order, without duplicates."""
    findings: list[Finding] = []
    for error in _validator(definition).iter_errors(instance):
        findings.extend(_convert(error))
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: _document_order(instance, f.parts))


def _document_order(instance: Any, parts: Parts) -> tuple[int, ...]:
    key: list[int] = []
    node = instance
    for part in parts:
        if isinstance(node, dict):
            names = list(node)
            key.append(names.index(part) if part in node else len(names))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            key.append(part)
            node = node[part] if part < len(node) else None
        else:
            key.append(0)
            node = None
    return tuple(key)


def render(value: Any) -> str:
    """A short JSON rendering of a bad value for messages."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


_JSON_TYPES = {"integer": "an integer", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "an object", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _got(value: Any) -> str:
    kind = _json_type(value)
    if kind in ("object", "array") and len(render(value)) > 40:
        return f"got {_JSON_TYPES[kind]}"
    return f"got {render(value)}" + (f" ({_JSON_TYPES[kind]})" if kind == "string" else "")


def _convert(error: ValidationError) -> Iterator[Finding]:
    parts: Parts = tuple(error.absolute_path)
    kind = error.validator
    sub = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    custom = sub.get("x-error")
    if kind in ("anyOf", "oneOf"):
        yield from _convert_union(error, parts, custom)
    elif kind == "required":
        for name in error.validator_value:
            if isinstance(value, dict) and name not in value:
                yield Finding((*parts, name), "missing required field")
    elif kind == "additionalProperties":
        allowed = [k for k in sub.get("properties", {}) if k != "type"]
        for name in value:
            if name not in sub.get("properties", {}):
                yield Finding((*parts, name), _unknown_field(name, allowed))
    elif kind == "enum" and "x-kind" in sub and isinstance(value, str):
        yield Finding(parts, unknown_name(sub["x-kind"], value, error.validator_value))
    elif custom:
        yield Finding(parts, f"{custom}, {_got(value)}")
    elif kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        yield Finding(parts, f"expected {wanted}, {_got(value)}")
    elif kind == "enum":
        options = ", ".join(render(v) for v in error.validator_value)
        yield Finding(parts, f"must be one of {options}, {_got(value)}")
    elif kind == "const":
        yield Finding(parts, f"must be {render(error.validator_value)}, {_got(value)}")
    elif kind in _BOUNDS:
        yield Finding(parts, f"must be {_BOUNDS[kind]} {error.validator_value}, {_got(value)}")
    elif kind == "minItems":
        yield Finding(parts, f"needs at least {error.validator_value} item(s), {_got(value)}")
    elif kind == "maxItems":
        yield Finding(parts, f"allows at most {error.validator_value} item(s), {_got(value)}")
    elif kind == "uniqueItems":
        repeated = sorted({render(v) for v in value if value.count(v) > 1})
        yield Finding(parts, f"lists {', '.join(repeated)} more than once")
    else:
        yield Finding(parts, error.message)


_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}

_FIELD_HINTS = {
    "inputShape": "give inputShape at the top level of the spec, not on a layer",
    "batchInputShape": "give inputShape at the top level of the spec, not on a layer",
}


def _unknown_field(name: str, allowed: list[str]) -> str:
    if name in _FIELD_HINTS:
        return f"unknown field {name!r}: {_FIELD_HINTS[name]}"
    close = suggest(name, allowed)
    if close:
        return f"unknown field {name!r} (did you mean {either(close)}?)"
    return f"unknown field {name!r}; allowed here: {', '.join(allowed) or 'no other fields'}"


def _convert_union(error: ValidationError, parts: Parts, custom: str | None) -> Iterator[Finding]:
    """Report the branch of an anyOf whose type fits the value; else the union's own wording."""
    branches: dict[int, list[ValidationError]] = {}
    for sub_error in error.context or []:
        branches.setdefault(sub_error.relative_schema_path[0], []).append(sub_error)
    viable = [errors for errors in branches.values()
              if not any(_type_mismatch(e, error.instance) for e in errors)]
    if len(viable) == 1:
        for sub_error in viable[0]:
            yield from _convert(sub_error)
        return
    message = custom or "does not match any allowed form"
    yield Finding(parts, f"{message}, {_got(error.instance)}")


def _type_mismatch(error: ValidationError, value: Any) -> bool:
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return _json_type(value) not in {_json_type(v) for v in allowed}
    return False
