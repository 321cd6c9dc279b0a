"""The console of ``wnn serve``: what a person running the server reads.

One line format for everything after the start banner — the server's log records, its local
workers' output and the periodic status line::

    16:41:17 [status] v42 | 3.1 merges/s | 2 clients | accuracy 0.9120 (v40, validated) | running
    16:41:18 [worker-1] joined http://127.0.0.1:8080/ as c-3 (worker-1); model digits_mlp v0 ...
    16:41:19 [webnn.server.coordinator] WARNING: ...

``HH:MM:SS [source] message``, with ``WARNING: `` or ``ERROR: `` before the message of a warning or
an error. Three verbosities: `QUIET` shows warnings and errors only; `NORMAL` adds the status line
and lifecycle lines (started, joined, left, stopped); `VERBOSE` adds per-task lines ("detail"). The
start banner (URLs and the admin token box) is printed at every verbosity: it is what the user needs
to use the server at all.

The admin token is kept in ``<state dir>/admin_token`` (mode 0600) so a restarted server keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

STATUS_SECONDS = 5.0
"""Seconds between two status lines."""
TOKEN_FILE = "admin_token"
"""The admin token's file in the state directory."""
LEVELS = ("info", "warning", "error")


class Verbosity(IntEnum):
    QUIET = 0
    NORMAL = 1
    VERBOSE = 2


def _write_stdout(line: str) -> None:
    """Print and flush, so a parent process reading our pipe sees each line at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Console:
    """Writes console lines at a `Verbosity`; `write` takes one line without its newline."""

    verbosity: Verbosity = Verbosity.NORMAL
    write: Callable[[str], None] = _write_stdout
    clock: Callable[[], float] = time.time

    def format(self, source: str, message: str, level: str = "info") -> str:
        """``HH:MM:SS [source] message``; warnings and errors name their level."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        tag = "" if level == "info" else f"{level.upper()}: "
        return f"{stamp} [{source}] {tag}{message}"

    def shows(self, level: str = "info", detail: bool = False) -> bool:
        """Whether a line of `level` (a per-task line when `detail`) is shown."""
        if level != "info":
            return True
        if detail:
            return self.verbosity >= Verbosity.VERBOSE
        return self.verbosity >= Verbosity.NORMAL

    def emit(self, source: str, message: str, level: str = "info", detail: bool = False) -> None:
        if level not in LEVELS:
            raise ValueError(f"console level must be one of {', '.join(LEVELS)}, got {level!r}")
        if self.shows(level, detail):
            for part in message.splitlines() or [""]:
                self.write(self.format(source, part, level))

    def info(self, source: str, message: str) -> None:
        self.emit(source, message)

    def warning(self, source: str, message: str) -> None:
        self.emit(source, message, "warning")

    def plain(self, text: str = "") -> None:
        """A line of the start banner, shown at every verbosity, without the log prefix."""
        self.write(text)


class ConsoleHandler(logging.Handler):
    """A `logging` handler writing records through a `Console` (source: the logger's name)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            level = ("error" if record.levelno >= logging.ERROR
                     else "warning" if record.levelno >= logging.WARNING else "info")
            self.console.emit(record.name, message, level)
        except Exception:  # a logging handler must never raise into the code that logged
            self.handleError(record)


def install_logging(console: Console) -> None:
    """Route every log record through `console`: warnings and errors of any library, and
    webnn's own information lines unless quiet. Replaces the root logger's handlers."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(ConsoleHandler(console))
    root.setLevel(logging.WARNING)
    logging.getLogger("webnn").setLevel(
        logging.WARNING if console.verbosity == Verbosity.QUIET else logging.INFO)


def admin_token_box(token: str, note: str) -> list[str]:
    """The admin token in an ASCII box (any terminal shows it); the first inner line stays
    ``admin token: TOKEN`` so scripts can read it."""
    inner = [f"admin token: {token}", note]
    width = max(len(line) for line in inner)
    rule = "+" + "-" * (width + 2) + "+"
    return [rule, *(f"| {line.ljust(width)} |" for line in inner), rule]


@dataclass(frozen=True)
class AdminToken:
    """The admin token and where it comes from (`origin`: "given", "kept" or "new")."""

    token: str
    origin: str
    path: Path | None = None

    def note(self) -> str:
        if self.origin == "given":
            return "from --admin-token / WEBNN_ADMIN_TOKEN / the config file"
        if self.path is None:
            return "new for this run (no --state-dir: not kept)"
        if self.origin == "kept":
            return f"kept from the last run in {self.path}"
        return f"new; kept in {self.path} for restarts"

    def save(self) -> None:
        """Write a new token to `path` (mode 0600, replaced atomically); nothing otherwise."""
        if self.origin != "new" or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(self.token + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def resolve_admin_token(given: str | None, state_dir: str | Path | None) -> AdminToken:
    """The given token; else the one kept in ``state_dir/admin_token``; else a new random one
    (to be `AdminToken.save`d once the server is set up). An unreadable token file is an
    `OSError` naming it; an empty one is replaced."""
    path = Path(state_dir) / TOKEN_FILE if state_dir is not None else None
    if given:
        return AdminToken(given, "given", path)
    if path is not None and path.is_file():
        kept = path.read_text(encoding="ascii", errors="replace").strip()
        if kept and all(33 <= ord(c) < 127 for c in kept):
            return AdminToken(kept, "kept", path)
    return AdminToken(secrets.token_urlsafe(24), "new", path)


def _rate(previous: tuple[float, int] | None, now: float, merges: int) -> float | None:
    if previous is None or now <= previous[0]:
        return None
    return max(0, merges - previous[1]) / (now - previous[0])


@dataclass
class StatusLine:
    """Renders a coordinator's status (``/api/v1/status``) as one line; merges/s is measured
    between two calls: (merges now - merges then) / (seconds between)."""

    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def render(self, name: str, status: dict[str, Any], now: float) -> str:
        merges = int(status.get("merges") or 0)
        rate = _rate(self._last.get(name), now, merges)
        self._last[name] = (now, merges)
        parts = [f"v{status.get('version')}",
                 f"{merges} merges" + ("" if rate is None else f" ({rate:.1f}/s)"),
                 f"{status.get('clients', 0)} clients",
                 describe_evaluation(status.get("lastEvaluation")),
                 str(status.get("state"))]
        if status.get("endReason"):
            parts[-1] += f" ({status['endReason']})"
        return " | ".join(parts)


def describe_evaluation(entry: dict[str, Any] | None) -> str:
    """A history entry (its ``valAccuracy``, ``version``, ``validated``) as ``accuracy 0.9120
    (v40, validated)`` or ``... not validated``; ``no validation yet`` without one."""
    accuracy = None if not entry else entry.get("valAccuracy")
    if entry is None or accuracy is None:
        return "no validation yet"
    validated = "validated" if entry.get("validated") else "not validated"
    return f"accuracy {float(accuracy):.4f} (v{entry.get('version')}, {validated})"
