"""Serve settings from a TOML file (stdlib `tomllib`).

One table of known keys is the contract for both the file and the command line. Keys are either
*process* settings (one value for the whole `wnn serve` process) or *model* settings (one value per
served model). A file either describes one model with top-level keys, or several models with a
``[[models]]`` array of tables; top-level model keys are then defaults every ``[[models]]`` entry
inherits (an entry's own value wins). Relative paths (``spec``, ``state_dir``, and ``data`` when it
names a ``.py`` file) are resolved against the directory holding the TOML file.

Errors raise `ConfigError` naming the file and the key path, e.g. ``serve.toml: models[1].strategy:
expected a string, got 3``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Scope = Literal["process", "model"]
Kind = Literal["str", "int", "float", "bool", "path", "data", "table", "strs"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A model name is used as a URL path segment and a directory name."""


class ConfigError(ValueError):
    """A serve setting is unknown or has the wrong type; the message names the file and key."""


@dataclass(frozen=True)
class Setting:
    """One known key: its value kind, whether it applies per process or per model, and help text."""

    key: str
    kind: Kind
    scope: Scope
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "str", "process", "interface to listen on"),
    Setting("port", "int", "process", "TCP port (0 picks a free one)"),
    Setting("state_dir", "path", "process", "checkpoint directory (a subdirectory per model)"),
    Setting("admin_token", "str", "process", "bearer token for admin actions"),
    Setting("join_token", "str", "process", "bearer token volunteers must send to join"),
    Setting("local_workers", "int", "process", "headless Node workers to start per model"),
    Setting("worker_backend", "str", "process", "TF.js backend of local workers: cpu or wasm"),
    Setting("tfjs_url", "str", "process", "URL the volunteer page loads TF.js from"),
    Setting("client_dir", "path", "process",
            "a customised client folder to serve (its src/ replaces the page and dashboard)"),
    Setting("name", "str", "model", "model name, used in /models/<name>/ and state subdirectory"),
    Setting("spec", "path", "model", "model spec JSON file"),
    Setting("data", "data", "model", "data module: a .py file or a dotted module name"),
    Setting("data_options", "table", "model", "options passed to the data module's load()"),
    Setting("strategy", "str", "model", "merge strategy name or module:attr"),
    Setting("params", "table", "model", "merge strategy parameters"),
    Setting("seed", "int", "model", "seed of the initial weights and batch order"),
    Setting("lease_seconds", "float", "model", "seconds a client has to return a task"),
    Setting("max_staleness", "int", "model", "refuse updates staler than this many versions"),
    Setting("screening", "table", "model",
            "screen updates before any merge: norm_bound, adaptive_quantile, action = refuse|clip "
            "(laid over the defaults); \"off\" turns screening off"),
    Setting("target_accuracy", "float", "model", "end when validation accuracy reaches this"),
    Setting("max_seconds", "float", "model", "end after this many seconds of training"),
    Setting("max_merges", "int", "model", "end after this many merges"),
    Setting("checkpoint_every_merges", "int", "model", "write a checkpoint every N merges"),
    Setting("checkpoint_every_seconds", "float", "model", "write a checkpoint every T seconds"),
    Setting("update_budget", "int", "model",
            "bytes of update bodies in flight before updates get 503 busy (default: 32 bodies)"),
    Setting("snapshot_budget", "int", "model",
            "bytes of kept version snapshots (default: 64 snapshots, at most 1 GiB)"),
    Setting("merge_queue", "int", "model", "updates waiting to be merged before 503 busy"),
    Setting("max_open_tasks", "int", "model", "open tasks one session may hold"),
    Setting("max_sessions", "int", "model", "live sessions before joins get 503 busy"),
    Setting("joins_per_minute", "float", "model", "joins per client address per minute (0: off)"),
    Setting("join_burst", "int", "model", "joins one address may make at once"),
    Setting("trusted_proxies", "strs", "model",
            "addresses of reverse proxies whose X-Forwarded-For names the client"),
    Setting("update_encoding", "str", "model",
            "what volunteers send: auto (the fewest bytes they offer), q8, f16 or f32"),
    Setting("weights_encoding", "str", "model",
            "what volunteers receive: auto (the fewest bytes they offer), f16 or f32"),
    Setting("private_status", "bool", "model",
            "client list, history and events only for joined sessions and the admin token"),
    Setting("eval_quorum", "int", "model",
            "sessions that must agree on each validation chunk (1: trust every result)"),
    Setting("eval_quorum_wait", "float", "model",
            "seconds a chunk short of its quorum waits before it is accepted unvalidated"),
    Setting("body_timeout", "float", "model",
            "seconds an update body may go without a byte before it is answered 408"),
    Setting("partition", "table", "model",
            "training data per client: kind = iid|dirichlet|shards|by_key, shards, alpha "
            "(dirichlet), classes (shards), min_examples (dirichlet)"),
)
SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
PROCESS_KEYS = frozenset(s.key for s in SETTINGS if s.scope == "process")
MODEL_KEYS = frozenset(s.key for s in SETTINGS if s.scope == "model")


