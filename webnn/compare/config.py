"""The `wnn compare` experiment config: a TOML file read through settings models.

Every table of the file is a pydantic dataclass declared here once (`StrategyEntry`,
`ClientGroup`, `Churn`, `StopCondition`, `EvaluationSchedule`, `ServerOptions`, `Sweep`), each
field with its type, bounds, default and description; `CompareFile` is the document. Every problem
found is reported at once as a `ConfigError` (`webnn.settings`), each with the dotted key path
that holds it, e.g. ``strategies[2].params.alpha: expected a number, got "x"``; unknown keys are
errors with "did you mean". Checks across tables (files exist, labels are unique, what the worker
kind supports, the swept group, the strategy's parameters) follow once every table is well
typed. Paths in the file (model spec, data module) are relative to the config file's directory.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from webnn.settings.core import nested, problems_from, setting, show, split_problem
from webnn.settings.errors import ConfigError, Problem
from webnn.settings.serve import DataOptions, Partition

__all__ = ["ATTACK_KINDS", "BACKENDS", "CHURN_SIGNALS", "RUN_ORDERS", "WORKER_KINDS", "Churn",
           "ClientGroup", "CompareConfig", "CompareFile", "ConfigError", "EvaluationSchedule",
           "ServerOptions", "StopCondition", "StrategyEntry", "Sweep", "load_config",
           "parse_config"]

WORKER_KINDS = ("node", "chromium")
BACKENDS = ("cpu", "wasm", "webgl")  # webgl: Chromium tabs only
ATTACK_KINDS = ("scaled", "sign_flip", "random", "nan")
UPDATE_ENCODINGS = ("q8", "f16", "f32")
WEIGHTS_ENCODINGS = ("f16", "f32")
"""What a client group (or a strategy entry, for every group) offers at join: only that encoding
(docs/protocol.md "Encodings"); unset, the workers offer every encoding and the server picks."""
CHURN_SIGNALS = ("kill", "term")
RUN_ORDERS = ("random", "fixed")
"""``random`` (default): seed by seed, the strategies in a seeded random order within each seed,
so drifts of a shared machine's load fall on every strategy alike; ``fixed``: as listed."""
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

TABLE_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
"""The compare tables: unknown keys refused, finite numbers; every scalar field is `Strict`
(a TOML ``"5"`` is not a number) while tables are read from dicts into the dataclasses."""
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Str = Annotated[str, Strict()]

Backend = Literal["cpu", "wasm", "webgl"]
Attack = Literal["scaled", "sign_flip", "random", "nan"]
EntryAttack = Literal["scaled", "sign_flip", "random", "nan", "none"]
UpdateEncoding = Literal["q8", "f16", "f32"]
WeightsEncoding = Literal["f16", "f32"]


def _check_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(f"use letters, digits, '.', '_', '+' or '-', got {show(value)}")
    return value


def _check_screening(value: Any) -> Any:
    """A ``screening`` table, checked as `ScreeningConfig` checks it (its message names the key)."""
    from webnn.merge.screening import ScreeningConfig, ScreeningConfigError

    if value is None:
        return None
    try:
        ScreeningConfig.from_mapping(value, path="screening")
    except ScreeningConfigError as error:
        raise nested([split_problem(str(error), "screening")]) from None
    return dict(value)


def _not_empty(what: str) -> Any:
    def check(value: Any) -> Any:
        if not value:
            raise ValueError(f"must hold at least one {what}")
        return value
    return AfterValidator(check)


def _distinct(what: str) -> Any:
    def check(value: Any) -> Any:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"{what} must be distinct")
        return value
    return AfterValidator(check)


Label = Annotated[str, Strict(), AfterValidator(_check_label)]
ScreeningTable = Annotated[dict[str, Any] | None, AfterValidator(_check_screening)]


@dataclass(frozen=True, config=TABLE_CONFIG)
class Churn:
    """Volunteers leaving and coming back.

    Each client of the group stays online for an exponentially distributed time with mean
    `mean_online_seconds`, is then stopped (`signal`: ``kill`` = SIGKILL, a vanished tab; ``term`` =
    SIGTERM, a polite leave) and a new worker takes its place after an exponentially distributed
    delay with mean `mean_offline_seconds`. Draws come from a generator seeded by the run's seed.
    """

    mean_online_seconds: Float = setting(description="mean seconds a client stays online", gt=0)
    mean_offline_seconds: Float = setting(description="mean seconds before a new client takes "
                                                      "its place", ge=0)
    signal: Literal["kill", "term"] = setting(
        "kill", "how a client leaves: kill (SIGKILL, a vanished tab) or term (a polite leave)")


