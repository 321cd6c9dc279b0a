"""Load a model spec from a file or a dict: the native format or a TF.js ``model.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from webnn.spec import tfjs_import
from webnn.spec.build import build_spec, model_name
from webnn.spec.errors import Problem, SpecError, json_path
from webnn.spec.model import ModelSpec

Source = str | Path | dict[str, Any]


def read_source(source: Source) -> tuple[dict[str, Any] | None, str, Path | None, list[Problem]]:
    """(document, default name, directory for relative weight paths, problems)."""
    if isinstance(source, dict):
        return source, "model", None, []
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "", None, [Problem("$", f"file not found: {path}")]
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        return None, "", None, [Problem("$", f"cannot read {path}: {error}")]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        return None, "", None, [Problem("$", (
            f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno} of {path}"))]
    if not isinstance(doc, dict):
        return None, "", None, [Problem("$", (
            f"a model spec must be a JSON object, got {type(doc).__name__} in {path}"))]
    return doc, model_name(path.stem), path.parent, []


def _load(source: Source, base_dir: str | Path | None) -> tuple[ModelSpec | None, list[Problem]]:
    doc, default_name, directory, problems = read_source(source)
    if doc is None:
        return None, problems
    if base_dir is not None:
        directory = Path(base_dir)
    if tfjs_import.is_tfjs(doc):
        return tfjs_import.load(doc, default_name, directory)
    return build_spec(doc, default_name, json_path)


def load_spec(source: Source, *, base_dir: str | Path | None = None) -> ModelSpec:
    """Load, validate and compile a spec (a path or a dict); raises `SpecError` with every problem.

    A TF.js ``model.json`` is accepted too; its weight files are read relative to the file's
    directory (or `base_dir`, which a dict source needs for its weights to be loaded).
    """
    spec, problems = _load(source, base_dir)
    if problems or spec is None:
        raise SpecError(problems)
    return spec


def validate_spec(source: Source, *, base_dir: str | Path | None = None) -> list[Problem]:
    """Every problem of a spec (empty when it is valid); never raises for a bad spec."""
    return _load(source, base_dir)[1]


def load_with_problems(source: Source, *, base_dir: str | Path | None = None
                          ) -> tuple[ModelSpec | None, list[Problem]]:
    """The spec and no problems, or None and every problem (one pass, for ``wnn validate``)."""
    return _load(source, base_dir)
