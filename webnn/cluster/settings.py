"""The settings of a scale-out run (``wnn serve --redis URL ...``), beside its `ServeConfig`."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

ROLES = ("all", "frontend", "merger")
MAX_COMBINE = 64
"""At most this many updates in one partial (an average's scale 2^-m stays a normal float32)."""


class ClusterSettingsError(ValueError):
    """A scale-out setting is invalid; the message names it."""


@dataclass(frozen=True)
class ClusterSettings:
    """How this process takes part in a scale-out run.

    `redis_url`: the Redis holding the run (``redis://host:port/db``). `role`: ``all`` starts
    `processes` front-ends on one port plus `mergers` merger processes (one active, the others
    standby) and restarts any that die; ``frontend`` / ``merger`` run one such process (to join
    a run from another machine). `run`: the run's name in Redis (keys ``wnn:<run>:...``; default
    the model's name). `combine_max` updates at most and `combine_ms` milliseconds at most are
    gathered into one pre-aggregated partial (combinable strategies only). `keep_versions`:
    published versions whose weights stay in Redis (older bases are `too_stale`).
    `lock_ms`: the merger lock's lease (a standby takes over within about this long).
    `claim_seconds`: how long a front-end may hold an update between its claim and the stream
    (a front-end that died meanwhile gives the task back after this). `trim_stream`: drop merged
    entries from the stream (off keeps them all, for audits and tests). `process`: the label of
    this process in /metrics.
    """

    redis_url: str
    role: str = "all"
    processes: int = 2
    mergers: int = 2
    run: str | None = None
    combine_max: int = 16
    combine_ms: float = 5.0
    keep_versions: int = 32
    lock_ms: int = 3000
    claim_seconds: float = 30.0
    trim_stream: bool = True
    process: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.role not in ROLES:
            problems.append(f"role: must be one of {list(ROLES)}, got {self.role!r}")
        if self.processes < 1:
            problems.append(f"processes: must be >= 1, got {self.processes}")
        if self.mergers < 1:
            problems.append(f"mergers: must be >= 1, got {self.mergers}")
        if not 1 <= self.combine_max <= MAX_COMBINE:
            problems.append(f"combine_max: must be from 1 to {MAX_COMBINE}, "
                            f"got {self.combine_max}")
        if self.combine_ms < 0:
            problems.append(f"combine_ms: must be >= 0, got {self.combine_ms}")
        if self.keep_versions < 2:
            problems.append(f"keep_versions: must be >= 2, got {self.keep_versions}")
        if self.lock_ms < 100:
            problems.append(f"lock_ms: must be >= 100, got {self.lock_ms}")
        if self.claim_seconds <= 0:
            problems.append(f"claim_seconds: must be > 0, got {self.claim_seconds}")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append(f"redis_url: must start with redis://, rediss:// or unix://, "
                            f"got {self.redis_url!r}")
        if problems:
            raise ClusterSettingsError("; ".join(problems))

    def label(self, role: str, index: int | None = None) -> str:
        """This process's `process` label: the given one, else ``role-host-pid`` (or
        ``role-index`` under one supervisor)."""
        if self.process:
            return self.process
        if index is not None:
            return f"{role}-{index}"
        return f"{role}-{socket.gethostname()}-{os.getpid()}"