@dataclass
class FileSettings:
    """Settings read from a TOML file.

    `process` holds process keys; `models` holds one dict of model keys per served model (top-level
    defaults already merged in). `multi` is True when the file used ``[[models]]``.
    """

    process: dict[str, Any] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    multi: bool = False


def load_toml(path: str | Path) -> FileSettings:
    """Read and check a serve TOML file; raise `ConfigError` for anything unknown or mistyped."""
    path = Path(path)
    label = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from exc
    return parse_settings(raw, base_dir=path.resolve().parent, label=label)


def parse_settings(raw: Mapping[str, Any], base_dir: Path, label: str = "config") -> FileSettings:
    """Check the keys and value types of a parsed TOML document (see `load_toml`)."""
    process: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "models":
            continue
        if key not in SETTINGS_BY_KEY:
            raise ConfigError(_unknown(label, key, key, PROCESS_KEYS | MODEL_KEYS | {"models"}))
        checked = _check_value(label, key, SETTINGS_BY_KEY[key], value, base_dir)
        (process if key in PROCESS_KEYS else defaults)[key] = checked
    if "models" not in raw:
        if "name" in defaults:
            _check_name(label, "name", defaults["name"])
        return FileSettings(process=process, models=[defaults], multi=False)

    entries = raw["models"]
    if not (isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries)):
        raise ConfigError(f"{label}: models: expected a non-empty array of tables ([[models]])")
    models: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        model = dict(defaults)
        for key, value in entry.items():
            where = f"models[{index}].{key}"
            if key not in MODEL_KEYS:
                top = key in PROCESS_KEYS
                hint = " (a process setting: put it at the top level)" if top else ""
                raise ConfigError(_unknown(label, key, where, MODEL_KEYS) + hint)
            model[key] = _check_value(label, where, SETTINGS_BY_KEY[key], value, base_dir)
        if "name" in model:
            _check_name(label, f"models[{index}].name", model["name"])
        models.append(model)
    return FileSettings(process=process, models=models, multi=True)


def _unknown(label: str, key: str, where: str, known: frozenset[str] | set[str]) -> str:
    return f"{label}: unknown key {key!r} at {where}; known keys: {', '.join(sorted(known))}"


def _check_name(label: str, where: str, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{label}: {where}: {name!r} is not a valid model name "
            "(letters, digits, '_', '.', '-'; starting with a letter or digit)"
        )


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _check_value(label: str, where: str, setting: Setting, value: Any, base_dir: Path) -> Any:
    def wrong(expected: str) -> ConfigError:
        got = f"{_type_name(value)} {value!r}"
        return ConfigError(f"{label}: {where}: expected {expected}, got {got}")

    kind = setting.kind
    if kind in ("str", "path", "data"):
        if not isinstance(value, str):
            raise wrong("a string")
        if kind == "path" or (kind == "data" and (value.endswith(".py") or "/" in value)):
            return str(_resolve(value, base_dir))
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong("a boolean")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise wrong("an array of strings")
        return tuple(value)
    if setting.key == "screening" and isinstance(value, str) and value.lower() == "off":
        return "off"
    if not isinstance(value, dict):
        raise wrong("a table" + (' or "off"' if setting.key == "screening" else ""))
    for sub_key, sub_value in value.items():
        if isinstance(sub_value, dict | list):
            raise ConfigError(
                f"{label}: {where}.{sub_key}: expected a string, number or boolean, "
                f"got {_type_name(sub_value)}"
            )
    if setting.key == "data_options":
        # Data modules receive option strings, exactly as from `--data-option key=value`.
        return {k: _option_string(v) for k, v in value.items()}
    return dict(value)


def _option_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
