"""The scale-out settings (``wnn serve --redis URL``, docs/scale-out.md), declared once.

`ClusterFields` declares the settings a scale-out run shares with the command line and serve
TOML files (process scope: one value per ``wnn serve`` process); `ProcessSettings` takes them
(so ``--redis``, ``--processes``, ``--role``, ``--keep-stream`` and the tuning flags are
generated from them, and docs/settings.md lists them), and `ClusterSettings` (what
``create_app(config, cluster=...)`` and the cluster processes take) takes the same fields plus
the ones only embedding code sets. ``ClusterSettings(...)`` raises `ClusterSettingsError` (a
`ConfigError`) listing every problem.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from webnn.settings.core import problems_from, setting, show
from webnn.settings.errors import ConfigError

Role = Literal["all", "frontend", "merger"]
ROLES: tuple[str, ...] = ("all", "frontend", "merger")
MAX_COMBINE = 64
"""At most this many updates in one partial (an average's scale 2^-m stays a normal float32)."""
URL_SCHEMES = ("redis://", "rediss://", "unix://")
KEEP_VERSIONS_BYTES = 512 << 20
"""Redis memory for kept versions' weights when ``--keep-versions`` is not set."""
MIN_KEPT_VERSIONS = 32
MAX_KEPT_VERSIONS = 1024


def kept_versions(keep_versions: int | None, model_bytes: int) -> int:
    """Versions whose weights stay in Redis: `keep_versions` if set, else
    clamp(KEEP_VERSIONS_BYTES // model_bytes, MIN_KEPT_VERSIONS, MAX_KEPT_VERSIONS).

    The window must cover the versions published while a volunteer trains: an update based on
    an older version is refused (``too_stale``). On the device, 10 000 clients with 5-10 s
    tasks on a 1M-parameter model (8 versions/s) based half their updates on a version older
    than 32; 128 (512 MiB) refused a tenth as many (docs/scale-out.md).
    """
    if keep_versions is not None:
        return keep_versions
    fit = KEEP_VERSIONS_BYTES // max(1, model_bytes)
    return max(MIN_KEPT_VERSIONS, min(MAX_KEPT_VERSIONS, fit))


def _check_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(URL_SCHEMES):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {show(value)}")
    return value


RedisUrl = Annotated[str | None, AfterValidator(_check_url)]


class ClusterSettingsError(ConfigError):
    """A scale-out setting is invalid; the message names it."""


class ClusterFields(BaseModel):
    """The scale-out settings a ``wnn serve`` process takes (see the module docstring)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              validate_default=False, validate_by_name=True,
                              validate_by_alias=True)

    role: Role = setting(
        "all", "with --redis: all starts --processes front-ends and --mergers mergers and "
               "restarts any that dies; frontend or merger runs one such process (joining a "
               "run from another machine)", scope="process")
    processes: int = setting(2, "with --redis: front-end processes sharing the port",
                             scope="process", ge=1, cli={"metavar": "N"})
    mergers: int = setting(2, "with --redis: merger processes of role all (one active, the "
                              "others standby)", scope="process", ge=1, cli={"metavar": "N"})
    combine_max: int = setting(16, "with --redis: updates at most in one pre-aggregated "
                                   "partial (combinable strategies)", scope="process", ge=1,
                               le=MAX_COMBINE)
    combine_ms: float = setting(5.0, "with --redis: milliseconds a front-end gathers updates "
                                     "into one partial (up to 8 times longer while more update "
                                     "bodies are on their way)", scope="process", ge=0)
    keep_versions: int | None = setting(
        None, "with --redis: published versions whose weights stay in Redis (an update on an "
              "older base is too_stale)", scope="process", ge=2,
        default_text=f"as many as fit in {KEEP_VERSIONS_BYTES >> 20} MiB, {MIN_KEPT_VERSIONS} "
                     f"to {MAX_KEPT_VERSIONS}")
    merge_log_keep: int = setting(100_000, "with --redis: newest merge log records kept in "
                                           "Redis (one per applied stream entry)",
                                  scope="process", ge=1)
    lock_ms: int = setting(1500, "with --redis: the merger lock's lease in ms (a standby takes "
                                 "over within about this long)", scope="process", ge=100)
    merge_backlog: float = setting(
        2.0, "with --redis: seconds of the merger's work the unmerged stream may hold; past it "
             "front-ends refuse update bodies (503 busy), past half of it they defer training "
             "leases (0: off)", scope="process", ge=0)
    claim_seconds: float = setting(
        30.0, "with --redis: seconds a front-end may hold a claimed update before the stream "
              "(a front-end that died meanwhile gives its task back after this)",
        scope="process", gt=0)


class ClusterSettings(ClusterFields):
    """How this process takes part in a scale-out run (`ClusterFields` plus the fields below).

    `redis_url`: the Redis holding the run (``redis://host:port/db``). `run`: the run's name in
    Redis (keys ``wnn:<run>:...``; default the model's name). `trim_stream`: drop merged
    entries from the stream (off keeps them all, for audits and tests: ``--keep-stream``).
    `process`: the label of this process in /metrics (default ``role-index`` under one
    supervisor, else ``role-host-pid``).
    """

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              validate_default=False, validate_by_name=True,
                              validate_by_alias=True, frozen=True)

    redis_url: Annotated[str, AfterValidator(_check_url)] = setting(
        description="the Redis holding the run", toml=False, cli=False)
    run: str | None = setting(None, "the run's name in Redis", toml=False, cli=False,
                              default_text="the model's name")
    trim_stream: bool = setting(True, "drop merged entries from the stream", toml=False,
                                cli=False)
    process: str = setting("", "this process's label in /metrics", toml=False, cli=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ClusterSettingsError(problems_from(error, type(self)),
                                       "ClusterSettings") from None

    @classmethod
    def from_process(cls, process: Mapping[str, Any], **values: Any) -> ClusterSettings:
        """The settings of a ``wnn serve`` process (its `ProcessSettings` values: ``redis``,
        ``keep_stream`` and the `ClusterFields`), with `values` laid over them."""
        shared = {name: process[name] for name in ClusterFields.model_fields if name in process}
        return cls(**{"redis_url": process.get("redis"),
                      "trim_stream": not process.get("keep_stream", False), **shared, **values})

    def label(self, role: str, index: int | None = None) -> str:
        """This process's `process` label: the given one, else ``role-host-pid`` (or
        ``role-index`` under one supervisor)."""
        if self.process:
            return self.process
        if index is not None:
            return f"{role}-{index}"
        return f"{role}-{socket.gethostname()}-{os.getpid()}"


class RedisFields(BaseModel):
    """The two scale-out settings only a ``wnn serve`` process takes: ``redis`` (turns
    scale-out on) and ``keep_stream``."""

    model_config = ClusterFields.model_config

    redis: RedisUrl = setting(None, "scale out: coordinate the run through this Redis "
                                    "(redis://host:port/db; docs/scale-out.md)",
                              scope="process", cli={"metavar": "URL"})
    keep_stream: bool = setting(False, "with --redis: keep merged updates in the Redis stream "
                                       "(audits, tests)", scope="process",
                                cli={"flag": "--keep-stream/--no-keep-stream"})


class ClusterProcessFields(ClusterFields, RedisFields):
    """Every scale-out setting of a ``wnn serve`` process (``redis`` and ``keep_stream`` first,
    then `ClusterFields`)."""
