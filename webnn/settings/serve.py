"""The serve settings, declared once: `ServeConfig` (one served model, what `create_app` takes)
and `ProcessSettings` (one ``wnn serve`` process).

Every field is a `setting`: its type, constraints, default and description are the only
statement of it. From these models ``wnn serve``'s options are generated (`webnn.settings.cli`),
serve TOML files are read (`webnn.server.toml_config`), ``create_app`` gets its checked settings
and docs/settings.md is written (`webnn.settings.reference`). Fields with ``scope="process"`` are
one value per process (top level of a TOML file) that every model's `ServeConfig` receives;
``toml=False`` marks settings only embedding code sets.

`ServeConfig(...)` raises `ConfigError` listing every problem, each with its key path.
`validate()` re-checks the current values (after assignments) and the file system (a state
directory that is a file, a client folder without its page); `check()` raises for those.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    model_validator,
)

from webnn.settings.cluster import ClusterProcessFields
from webnn.settings.core import nested, problems_from, setting, show, split_problem
from webnn.settings.errors import ConfigError, Problem

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""A model name is used as a URL path segment and a directory name."""

UpdateEncoding = Literal["auto", "q8", "f16", "f32"]
WeightsEncoding = Literal["auto", "f16", "f32"]
WorkerBackend = Literal["cpu", "wasm"]
PartitionKind = Literal["iid", "dirichlet", "shards", "by_key"]
EventLoop = Literal["auto", "asyncio", "uvloop"]
LrScaling = Literal["none", "sqrt", "linear"]

SETTINGS_CONFIG = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                             arbitrary_types_allowed=True, validate_default=False,
                             validate_by_name=True, validate_by_alias=True)
"""Every settings model: exact types (a TOML ``"5"`` is not a number), unknown keys refused,
finite numbers only."""


# ---- value checks shared by the fields below

def _scalar_table(value: Any, *, as_strings: bool) -> Any:
    """A table of strings, numbers and booleans (nested tables/arrays refused with their key);
    `as_strings`: each value as the string a ``--data-option key=value`` flag would give."""
    if not isinstance(value, Mapping):
        return value
    problems = [(str(k), f"expected a string, number or boolean, got "
                         f"{'a table' if isinstance(v, Mapping) else 'an array'}")
                for k, v in value.items() if isinstance(v, Mapping | list | tuple)]
    if problems:
        raise nested(problems)
    if not as_strings:
        return dict(value)
    return {str(k): ("true" if v is True else "false" if v is False else str(v))
            for k, v in value.items()}


def _check_name(value: str | None) -> str | None:
    if value is not None and not NAME_PATTERN.match(value):
        raise ValueError(f"{show(value)} is not a valid model name (letters, digits, '_', '.', "
                         "'-'; starting with a letter or digit)")
    return value


def _check_spec(value: Any) -> Any:
    if not isinstance(value, bool | int | float | list | tuple) and value is not None:
        return value
    raise ValueError(f"expected a path, a table or a ModelSpec, got {show(value)}")


def _check_data(value: Any) -> Any:
    if not isinstance(value, bool | int | float | Mapping | list | tuple) and value is not None:
        return value
    raise ValueError(f"expected a data module (a .py file or a dotted name) or a Dataset, "
                     f"got {show(value)}")


def _check_strategy(value: Any) -> Any:
    if not isinstance(value, bool | int | float | Mapping | list | tuple) and value is not None:
        return value
    raise ValueError(f"expected a strategy name, a module:attr reference or a Strategy, "
                     f"got {show(value)}")


def _check_screening(value: Any) -> Any:
    """None (the default screening), False or "off", a table laid over the defaults, or a
    `ScreeningConfig`; a table is checked as `ScreeningConfig` checks it."""
    from webnn.merge.screening import DEFAULT_SCREENING, ScreeningConfig, ScreeningConfigError

    if value is None or value is False or isinstance(value, ScreeningConfig):
        return value
    if isinstance(value, str):
        if value.lower() == "off":
            return "off"
        raise ValueError(f'expected a table or "off", got {show(value)}')
    if not isinstance(value, Mapping):
        raise ValueError(f'expected a table or "off", got {show(value)}')
    try:
        ScreeningConfig.from_mapping({**DEFAULT_SCREENING, **value}, path="screening")
    except ScreeningConfigError as error:
        raise nested([split_problem(str(error), "screening")]) from None
    return dict(value)


