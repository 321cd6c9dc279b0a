"""Serve settings from a TOML file (stdlib `tomllib`), read through the settings models.

The keys are the TOML-file settings of `webnn.settings.serve` (`ServeConfig` and
`ProcessSettings`; docs/settings.md lists them): *process* settings (one value for the whole
``wnn serve`` process) and *model* settings (one value per served model). A file either describes
one model with top-level keys, or several models with a ``[[models]]`` array of tables; top-level
model keys are then defaults every ``[[models]]`` entry inherits (an entry's own value wins).
Relative paths (``spec``, ``state_dir``, ``client_dir``, and ``data`` when it names a ``.py``
file) are resolved against the directory holding the TOML file.

Every problem of a file is reported at once: `ConfigError` names the file, then each key path,
e.g. ``serve.toml: 2 problems: models[1].eval_quorum: must be >= 1, got 0`` and
``straegy: unknown key; did you mean `strategy`?``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from webnn.settings.core import did_you_mean, given, info, partial_model, problems_from
from webnn.settings.errors import ConfigError, Problem
from webnn.settings.serve import (
    MODEL_KEYS,
    NAME_PATTERN,
    PROCESS_KEYS,
    ProcessSettings,
    ServeConfig,
)

__all__ = ["MODEL_KEYS", "NAME_PATTERN", "PROCESS_KEYS", "ConfigError", "FileSettings",
           "load_toml", "parse_settings"]


@dataclass
class FileSettings:
    """Settings read from a TOML file.

    `process` holds process keys; `models` holds one dict of model keys per served model (top-level
    defaults already merged in). `multi` is True when the file used ``[[models]]``. Values are
    checked and typed (numbers as floats where a number is expected, paths resolved as strings).
    """

    process: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    multi: bool = False


def load_toml(path: str | Path) -> FileSettings:
    """Read and check a serve TOML file; raise `ConfigError` listing every problem."""
    path = Path(path)
    label = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: config file not found"], label) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], label) from exc
    return parse_settings(raw, base_dir=path.resolve().parent, label=label)


def _top_model() -> type[BaseModel]:
    return partial_model(ProcessSettings, ServeConfig, name="ServeFile")


def _entry_model() -> type[BaseModel]:
    return partial_model(ServeConfig, scopes=("model",), name="ServeFileModel")


def parse_settings(raw: Mapping[str, Any], base_dir: Path, label: str = "config") -> FileSettings:
    """Check the keys and value types of a parsed TOML document (see `load_toml`)."""
    problems: list[Problem] = []
    top = {k: v for k, v in raw.items() if k != "models"}
    values = _read(_top_model(), _resolve(top, base_dir), "", problems)
    process = {k: v for k, v in values.items() if k in PROCESS_KEYS}
    defaults = {k: v for k, v in values.items() if k in MODEL_KEYS}
    if "models" not in raw:
        _raise(problems, label)
        return FileSettings(process=process, models=[defaults], multi=False)

    entries = raw["models"]
    if not (isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries)):
        problems.append(Problem("models", "expected a non-empty array of tables ([[models]])"))
        _raise(problems, label)
    models: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        where = f"models[{index}]"
        checked = _read(_entry_model(), _resolve(entry, base_dir), where, problems)
        models.append({**defaults, **checked})
    _raise(problems, label)
    return FileSettings(process=process, models=models, multi=True)


def _raise(problems: list[Problem], label: str) -> None:
    if problems:
        raise ConfigError(problems, label)


def _read(model: type[BaseModel], table: dict[str, Any], where: str,
          problems: list[Problem]) -> dict[str, Any]:
    """The given settings of `table`, typed; problems (under `where`) go to `problems`."""
    try:
        instance = model.model_validate(table)
    except ValidationError as error:
        for problem in problems_from(error, model):
            problems.append(_hint(problem, table, bool(where)).under(where))
        return {}
    return {k: str(v) if isinstance(v, Path) else v for k, v in given(instance).items()}


def _hint(problem: Problem, table: dict[str, Any], in_entry: bool) -> Problem:
    """An unknown key inside ``[[models]]`` that is a process setting says where it goes; an
    unknown top-level key also knows ``models``."""
    key = problem.path
    if not problem.message.startswith("unknown key") or key not in table:
        return problem
    if in_entry and key in PROCESS_KEYS:
        return Problem(key, f"unknown key here: {key} is a process setting (one per wnn serve "
                            "process): put it at the top level")
    if not in_entry:
        return Problem(key, did_you_mean(key, PROCESS_KEYS | MODEL_KEYS | {"models"}))
    return problem


def _resolve(table: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """`table` with relative paths resolved against `base_dir` (``path`` settings, and
    ``data`` when it names a ``.py`` file or a folder)."""
    kinds = {key: info(f).get("path_kind") for key, f in
             {**_fields(ProcessSettings), **_fields(ServeConfig)}.items()}
    resolved = dict(table)
    for key, value in table.items():
        kind = kinds.get(key)
        if not isinstance(value, str) or kind is None:
            continue
        if kind == "path" or (kind == "data" and (value.endswith(".py") or "/" in value)):
            path = Path(value).expanduser()
            resolved[key] = str(path if path.is_absolute() else base_dir / path)
    return resolved


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}
