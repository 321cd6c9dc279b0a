"""Importing a user's Python file (a data module, a strategy) by its path."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


class PyFileError(ImportError):
    """The file is missing or failed to import; the message says which and why."""


def import_file(path: str | Path, kind: str) -> ModuleType:
    """Import `path` as a module named after its resolved path (so two files with one stem do not
    collide, and importing a file twice gives the same module). `kind` names it in messages."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise PyFileError(f"{kind} file not found: {path} (looked at {resolved})")
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"webnn_user_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise PyFileError(f"cannot import {kind} file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up by module name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PyFileError(f"{kind} file {path} failed to import: {type(exc).__name__}: {exc}"
                          ) from exc
    return module