def _check_partition(value: Any) -> Any:
    """None (iid), a kind name, a table or a `PartitionConfig`, checked as `PartitionConfig`
    checks it (after `PartitionTable`'s types and bounds)."""
    from webnn.data.partition import PartitionConfig, PartitionError

    if value is None or isinstance(value, PartitionConfig | str):
        pass
    elif isinstance(value, Mapping):
        try:
            PartitionTable.model_validate(dict(value))
        except ValidationError as error:
            raise nested((p.path, p.message) for p in problems_from(error, PartitionTable)
                         ) from None
    else:
        raise ValueError(f"expected a table or a kind name, got {show(value)}")
    try:
        PartitionConfig.from_mapping(dict(value) if isinstance(value, Mapping) else value)
    except PartitionError as error:
        raise nested([split_problem(str(error), "partition")]) from None
    return dict(value) if isinstance(value, Mapping) else value


def _check_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://", "/")):
        raise ValueError(f"must be an http(s) URL or an absolute path, got {show(value)}")
    return value


def _check_token(value: str | None) -> str | None:
    if value is not None and len(value) < 8:
        raise ValueError(f"must be at least 8 characters, got {len(value)}")
    return value


def _check_proxies(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        value = tuple(value)
        empty = [(f"[{i}]", "expected an address, got an empty string")
                 for i, item in enumerate(value) if item == ""]
        if empty:
            raise nested(empty)
    return value


Spec = Annotated[Any, AfterValidator(_check_spec)]
Data = Annotated[Any, AfterValidator(_check_data)]
StrategyRef = Annotated[Any, AfterValidator(_check_strategy)]
Screening = Annotated[Any, AfterValidator(_check_screening)]
Partition = Annotated[Any, AfterValidator(_check_partition)]
DataOptions = Annotated[dict[str, str],
                        BeforeValidator(lambda v: _scalar_table(v, as_strings=True))]
StrategyParams = Annotated[dict[str, Any],
                           BeforeValidator(lambda v: _scalar_table(v, as_strings=False))]
Token = Annotated[str | None, AfterValidator(_check_token)]
Proxies = Annotated[tuple[str, ...], BeforeValidator(_check_proxies)]
DirPath = Annotated[Path | None, Strict(False)]


class PartitionTable(BaseModel):
    """The ``partition`` table: how the training set is split over clients
    (`webnn.data.partition`); each session trains on one shard, kept per volunteer id."""

    model_config = SETTINGS_CONFIG

    kind: PartitionKind = setting(
        "iid", "how the training set is split: iid (one shared stream), dirichlet (label skew "
        "per shard), shards (a few label pieces per shard), by_key (one shard per key of the "
        "data)", cli={"flag": "--partition"})
    shards: int | None = setting(
        None, "shards of a non-iid partition (by_key: one per key)", ge=1, le=100_000,
        default_text="16")
    alpha: float = setting(0.5, "Dirichlet concentration of dirichlet (lower: more skew)", gt=0)
    classes: int = setting(2, "label pieces per shard of shards", ge=1)
    min_examples: int = setting(1, "examples every dirichlet shard holds at least (redrawn "
                                   "until it does)", ge=1)


class ProcessSettings(ClusterProcessFields):
    """Settings of one ``wnn serve`` process (the top level of a serve TOML file) that are not
    `ServeConfig` fields; the scale-out ones (``redis``, ``role``, ``processes``, ...) come from
    `webnn.settings.cluster.ClusterProcessFields`."""

    model_config = SETTINGS_CONFIG

    host: str = setting("127.0.0.1", "interface to listen on (0.0.0.0 for other devices)",
                        scope="process")
    port: int = setting(8080, "TCP port (0 picks a free one)", scope="process", ge=0, le=65535)
    local_workers: int = setting(0, "headless Node workers to start per model beside the server",
                                 scope="process", ge=0, cli={"metavar": "N"})
    worker_backend: WorkerBackend = setting("cpu", "TF.js backend of the local workers",
                                            scope="process")
    # -- the HTTP layer (`webnn.server.runner.HttpLimits`): beyond a limit, 400 bad_http
    max_line_size: int = setting(8190, "bytes of an HTTP request line", scope="process", ge=64)
    max_field_size: int = setting(8190, "bytes of one HTTP header (name and value)",
                                  scope="process", ge=64)
    max_headers: int = setting(128, "HTTP headers per request", scope="process", ge=8)
    header_timeout: float = setting(
        15.0, "seconds for a request line and headers to arrive, from the connection opening or "
              "the previous answer (plus its Retry-After, if any; beyond: 408 header_timeout; an "
              "idle connection is closed)",
        scope="process", gt=0)
    loop: EventLoop = setting(
        "asyncio", "event loop of the server: asyncio (the standard library's), uvloop (pip "
                   "install uvloop; no gain measured for update bodies, docs/capacity.md) or "
                   "auto (uvloop where installed)", scope="process")
    pin_malloc: bool = setting(
        True, "on glibc Linux, give allocations of 1 MiB and more (model-sized buffers) "
              "mappings of their own, returned to the kernel when freed (off: glibc's moving "
              "threshold, under which freed model buffers stay in the process; "
              "webnn.server.allocator)", scope="process",
        cli={"flag": "--pin-malloc/--no-pin-malloc"})


class ServeConfig(BaseModel):
    """Configuration of one served model (`create_app(config)`): every field is a setting.

    `spec` is a path, a dict or a loaded `ModelSpec`; `data` a data-module reference (path to a
    ``.py`` or a dotted module name) or a `Dataset` object; `strategy` a strategy name /
    ``module:attr`` reference or a `Strategy` instance. `state_dir=None` keeps everything in
    memory. `admin_token=None` generates one (read it back from `config.admin_token`).
    Evaluation overrides (`eval_every_*`, `eval_chunk_size`) default to the spec's training
    config. Capacity limits are explained in `webnn.server.admission` and docs/capacity.md;
    encodings in `webnn.server.encodings`; partitions in `webnn.data.partition`.
    """

    model_config = SETTINGS_CONFIG

    # -- the model
    name: Annotated[str | None, AfterValidator(_check_name)] = setting(
        None, "model name: its URL /models/<name>/ and state subdirectory when several are "
              "served", cli=False, default_text="the spec's name")
    spec: Spec = setting(description="model spec: a JSON file (a path, a table or a loaded "
                                     "ModelSpec)", path="path", cli=False, type_text="path")
    data: Data = setting(description="data module: a .py file or a dotted module name (or a "
                                     "Dataset object)", path="data", cli={"metavar": "MODULE"},
                        type_text="string")
    data_options: DataOptions = setting(
        factory=dict, description="options for the data module's load(), as strings",
        cli={"flag": "--data-option", "parse": "pairs", "metavar": "KEY=VALUE"})
    strategy: StrategyRef = setting("average", "merge strategy: a name (see `wnn strategies`), "
                                               "module:attr or path/file.py:attr",
                                    cli={"metavar": "NAME"}, type_text="string")
    strategy_params: StrategyParams = setting(
        factory=dict, description="merge strategy parameters (checked against the strategy's "
                                  "declared parameters)", key="params",
        cli={"flag": "--param", "parse": "pairs", "metavar": "KEY=VALUE"})
    seed: int | None = setting(None, "seed of the initial weights and batch order",
                               default_text="the spec's seed")
    # -- training and its end
    lease_seconds: float = setting(60.0, "seconds a client has to return a task before it is "
                                         "handed out again", gt=0)
    max_staleness: int | None = setting(None, "refuse updates more than this many versions "
                                              "behind", ge=0)
    lr_scaling: LrScaling = setting(
        "none", "a train task's learning rate from the live training clients N: none (the "
                "spec's), sqrt (x sqrt(N), for Adam) or linear (x N, for SGD); "
                "docs/scaling.md")
    scaling_max_clients: int = setting(
        64, "the largest N the task scaling uses (N: live training clients, in powers of two)",
        ge=1, cli={"metavar": "N"})
    local_steps_exponent: float = setting(
        0.0, "a train task's local steps: max(min_local_steps, round(L x N^-e)) for the spec's "
             "L; 0 keeps L", ge=0, le=1, cli={"metavar": "E"})
    min_local_steps: int = setting(1, "the fewest local steps the task scaling gives a task",
                                   ge=1)
    lr_warmup: float = setting(
        0.0, "seconds over which a rise of the task learning rate (--lr-scaling) ramps "
             "linearly from the rate in use; a fall applies at once; 0 = off", ge=0,
        cli={"metavar": "SECONDS"})
    screening: Screening = setting(
        None, "update screening before every merge, laid over the default (a delta norm bound "
              "of 10 x the median of the last 50, clipped): norm_bound, adaptive_quantile, "
              "adaptive_factor, adaptive_window, adaptive_min_history, action = refuse|clip; "
              "\"off\" turns it off",
        cli={"flag": "--screen", "parse": "pairs", "metavar": "KEY=VALUE|off"},
        default_text="adaptive, clip", type_text='table or "off"')
    target_accuracy: float | None = setting(None, "end training when validation accuracy "
                                                  "reaches this", gt=0, le=1)
    max_seconds: float | None = setting(None, "end training after this many seconds", gt=0)
    max_merges: int | None = setting(None, "end training after this many merges", ge=1)
    checkpoint_every_merges: int | None = setting(100, "write a checkpoint every N merges",
                                                  ge=1)
    checkpoint_every_seconds: float | None = setting(60.0, "write a checkpoint every T "
                                                           "seconds", gt=0)
    # -- capacity (webnn.server.admission)
    update_budget: int | None = setting(
        None, "bytes of update bodies in flight before updates get 503 busy (e.g. 512M)",
        ge=1, cli={"parse": "bytes", "metavar": "BYTES"},
        default_text="32 bodies, at most 512 MiB")
    snapshot_budget: int | None = setting(
        None, "bytes of kept version snapshots (e.g. 1G)", ge=1,
        cli={"parse": "bytes", "metavar": "BYTES"}, default_text="64 snapshots, at most 1 GiB")
    answer_budget: int | None = setting(
        None, "bytes of model-sized answers (GET weights, follow-up frames) being sent at once: "
              "beyond it GET weights gets 503 busy and an update's answer goes without its "
              "follow-up frame (e.g. 512M)", ge=1, cli={"parse": "bytes", "metavar": "BYTES"},
        default_text="32 float32 weight sets, at least 512 MiB, at most 1 GiB (but 4 sets)")
    merge_queue: int = setting(32, "updates waiting to be merged before 503 busy", ge=1)
    max_open_tasks: int = setting(4, "open tasks one session may hold", ge=1)
    max_sessions: int = setting(10_000, "live sessions before joins get 503 busy", ge=1)
    joins_per_minute: float = setting(60.0, "joins per client address per minute (0: no limit)",
                                      ge=0)
    join_burst: int = setting(60, "joins one client address may make at once", ge=1)
    trusted_proxies: Proxies = setting(
        (), "addresses of reverse proxies whose X-Forwarded-For names the client",
        cli={"flag": "--trusted-proxy", "multiple": True, "metavar": "ADDRESS"})
    # -- the wire
    update_encoding: UpdateEncoding = setting(
        "auto", "what volunteers send: auto = the fewest bytes a client offers (8-bit deltas), "
                "else the one named when offered, f32 otherwise")
    weights_encoding: WeightsEncoding = setting(
        "auto", "what volunteers receive: auto = the fewest bytes a client offers")
    private_status: bool = setting(
        False, "client list, history and events only for joined sessions and the admin token",
        cli={"flag": "--private-status/--public-status"})
    # -- evaluation
    eval_quorum: int = setting(2, "sessions that must agree on each validation chunk (1 trusts "
                                  "every result)", ge=1)
    eval_quorum_wait: float = setting(30.0, "seconds a chunk short of its quorum waits before "
                                            "it is accepted unvalidated", gt=0)
    eval_distinct_parties: bool = setting(
        True, "evaluation replicas of one chunk must come from different client addresses "
              "(loopback exempt) and volunteer ids; turn off when many honest volunteers share "
              "one address (a school behind one NAT)",
        cli={"flag": "--eval-distinct-parties/--eval-any-sessions"})
    body_timeout: float = setting(10.0, "seconds an update body may go without a byte before "
                                        "it is answered 408", gt=0)
    update_latency: float = setting(
        0.5, "the queueing delay an accepted update may face, in seconds (0: no such bound); "
             "updates beyond it get 503 busy and training leases are deferred (lower it for a "
             "lower update p99 at the cost of more 503s)", ge=0, cli={"metavar": "SECONDS"})
    partition: Partition = setting(
        None, "training data per client: iid (one shared stream), a kind name or a table "
              "(see partition.* below); each volunteer keeps its shard across reconnects",
        cli={"table": "PartitionTable"}, default_text="iid", type_text="kind name or table")
    # -- one value per process, given to every model
    state_dir: DirPath = setting(
        None, "checkpoint directory (a subdirectory per model when several are served); an "
              "existing one is resumed", scope="process", path="path", cli={"dir": True},
        default_text="in memory only")
    admin_token: Token = setting(
        factory=lambda: secrets.token_urlsafe(24),
        description="bearer token for admin actions (at least 8 characters)", scope="process",
        cli={"envvar": "WEBNN_ADMIN_TOKEN"},
        default_text="generated, kept in the state directory")
    join_token: Token = setting(None, "bearer token volunteers must send to join (at least 8 "
                                      "characters)", scope="process", default_text="open")
    tfjs_url: Annotated[str | None, AfterValidator(_check_url)] = setting(
        None, "URL the volunteer page loads TF.js from", scope="process",
        default_text="served locally")
    client_dir: DirPath = setting(
        None, "a customised client folder to serve: src/ (page, dashboard, client library) "
              "and, optionally, node_modules/", scope="process", path="path", cli={"dir": True},
        default_text="the bundled client")
    # -- embedding only (create_app)
    session_timeout: float = setting(300.0, "seconds without a request before a session is "
                                            "dropped", gt=0, toml=False)
    poll_seconds: float = setting(2.0, "seconds a client waits before asking again when there "
                                       "is no work", gt=0, toml=False)
    eval_every_merges: int | None = setting(None, "validate every N merges", ge=1, toml=False,
                                            default_text="the spec's training config")
    eval_every_seconds: float | None = setting(None, "validate every T seconds", gt=0,
                                               toml=False,
                                               default_text="the spec's training config")
    eval_chunk_size: int | None = setting(None, "validation examples per evaluation task",
                                          ge=1, toml=False,
                                          default_text="the spec's training config")
    evaluate_initial: bool = setting(True, "validate the initial weights", toml=False)
    export_dir: DirPath = setting(None, "write the final model there as TF.js files",
                                  toml=False)
    max_invalid_updates: int = setting(5, "refused updates in a row before a session is "
                                          "dropped", ge=1, toml=False)
    cut_off_seconds: float = setting(60.0, "seconds the end of training waits for tasks in "
                                           "flight", gt=0, toml=False)
    tick_seconds: float = setting(0.25, "seconds between the coordinator's housekeeping ticks",
                                  gt=0, toml=False)

    if not TYPE_CHECKING:  # type checkers see the fields' own signature (dataclass_transform)
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise ConfigError(problems_from(error, type(self)), "ServeConfig") from None

    @model_validator(mode="after")
    def _defaults(self) -> ServeConfig:
        if self.client_dir is None:
            from webnn import bundled

            self.client_dir = bundled.client_dir()
        if isinstance(self.strategy, str) and self.strategy_params:
            from webnn.merge.params import check_strategy_params

            problems = check_strategy_params(self.strategy, self.strategy_params)
            if problems:
                raise nested((f"params.{p.path}" if p.path else "params", p.message)
                             for p in problems)
        elif not isinstance(self.strategy, str) and self.strategy_params:
            raise ValueError("strategy_params: given with a strategy instance; configure the "
                             "instance instead")
        if self.lr_warmup > 0 and self.lr_scaling == "none":
            raise ValueError("lr_warmup: a warm-up needs a rate rule to ramp to: set lr_scaling "
                             "to sqrt or linear (with none the task rate never rises)")
        return self

    def validate(self) -> list[str]:  # type: ignore[override]
        """Every problem with the current values, as ``field: message``; empty when valid.

        The values are checked again (they may have been assigned since), then the file
        system: a state directory that is a file, a client folder without src/index.html."""
        problems: list[str] = []
        try:
            type(self)(**{name: getattr(self, name) for name in type(self).model_fields})
        except ConfigError as error:
            problems.extend(error.problems)
        state_dir = self.state_dir
        if isinstance(state_dir, Path) and state_dir.exists() and not state_dir.is_dir():
            problems.append(Problem("state_dir", f"{state_dir} exists and is not a directory"))
        client_dir = self.client_dir
        if isinstance(client_dir, Path) and not (client_dir / "src" / "index.html").is_file():
            from webnn import bundled

            bundled_dir = bundled.client_dir()
            hint = ("this webnn carries no client: install webnn from a wheel built after `npm "
                    "ci` in client_js/, or run it from a checkout (`make setup`)"
                    if client_dir == bundled_dir else
                    f"give a folder holding src/index.html (e.g. a copy of {bundled_dir}), or "
                    "leave client_dir unset to serve the bundled client")
            problems.append(Problem("client_dir", f"no browser client at {client_dir} "
                                                  f"(src/index.html is missing); {hint}"))
        return problems

    def check(self) -> None:
        """Raise `ConfigError` listing every problem, if any."""
        problems = self.validate()
        if problems:
            raise ConfigError(problems, "ServeConfig")


def toml_fields(model: type[BaseModel]) -> dict[str, Any]:
    """``{key: field}`` of the settings a TOML file (and the command line) may give."""
    from webnn.settings.core import info, key_of

    return {key_of(name, field): field for name, field in model.model_fields.items()
            if info(field).get("toml", True)}


PROCESS_KEYS = frozenset(
    [*toml_fields(ProcessSettings)] +
    [k for k, f in toml_fields(ServeConfig).items()
     if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("scope") == "process"])
"""Keys of settings with one value per ``wnn serve`` process."""
MODEL_KEYS = frozenset(k for k in toml_fields(ServeConfig) if k not in PROCESS_KEYS)
"""Keys of settings with one value per served model."""