@dataclass(frozen=True, config=TABLE_CONFIG)
class ClientGroup:
    """`count` training clients sharing one profile (a phone, a desktop, an attacker ...)."""

    label: Label = setting(description="the group's name in results", default_text="group<i>")
    count: Int = setting(1, "clients in the group", ge=1)
    speed: Float = setting(1.0, "share of full speed a client computes at (Node workers)", gt=0,
                           le=1)
    latency_ms: Float = setting(0.0, "added network latency per request, in milliseconds", ge=0)
    backend: Backend = setting("cpu", "TF.js backend (webgl: Chromium tabs only)")
    churn: Churn | None = setting(None, "clients leave and come back (a table)")
    attack: Attack | None = setting(None, "hostile clients: the attack they mount")
    attack_scale: Float = setting(1.0, "strength of the attack (with attack)")
    encoding: UpdateEncoding | None = setting(
        None, "the only update encoding offered (unset: all; the server picks)")
    weights_encoding: WeightsEncoding | None = setting(
        None, "the only weights encoding offered (unset: all)")

    @model_validator(mode="before")
    @classmethod
    def _scale_needs_attack(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "attack_scale" in data and "attack" not in data:
            raise nested([("attack_scale", "given without attack")])
        return data


@dataclass(frozen=True, config=TABLE_CONFIG)
class StrategyEntry:
    """One line of the comparison: a merge strategy with its parameters, under a unique label."""

    label: Label = setting(description="the line's name in results (unique)",
                           default_text="the strategy name")
    name: Str = setting(description="merge strategy: a name (see `wnn strategies`) or "
                                    "module:attr")
    params: Annotated[dict[str, Any], BeforeValidator(
        lambda v: _scalar_params(v))] = setting(factory=dict, description="strategy "
                                                "parameters, checked against its declaration")
    attack: EntryAttack | None = setting(
        None, "overrides the hostile groups' attack; none = a clean baseline")
    attack_scale: Float | None = setting(None, "overrides the hostile groups' attack scale")
    screening: ScreeningTable = setting(None, "a screening table (see serve's screening), "
                                              "checked before merges")
    encoding: UpdateEncoding | None = setting(None, "overrides every group's update encoding")
    weights_encoding: WeightsEncoding | None = setting(
        None, "overrides every group's weights encoding")
    overlap: Annotated[bool, Strict()] | None = setting(
        None, "clients fetch the next task while one computes (workers' --overlap, tabs' "
              "?overlap=1); unset: the client's default (off)")

    @model_validator(mode="before")
    @classmethod
    def _label_from_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "label" not in data and isinstance(data.get("name"), str):
            return {**data, "label": data["name"]}
        return data

    @model_validator(mode="after")
    def _check(self) -> StrategyEntry:
        if self.attack_scale is not None and self.attack is None:
            raise nested([("attack_scale", "given without attack")])
        return self

    def encodings_for(self, group: ClientGroup) -> tuple[str | None, str | None]:
        """The (update, weights) encodings a client of `group` offers in this entry's runs."""
        return (self.encoding or group.encoding,
                self.weights_encoding or group.weights_encoding)

    def attack_for(self, group: ClientGroup) -> tuple[str | None, float]:
        """The attack (kind, scale) a client of `group` mounts in this entry's runs."""
        if group.attack is None or self.attack == "none":
            return None, 1.0
        scale = self.attack_scale if self.attack_scale is not None else group.attack_scale
        return self.attack or group.attack, scale


def _scalar_params(value: Any) -> Any:
    from webnn.settings.serve import _scalar_table

    return _scalar_table(value, as_strings=False)


@dataclass(frozen=True, config=TABLE_CONFIG)
class StopCondition:
    """A run stops at the first of: `seconds`, `merges`, `target_accuracy`, `timeout_seconds`."""

    seconds: Float | None = setting(None, "stop after this many seconds of training", gt=0)
    merges: Int | None = setting(None, "stop after this many merges", ge=1)
    target_accuracy: Float | None = setting(None, "stop when validation accuracy reaches this",
                                            gt=0, le=1)
    timeout_seconds: Float = setting(600.0, "give up on a run after this many seconds", gt=0)

    @model_validator(mode="after")
    def _one_given(self) -> StopCondition:
        if self.seconds is None and self.merges is None and self.target_accuracy is None:
            raise ValueError("give at least one of seconds, merges, target_accuracy")
        return self


@dataclass(frozen=True, config=TABLE_CONFIG)
class EvaluationSchedule:
    """When the dedicated evaluator validates the model (overrides the spec's schedule)."""

    every_merges: Int | None = setting(None, "validate every N merges", ge=1,
                                       default_text="the spec's")
    every_seconds: Float | None = setting(None, "validate every T seconds", gt=0,
                                          default_text="the spec's")
    chunk_size: Int | None = setting(None, "validation examples per evaluation task", ge=1,
                                     default_text="the spec's")
    backend: Backend = setting("cpu", "TF.js backend of the evaluator")


@dataclass(frozen=True, config=TABLE_CONFIG)
class ServerOptions:
    """Server settings shared by every run."""

    lease_seconds: Float = setting(10.0, "seconds a client has to return a task", gt=0)
    max_staleness: Int | None = setting(None, "refuse updates more than this many versions "
                                              "behind", ge=0)


@dataclass(frozen=True, config=TABLE_CONFIG)
class Sweep:
    """Run every strategy and seed once per value of `clients`: the count of client group
    `group` (the only group, or the one named) is set to each value in turn."""

    clients: Annotated[tuple[Annotated[int, Strict(), setting(ge=1)], ...], BeforeValidator(
        lambda v: tuple(v) if isinstance(v, list) else v), _not_empty("client count"),
        _distinct("client counts"), AfterValidator(lambda v: tuple(sorted(v)))] = setting(
        description="client counts to run, one after another")
    group: Str = setting("", "the client group whose count is swept (needed with several "
                             "groups)", default_text="the only group")

    def label(self, label: str, clients: int) -> str:
        """The run label of strategy `label` at `clients` clients, e.g. ``average@4``."""
        return f"{label}@{clients}"


Seeds = Annotated[list[Annotated[int, Strict(), setting(ge=0)]] | None, _distinct("seeds")]


class CompareFile(BaseModel):
    """A compare config file as written: every key, its type and default."""

    model_config = TABLE_CONFIG

    name: Label | None = setting(None, "the experiment's name", default_text="the file's name")
    description: Str = setting("", "what the experiment is about")
    model: Str = setting(description="model spec JSON file (relative to the config file)")
    data: Str = setting(description="data module: a .py file (relative to the config file) or "
                                    "a dotted module name")
    data_options: DataOptions = setting(factory=dict,
                                        description="options for the data module's load()")
    seeds: Seeds = setting(None, "seeds to run (distinct, >= 0)", default_text="[0]")
    repetitions: Int | None = setting(None, "run seeds 0 .. N-1 (instead of seeds)", ge=1)
    worker: Literal["node", "chromium"] = setting("node", "what the clients are: Node workers "
                                                          "or Chromium tabs")
    target_accuracy: Float | None = setting(None, "the accuracy summaries measure time to",
                                            ge=0, le=1, default_text="stop.target_accuracy")
    order: Literal["random", "fixed"] = setting("random", "run order within a seed: random "
                                                          "(seeded) or fixed (as listed)")
    stop: StopCondition = setting(description="when each run stops (a table)")
    evaluation: EvaluationSchedule = setting(factory=EvaluationSchedule,
                                             description="the evaluator's schedule (a table)")
    server: ServerOptions = setting(factory=ServerOptions,
                                    description="server settings of every run (a table)")
    strategies: Annotated[list[StrategyEntry], _not_empty("strategy")] = setting(
        description="the strategies compared ([[strategies]])")
    clients: Annotated[list[ClientGroup], _not_empty("client group")] = setting(
        description="the client groups ([[clients]])")
    sweep: Sweep | None = setting(None, "run once per client count (a table)")
    partition: Partition = setting(None, "training data per client (serve's partition table; "
                                         "shards default to the number of clients)",
                                   default_text="iid", type_text="kind name or table")


@dataclass(frozen=True, config=TABLE_CONFIG)
class CompareConfig:
    """A parsed experiment: every strategy runs once per seed with the same clients and data."""

    name: str
    path: Path | None
    model: Path
    data: str
    data_options: dict[str, str]
    strategies: tuple[StrategyEntry, ...]
    clients: tuple[ClientGroup, ...]
    seeds: tuple[int, ...]
    stop: StopCondition
    evaluation: EvaluationSchedule
    server: ServerOptions
    worker: str = "node"
    target_accuracy: float | None = None
    description: str = ""
    order: str = "random"
    sweep: Sweep | None = None
    partition: dict[str, Any] | None = None  # a checked `PartitionConfig` table; None: iid

    @property
    def num_clients(self) -> int:
        return sum(group.count for group in self.clients)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description of the config (kept beside the results)."""
        return {
            "name": self.name, "description": self.description,
            "path": str(self.path) if self.path else None,
            "model": str(self.model), "data": self.data, "data_options": self.data_options,
            "strategies": [_record(s) for s in self.strategies],
            "clients": [
                {**_record(g), "churn": _record(g.churn) if g.churn else None}
                for g in self.clients
            ],
            "seeds": list(self.seeds), "stop": _record(self.stop),
            "evaluation": _record(self.evaluation), "server": _record(self.server),
            "worker": self.worker, "target_accuracy": self.target_accuracy,
            "order": self.order,
            "sweep": _record(self.sweep) if self.sweep else None,
            "partition": self.partition_config().public(),
        }

    def partition_config(self) -> Any:
        """The `PartitionConfig` of the runs: shards default to the number of training clients
        (of this variant, in a sweep), so each client slot has a shard of its own."""
        from webnn.data.partition import PartitionConfig

        return PartitionConfig.from_mapping(self.partition).with_default_shards(self.num_clients)

    def variants(self) -> list[tuple[int | None, CompareConfig]]:
        """``(clients, config)`` per sweep value, the swept group's count set to it; without a
        sweep one ``(None, self)``."""
        if self.sweep is None:
            return [(None, self)]
        sweep = self.sweep
        return [(n, replace(self, clients=tuple(replace(g, count=n) if g.label == sweep.group
                                                else g for g in self.clients)))
                for n in sweep.clients]


def _record(item: Any) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in fields(item)}


def load_config(path: str | Path) -> CompareConfig:
    """Read and validate a compare config file; raises `ConfigError` listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return parse_config(raw, base_dir=path.parent, name=path.stem, path=path)


def parse_config(raw: dict[str, Any], *, base_dir: Path = Path("."), name: str = "compare",
                 path: Path | None = None) -> CompareConfig:
    """Validate a TOML document already parsed into a dict (see `load_config`)."""
    source = str(path) if path else "config"
    document = dict(raw)
    if isinstance(document.get("clients"), list):  # an unlabelled group is group<i>
        document["clients"] = [
            {"label": f"group{i}", **entry} if isinstance(entry, dict) else entry
            for i, entry in enumerate(document["clients"])]
    try:
        parsed = CompareFile.model_validate(document)
    except ValidationError as error:
        raise ConfigError(problems_from(error, CompareFile), source) from None
    problems: list[Problem] = []
    model_path = (base_dir / parsed.model).resolve()
    if not model_path.is_file():
        problems.append(Problem("model", f"file not found: {model_path}"))
    data_ref = parsed.data
    if data_ref.endswith(".py") or "/" in data_ref:
        data_path = (base_dir / data_ref).resolve()
        if not data_path.is_file():
            problems.append(Problem("data", f"file not found: {data_path}"))
        data_ref = str(data_path)
    if parsed.seeds is not None and parsed.repetitions is not None:
        problems.append(Problem("repetitions", "give either seeds or repetitions, not both"))
    if parsed.repetitions is not None:
        seeds: tuple[int, ...] = tuple(range(parsed.repetitions))
    else:
        seeds = tuple(parsed.seeds) if parsed.seeds else (0,)
        if parsed.seeds == []:
            problems.append(Problem("seeds", "must hold at least one seed"))
    strategies = tuple(parsed.strategies)
    clients = tuple(parsed.clients)
    _check_entries(problems, raw, strategies, clients)
    _check_worker_kind(problems, parsed.worker, clients, strategies)
    _check_sweep(problems, raw, parsed.sweep, clients)
    if problems:
        raise ConfigError(problems, source)
    sweep = parsed.sweep
    if sweep is not None and not sweep.group:
        sweep = replace(sweep, group=clients[0].label)
    stop = parsed.stop
    return CompareConfig(
        name=parsed.name or name, path=path, model=model_path, data=data_ref,
        data_options=parsed.data_options, strategies=strategies, clients=clients, seeds=seeds,
        stop=stop, evaluation=parsed.evaluation, server=parsed.server, worker=parsed.worker,
        target_accuracy=(parsed.target_accuracy if parsed.target_accuracy is not None
                         else stop.target_accuracy),
        description=parsed.description, order=parsed.order, sweep=sweep,
        partition=dict(parsed.partition) if isinstance(parsed.partition, Mapping) else None,
    )


def _check_entries(problems: list[Problem], raw: dict[str, Any],
                   strategies: tuple[StrategyEntry, ...],
                   clients: tuple[ClientGroup, ...]) -> None:
    """Unique labels, a strategy that exists with parameters it takes, attack overrides that
    have an attack to override."""
    from webnn.merge.params import check_strategy_params

    seen: dict[str, int] = {}
    for i, entry in enumerate(strategies):
        where = f"strategies[{i}]"
        given = raw["strategies"][i]
        if entry.label in seen:
            key = "label" if "label" in given else "name"
            problems.append(Problem(f"{where}.{key}", f"duplicate label {show(entry.label)} (also "
                                                      f"strategies[{seen[entry.label]}]); give "
                                                      "each entry its own label"))
        seen.setdefault(entry.label, i)
        for problem in check_strategy_params(entry.name, entry.params):
            path = f"params.{problem.path}" if problem.path else "name"
            problems.append(Problem(path, problem.message).under(where))
        if entry.attack is not None and not any(g.attack for g in clients):
            problems.append(Problem(f"{where}.attack", "no client group has an attack to "
                                                       "override (give a group an attack first)"))
    labels: set[str] = set()
    for i, group in enumerate(clients):
        if group.label in labels:
            problems.append(Problem(f"clients[{i}].label",
                                    f"duplicate label {show(group.label)}"))
        labels.add(group.label)


def _check_worker_kind(problems: list[Problem], worker: str, clients: tuple[ClientGroup, ...],
                       strategies: tuple[StrategyEntry, ...]) -> None:
    """Options the chosen worker kind cannot honour are errors, not silently ignored."""
    page = "(the page offers every encoding)"
    for i, group in enumerate(clients):
        where = f"clients[{i}]"
        if worker == "chromium":
            if group.speed != 1.0:
                problems.append(Problem(f"{where}.speed", 'not supported with worker = '
                                        '"chromium" (the volunteer page runs at full speed)'))
            if group.attack is not None:
                problems.append(Problem(f"{where}.attack", 'not supported with worker = '
                                        '"chromium" (hostile clients are Node workers)'))
            for key in ("encoding", "weights_encoding"):
                if getattr(group, key) is not None:
                    problems.append(Problem(f"{where}.{key}",
                                            f'not supported with worker = "chromium" {page}'))
        elif group.backend == "webgl":
            problems.append(Problem(f"{where}.backend", 'webgl needs worker = "chromium"; Node '
                                                        "workers use cpu or wasm"))
    if worker == "chromium":
        for i, entry in enumerate(strategies):
            if entry.attack not in (None, "none"):
                problems.append(Problem(f"strategies[{i}].attack",
                                        'not supported with worker = "chromium"'))
            for key in ("encoding", "weights_encoding"):
                if getattr(entry, key) is not None:
                    problems.append(Problem(f"strategies[{i}].{key}",
                                            f'not supported with worker = "chromium" {page}'))


def _check_sweep(problems: list[Problem], raw: dict[str, Any], sweep: Sweep | None,
                 clients: tuple[ClientGroup, ...]) -> None:
    if sweep is None:
        return
    labels = [g.label for g in clients]
    if not sweep.group and "group" not in raw["sweep"] and len(labels) > 1:
        problems.append(Problem("sweep.group", "name the client group to sweep, one of "
                                               f"{', '.join(labels)}"))
    elif sweep.group and sweep.group not in labels:
        problems.append(Problem("sweep.group", f"no client group {show(sweep.group)} (groups: "
                                               f"{', '.join(labels)})"))
