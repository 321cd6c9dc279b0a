"""`ServeConfig`: everything one served model needs, validated with clear errors.

`ServeConfig.validate()` lists problems as ``field: message`` strings; `check()` raises
`ConfigError` with all of them. `load_parts()` turns the references (spec path, data module,
strategy name) into the objects the coordinator uses.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webnn import bundled


class ConfigError(ValueError):
    """The serve configuration is invalid; `problems` lists every ``field: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid serve configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def default_client_dir() -> Path:
    """The bundled client: the installed package's ``_client`` (a wheel install), else the
    checkout's ``client_js`` (an editable install); see `webnn.bundled`."""
    return bundled.client_dir()


@dataclass
class ServeConfig:
    """Configuration of one served model (`create_app(config)`).

    `spec` is a path, a dict or a loaded `ModelSpec`; `data` a data-module reference (path to a
    ``.py`` or a dotted module name) or a `Dataset` object; `strategy` a strategy name /
    ``module:attr`` reference or a `Strategy` instance. `state_dir=None` keeps everything in memory.
    `screening` is a `webnn.merge.screening.ScreeningConfig` or its mapping (norm bound, clipping),
    applied to every update before the strategy sees it. `admin_token=None` generates one (read it
    back from `config.admin_token`); `join_token=None` lets anyone join. Evaluation overrides
    (`eval_every_*`, `eval_chunk_size`) default to the spec's training config.

    Capacity limits (see `webnn.server.admission`): `update_budget` bytes of update bodies in flight
    (None: room for 32 bodies, at most 512 MiB, at least 4), `snapshot_budget` bytes of kept
    version snapshots (None: 64 snapshots, at most 1 GiB, at least 4), `merge_queue` updates
    waiting for the merge lock, `max_open_tasks` per session, `max_sessions` live sessions,
    `joins_per_minute` per client address with bursts of `join_burst` (0: no join rate limit), and
    `trusted_proxies`: addresses whose ``X-Forwarded-For`` names the client. `private_status`
    restricts the client list, history and event stream to joined sessions and the admin token.
    `body_timeout`: seconds an update body may go without a byte before it is answered 408.
    `update_encoding` (``auto``, ``q8``, ``f16``, ``f32``) and `weights_encoding` (``auto``,
    ``f16``, ``f32``): what sessions send and receive (`webnn.server.encodings`; ``auto`` = the
    fewest bytes the client offers; a client that offers nothing gets ``f32``).

    `partition`: how the training set is split over clients (`webnn.data.partition`): None or
    ``"iid"`` (one shared stream), a kind name, a table ``{"kind": "dirichlet", "alpha": 0.1,
    "shards": 16}`` or a `PartitionConfig`; shards default to `DEFAULT_SHARDS`. Each session trains
    on one shard, kept per volunteer id (`webnn.server.shards`).

    `client_dir`: the client folder to serve (``src/`` holds the pages and the client library;
    TF.js, its wasm backend and chart.js come from its ``node_modules/`` when there, else from the
    bundled client); None: the bundled client (`default_client_dir`).

    `screening=None` screens with `webnn.merge.screening.DEFAULT_SCREENING` (an adaptive norm
    bound); a mapping is laid over those defaults key by key; ``"off"`` or False turns screening
    off. `eval_quorum`: sessions that must agree on each validation chunk (see
    `webnn.server.evaluation`); a chunk short of its quorum is accepted unvalidated after
    `eval_quorum_wait` seconds, or at once when no other live session could evaluate it.
    """

    spec: Any
    data: Any
    data_options: dict[str, str] = field(default_factory=dict)
    strategy: Any = "average"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    state_dir: Path | None = None
    admin_token: str | None = None
    join_token: str | None = None
    lease_seconds: float = 60.0
    session_timeout: float = 300.0
    poll_seconds: float = 2.0
    checkpoint_every_merges: int | None = 100
    checkpoint_every_seconds: float | None = 60.0
    max_staleness: int | None = None
    screening: Any = None
    target_accuracy: float | None = None
    max_seconds: float | None = None
    max_merges: int | None = None
    eval_every_merges: int | None = None
    eval_every_seconds: float | None = None
    eval_chunk_size: int | None = None
    evaluate_initial: bool = True
    export_dir: Path | None = None
    client_dir: Path | None = None
    tfjs_url: str | None = None
    max_invalid_updates: int = 5
    cut_off_seconds: float = 60.0
    tick_seconds: float = 0.25
    update_budget: int | None = None
    snapshot_budget: int | None = None
    merge_queue: int = 32
    max_open_tasks: int = 4
    max_sessions: int = 10_000
    joins_per_minute: float = 60.0
    join_burst: int = 60
    trusted_proxies: tuple[str, ...] = ()
    private_status: bool = False
    eval_quorum: int = 2
    eval_quorum_wait: float = 30.0
    body_timeout: float = 10.0
    update_encoding: str = "auto"
    weights_encoding: str = "auto"
    partition: Any = None

    def __post_init__(self) -> None:
        if self.admin_token is None:
            self.admin_token = secrets.token_urlsafe(24)
        for name in ("state_dir", "export_dir", "client_dir"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, Path(value))
        if self.client_dir is None:
            self.client_dir = default_client_dir()

    def validate(self) -> list[str]:
        """Every problem with the plain fields, as ``field: message``; empty when valid."""
        problems: list[str] = []

        def positive(name: str, optional: bool, integer: bool = False) -> None:
            value = getattr(self, name)
            if value is None:
                if not optional:
                    problems.append(f"{name}: required")
                return
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                problems.append(f"{name}: must be {'an integer' if integer else 'a number'}, "
                                f"got {value!r}")
            elif not math.isfinite(value) or value <= 0:
                problems.append(f"{name}: must be > 0, got {value!r}")

        if self.spec is None:
            problems.append("spec: required (a path, a dict or a ModelSpec)")
        if self.data is None:
            problems.append("data: required (a data module reference or a Dataset)")
        for name in ("lease_seconds", "session_timeout", "poll_seconds", "cut_off_seconds",
                     "tick_seconds", "eval_quorum_wait", "body_timeout"):
            positive(name, optional=False)
        for name in ("checkpoint_every_seconds", "max_seconds", "eval_every_seconds"):
            positive(name, optional=True)
        for name in ("checkpoint_every_merges", "max_merges", "eval_every_merges",
                     "eval_chunk_size"):
            positive(name, optional=True, integer=True)
        positive("max_invalid_updates", optional=False, integer=True)
        from webnn.server.encodings import UPDATE_SETTINGS, WEIGHTS_SETTINGS

        for name, choices in (("update_encoding", UPDATE_SETTINGS),
                              ("weights_encoding", WEIGHTS_SETTINGS)):
            if getattr(self, name) not in choices:
                problems.append(f"{name}: must be one of {', '.join(choices)}, got "
                                f"{getattr(self, name)!r}")
        if not isinstance(self.private_status, bool):
            problems.append(f"private_status: must be true or false, got {self.private_status!r}")
        for name in ("merge_queue", "max_open_tasks", "max_sessions", "join_burst",
                     "eval_quorum"):
            positive(name, optional=False, integer=True)
        for name in ("update_budget", "snapshot_budget"):
            positive(name, optional=True, integer=True)
        rate = self.joins_per_minute
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
                math.isfinite(rate) and rate >= 0):
            problems.append(f"joins_per_minute: must be a number >= 0 (0: no limit), got {rate!r}")
        if not isinstance(self.trusted_proxies, list | tuple | set | frozenset) or not all(
                isinstance(a, str) and a for a in self.trusted_proxies):
            problems.append("trusted_proxies: must be a list of addresses, got "
                            f"{self.trusted_proxies!r}")
        if self.max_staleness is not None and (
            not isinstance(self.max_staleness, int) or self.max_staleness < 0
        ):
            problems.append(f"max_staleness: must be an integer >= 0, got {self.max_staleness!r}")
        if self.target_accuracy is not None and not (
            isinstance(self.target_accuracy, int | float) and 0 < self.target_accuracy <= 1
        ):
            problems.append(f"target_accuracy: must be in (0, 1], got {self.target_accuracy!r}")
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int)):
            problems.append(f"seed: must be an integer, got {self.seed!r}")
        from webnn.data.partition import PartitionConfig, PartitionError

        try:
            PartitionConfig.from_mapping(self.partition)
        except PartitionError as error:
            problems.append(str(error))
        if not isinstance(self.data_options, dict):
            problems.append("data_options: must be a dict of name -> value")
        if not isinstance(self.strategy_params, dict):
            problems.append("strategy_params: must be a dict of name -> value")
        for name in ("admin_token", "join_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) < 8):
                problems.append(f"{name}: must be a string of at least 8 characters")
        if self.state_dir is not None and self.state_dir.exists() and not self.state_dir.is_dir():
            problems.append(f"state_dir: {self.state_dir} exists and is not a directory")
        if self.client_dir is not None and not (self.client_dir / "src" / "index.html").is_file():
            bundled_dir = default_client_dir()
            hint = ("this webnn carries no client: install webnn from a wheel built after `npm "
                    "ci` in client_js/, or run it from a checkout (`make setup`)"
                    if self.client_dir == bundled_dir else
                    f"give a folder holding src/index.html (e.g. a copy of {bundled_dir}), or "
                    "leave client_dir unset to serve the bundled client")
            problems.append(f"client_dir: no browser client at {self.client_dir} "
                            f"(src/index.html is missing); {hint}")
        if self.tfjs_url is not None and not (
            isinstance(self.tfjs_url, str)
            and self.tfjs_url.startswith(("http://", "https://", "/"))
        ):
            problems.append(f"tfjs_url: must be an http(s) URL or an absolute path, "
                            f"got {self.tfjs_url!r}")
        return problems

    def check(self) -> None:
        """Raise `ConfigError` listing every problem, if any."""
        problems = self.validate()
        if problems:
            raise ConfigError(problems)


@dataclass
class ModelParts:
    """The loaded objects behind a config: spec, dataset, strategy instance and update screening."""

    spec: Any
    dataset: Any
    strategy: Any
    seed: int
    screening: Any = None
    partition: Any = None  # a `PartitionConfig`
    shards: Any = None  # its index arrays; None: iid (one shared stream)


def _load_screening(screening: Any) -> Any:
    """The `ScreeningConfig` of `screening` (see `ServeConfig`); None when it is off."""
    from webnn.merge.screening import DEFAULT_SCREENING, ScreeningConfig, ScreeningConfigError

    if isinstance(screening, ScreeningConfig):
        return screening
    if screening is False or (isinstance(screening, str) and screening.lower() == "off"):
        return None
    if screening is None:
        screening = {}
    if not isinstance(screening, dict):
        raise ConfigError([f"screening: must be a ScreeningConfig, a table or \"off\", "
                           f"got {screening!r}"])
    try:
        return ScreeningConfig.from_mapping({**DEFAULT_SCREENING, **screening})
    except ScreeningConfigError as error:
        raise ConfigError([str(error)]) from None


def _load_spec(source: Any) -> Any:
    if hasattr(source, "compiled") and hasattr(source, "training"):
        return source
    from webnn.spec import SpecError, load_spec

    try:
        return load_spec(source)
    except SpecError as error:
        lines = [f"{p.path}: {p.message}" for p in error.problems]
        raise ConfigError([f"spec: {line}" for line in lines]) from None


def _load_dataset(data: Any, options: dict[str, str], spec: Any) -> Any:
    if isinstance(data, str | Path):
        from webnn.data import DataModuleError, load_data_module

        try:
            dataset = load_data_module(str(data), {k: str(v) for k, v in options.items()})
        except DataModuleError as error:
            raise ConfigError([f"data: {error}"]) from None
    else:
        dataset = data
    from webnn.data import check_dataset

    problems = check_dataset(dataset, spec)
    if problems:
        raise ConfigError([f"data: {p}" for p in problems])
    return dataset


def _load_strategy(strategy: Any, params: dict[str, Any]) -> Any:
    if not isinstance(strategy, str):
        if params:
            raise ConfigError(["strategy_params: given with a strategy instance; "
                               "configure the instance instead"])
        return strategy
    from webnn.merge import create_strategy

    try:
        return create_strategy(strategy, params)
    except (ValueError, TypeError, KeyError, ImportError, LookupError) as error:
        raise ConfigError([f"strategy: {error}"]) from None


def load_parts(config: ServeConfig) -> ModelParts:
    """Validate `config` and load its spec, dataset and strategy; raises `ConfigError`."""
    config.check()
    spec = _load_spec(config.spec)
    dataset = _load_dataset(config.data, config.data_options, spec)
    strategy = _load_strategy(config.strategy, config.strategy_params)
    seed = config.seed if config.seed is not None else int(getattr(spec.training, "seed", 0) or 0)
    partition, shards = _load_partition(config.partition, dataset, seed)
    return ModelParts(spec=spec, dataset=dataset, strategy=strategy, seed=seed,
                      screening=_load_screening(config.screening), partition=partition,
                      shards=shards)


DEFAULT_SHARDS = 16
"""Shards of a non-iid partition when none are set."""


def _load_partition(setting: Any, dataset: Any, seed: int) -> tuple[Any, Any]:
    """The `PartitionConfig` and the shards of the training set (None for iid)."""
    from webnn.data.partition import PartitionConfig, PartitionError, partition

    config = PartitionConfig.from_mapping(setting).with_default_shards(DEFAULT_SHARDS)
    if config.is_iid:
        return config, None
    try:
        labels = dataset.train_labels() if config.kind != "by_key" else None
        keys = dataset.train_keys() if config.kind == "by_key" else None
        shards = partition(config, seed, labels=labels, keys=keys)
        dataset.train_examples(shards[0][:1])  # random access is needed: fail now, not later
    except (PartitionError, AttributeError, ValueError) as error:
        text = str(error)
        raise ConfigError([text if text.startswith("partition") else f"partition: {text}"]
                          ) from None
    if config.shards is None:
        from dataclasses import replace

        config = replace(config, shards=len(shards))
    return config, shards
