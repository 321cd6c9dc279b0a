"""What a comparison ran on, recorded beside its results (``provenance.json``) and in its report:
webnn's version and git commit, Python, Node and TF.js versions, the CPUs and the load when it
started. A figure without these cannot be reproduced or put in context (a shared machine's load
changes throughput, and so every time-based result)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

UNKNOWN = "unknown"


def _quiet(command: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False,
                              cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else UNKNOWN


def git_commit(where: Path) -> str:
    """The commit checked out at `where`, with ``+dirty`` when the tree has changes."""
    commit = _quiet(["git", "rev-parse", "HEAD"], where)
    if commit == UNKNOWN:
        return commit
    dirty = _quiet(["git", "status", "--porcelain", "--untracked-files=no"], where)
    return commit + ("+dirty" if dirty not in ("", UNKNOWN) else "")


def tfjs_version(client_dir: Path) -> str:
    package = client_dir / "node_modules" / "@tensorflow" / "tfjs" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return UNKNOWN


def collect_provenance(client_dir: Path, node: str = "node") -> dict[str, str | int | float]:
    """The facts listed in the module docstring, as a flat JSON-ready dict."""
    try:
        version = metadata.version("webnn")
    except metadata.PackageNotFoundError:
        version = UNKNOWN
    load1, _, _ = os.getloadavg()
    return {
        "webnn": version,
        "commit": git_commit(Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "node": _quiet([node, "--version"]),
        "tfjs": tfjs_version(client_dir),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "load1": round(load1, 2),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
