"""The `wnn compare` experiment config: a TOML file parsed into frozen dataclasses.

Every problem found is reported with the dotted key path that holds it, e.g.
``strategies[2].params.alpha: expected a number, got "x"``; unknown keys are errors. Paths in the
file (model spec, data module) are relative to the config file's directory.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

WORKER_KINDS = ("node", "chromium")
BACKENDS = ("cpu", "wasm", "webgl")  # webgl: Chromium tabs only
ATTACK_KINDS = ("scaled", "sign_flip", "random", "nan")
UPDATE_ENCODINGS = ("q8", "f16", "f32")
WEIGHTS_ENCODINGS = ("f16", "f32")
"""What a client group (or a strategy entry, for every group) offers at join: only that encoding
(docs/protocol.md "Encodings"); unset, the workers offer every encoding and the server picks."""
CHURN_SIGNALS = ("kill", "term")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ConfigError(ValueError):
    """A compare config is invalid; `problems` holds one ``path: reason`` line per problem."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems) if len(problems) == 1 else
                         f"{source}: {len(problems)} problems:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class StrategyEntry:
    """One line of the comparison: a merge strategy with its parameters, under a unique label."""

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    attack: str | None = None  # overrides the hostile groups' attack; "none" = a clean baseline
    attack_scale: float | None = None
    screening: dict[str, Any] | None = None  # a `ScreeningConfig` table, checked before merges
    encoding: str | None = None  # overrides every group's update encoding (q8, f16, f32)
    weights_encoding: str | None = None  # overrides every group's weights encoding (f16, f32)

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


@dataclass(frozen=True)
class Churn:
    """Volunteers leaving and coming back.

    Each client of the group stays online for an exponentially distributed time with mean
    `mean_online_seconds`, is then stopped (`signal`: ``kill`` = SIGKILL, a vanished tab; ``term`` =
    SIGTERM, a polite leave) and a new worker takes its place after an exponentially distributed
    delay with mean `mean_offline_seconds`. Draws come from a generator seeded by the run's seed.
    """

    mean_online_seconds: float
    mean_offline_seconds: float
    signal: str = "kill"


@dataclass(frozen=True)
class ClientGroup:
    """`count` training clients sharing one profile (a phone, a desktop, an attacker ...)."""

    label: str
    count: int
    speed: float = 1.0
    latency_ms: float = 0.0
    backend: str = "cpu"
    churn: Churn | None = None
    attack: str | None = None
    attack_scale: float = 1.0
    encoding: str | None = None  # the only update encoding offered (None: all; server picks)
    weights_encoding: str | None = None  # the only weights encoding offered (None: all)


@dataclass(frozen=True)
class StopCondition:
    """A run stops at the first of: `seconds`, `merges`, `target_accuracy`, `timeout_seconds`."""

    seconds: float | None = None
    merges: int | None = None
    target_accuracy: float | None = None
    timeout_seconds: float = 600.0


@dataclass(frozen=True)
class EvaluationSchedule:
    """When the dedicated evaluator validates the model (overrides the spec's schedule)."""

    every_merges: int | None = None
    every_seconds: float | None = None
    chunk_size: int | None = None
    backend: str = "cpu"


@dataclass(frozen=True)
class ServerOptions:
    """Server settings shared by every run."""

    lease_seconds: float = 10.0
    max_staleness: int | None = None


@dataclass(frozen=True)
class Sweep:
    """Run every strategy and seed once per value of `clients`: the count of client group
    `group` (the only group, or the one named) is set to each value in turn."""

    clients: tuple[int, ...]
    group: str

    def label(self, label: str, clients: int) -> str:
        """The run label of strategy `label` at `clients` clients, e.g. ``average@4``."""
        return f"{label}@{clients}"


@dataclass(frozen=True)
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
            "strategies": [vars(s) for s in self.strategies],
            "clients": [
                {**vars(g), "churn": vars(g.churn) if g.churn else None} for g in self.clients
            ],
            "seeds": list(self.seeds), "stop": vars(self.stop),
            "evaluation": vars(self.evaluation), "server": vars(self.server),
            "worker": self.worker, "target_accuracy": self.target_accuracy,
            "order": self.order,
            "sweep": vars(self.sweep) if self.sweep else None,
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


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "number": ("a number", _is_number),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "table": ("a table", lambda v: isinstance(v, dict)),
    "list": ("an array", lambda v: isinstance(v, list)),
}


class _Reader:
    """Collects problems while reading one TOML table; `path` is the table's key path."""

    def __init__(self, problems: list[str], table: dict[str, Any], path: str,
                 allowed: tuple[str, ...]) -> None:
        self.problems, self.table, self.path = problems, table, path
        for key in table:
            if key not in allowed:
                self.problems.append(
                    f"{self.key(key)}: unknown key (allowed: {', '.join(allowed)})")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def get(self, name: str, kind: str, default: Any = None, *, required: bool = False,
            minimum: float | None = None, above: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
        if name not in self.table:
            if required:
                self.error(name, f"missing (expected {_KINDS[kind][0]})")
            return default
        value = self.table[name]
        what, ok = _KINDS[kind]
        if not ok(value):
            self.error(name, f"expected {what}, got {_show(value)}")
            return default
        if choices is not None and value not in choices:
            self.error(name, f"expected one of {', '.join(choices)}, got {_show(value)}")
            return default
        if minimum is not None and value < minimum:
            self.error(name, f"must be >= {minimum}, got {_show(value)}")
            return default
        if above is not None and value <= above:
            self.error(name, f"must be > {above}, got {_show(value)}")
            return default
        if maximum is not None and value > maximum:
            self.error(name, f"must be <= {maximum}, got {_show(value)}")
            return default
        return float(value) if kind == "number" else value

    def table_at(self, name: str, allowed: tuple[str, ...]) -> _Reader | None:
        value = self.get(name, "table")
        return _Reader(self.problems, value, self.key(name), allowed) if value is not None else None


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


_TOP = ("name", "description", "model", "data", "data_options", "seeds", "repetitions", "worker",
        "target_accuracy", "order", "stop", "evaluation", "server", "strategies", "clients",
        "sweep", "partition")
RUN_ORDERS = ("random", "fixed")
"""``random`` (default): seed by seed, the strategies in a seeded random order within each seed,
so drifts of a shared machine's load fall on every strategy alike; ``fixed``: as listed."""


def parse_config(raw: dict[str, Any], *, base_dir: Path = Path("."), name: str = "compare",
                 path: Path | None = None) -> CompareConfig:
    """Validate a TOML document already parsed into a dict (see `load_config`)."""
    problems: list[str] = []
    top = _Reader(problems, raw, "", _TOP)
    config_name = top.get("name", "str", name)
    if config_name is not None and not _LABEL.match(config_name):
        top.error("name", f"use letters, digits, '.', '_', '+' or '-', got {_show(config_name)}")
    model = top.get("model", "str", required=True)
    data = top.get("data", "str", required=True)
    model_path = (base_dir / model).resolve() if model else Path()
    if model and not model_path.is_file():
        top.error("model", f"file not found: {model_path}")
    data_ref = data or ""
    if data and (data.endswith(".py") or "/" in data):
        data_path = (base_dir / data).resolve()
        if not data_path.is_file():
            top.error("data", f"file not found: {data_path}")
        data_ref = str(data_path)
    data_options = _data_options(top)
    seeds = _seeds(top)
    worker = top.get("worker", "str", "node", choices=WORKER_KINDS)
    target = top.get("target_accuracy", "number", None, minimum=0, maximum=1)
    order = top.get("order", "str", "random", choices=RUN_ORDERS)
    stop = _stop(top)
    evaluation = _evaluation(top)
    server = _server(top)
    strategies = _strategies(top)
    clients = _clients(top)
    sweep = _sweep(top, clients)
    partition = _partition(top)
    if not any(g.attack for g in clients):
        for i, entry in enumerate(strategies):
            if entry.attack is not None:
                problems.append(f"strategies[{i}].attack: no client group has an attack to "
                                "override (give a group an attack first)")
    _check_worker_kind(problems, worker, clients, strategies)
    if problems:
        raise ConfigError(problems, str(path) if path else "config")
    return CompareConfig(
        name=config_name, path=path, model=model_path, data=data_ref, data_options=data_options,
        strategies=strategies, clients=clients, seeds=seeds, stop=stop, evaluation=evaluation,
        server=server, worker=worker,
        target_accuracy=target if target is not None else stop.target_accuracy,
        description=top.get("description", "str", "") or "", order=order or "random",
        sweep=sweep, partition=partition,
    )


def _check_worker_kind(problems: list[str], worker: str, clients: tuple[ClientGroup, ...],
                       strategies: tuple[StrategyEntry, ...]) -> None:
    """Options the chosen worker kind cannot honour are errors, not silently ignored."""
    for i, group in enumerate(clients):
        if worker == "chromium":
            if group.speed != 1.0:
                problems.append(f"clients[{i}].speed: not supported with worker = \"chromium\" "
                                "(the volunteer page runs at full speed)")
            if group.attack is not None:
                problems.append(f"clients[{i}].attack: not supported with worker = \"chromium\" "
                                "(hostile clients are Node workers)")
            for key in ("encoding", "weights_encoding"):
                if getattr(group, key) is not None:
                    problems.append(f"clients[{i}].{key}: not supported with worker = "
                                    "\"chromium\" (the page offers every encoding)")
        elif group.backend == "webgl":
            problems.append(f"clients[{i}].backend: webgl needs worker = \"chromium\"; Node "
                            "workers use cpu or wasm")
    if worker == "chromium":
        for i, entry in enumerate(strategies):
            if entry.attack not in (None, "none"):
                problems.append(f"strategies[{i}].attack: not supported with worker = "
                                "\"chromium\"")
            for key in ("encoding", "weights_encoding"):
                if getattr(entry, key) is not None:
                    problems.append(f"strategies[{i}].{key}: not supported with worker = "
                                    "\"chromium\" (the page offers every encoding)")


def _partition(top: _Reader) -> dict[str, Any] | None:
    """The ``[partition]`` table, checked against `PartitionConfig` (its message names the key,
    e.g. ``partition.alpha``)."""
    from webnn.data.partition import PartitionConfig, PartitionError

    table = top.get("partition", "table", None)
    if table is None:
        return None
    try:
        PartitionConfig.from_mapping(table, path=top.key("partition"))
    except PartitionError as error:
        top.problems.append(str(error))
        return None
    return dict(table)


def _data_options(top: _Reader) -> dict[str, str]:
    reader = top.get("data_options", "table", {})
    options: dict[str, str] = {}
    for key, value in reader.items():
        if isinstance(value, bool):
            options[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            options[key] = str(value)
        else:
            top.error(f"data_options.{key}", f"expected a string, number or boolean, "
                                             f"got {_show(value)}")
    return options


def _seeds(top: _Reader) -> tuple[int, ...]:
    if "seeds" in top.table and "repetitions" in top.table:
        top.error("repetitions", "give either seeds or repetitions, not both")
        return (0,)
    reps = top.get("repetitions", "int", None, minimum=1)
    if reps is not None:
        return tuple(range(reps))
    seeds = top.get("seeds", "list", [0])
    if not seeds:
        top.error("seeds", "must hold at least one seed")
    for i, seed in enumerate(seeds):
        if not (isinstance(seed, int) and not isinstance(seed, bool)) or seed < 0:
            top.error(f"seeds[{i}]", f"expected a non-negative integer, got {_show(seed)}")
            return (0,)
    if len(set(seeds)) != len(seeds):
        top.error("seeds", "seeds must be distinct")
    return tuple(seeds) or (0,)


def _stop(top: _Reader) -> StopCondition:
    reader = top.table_at("stop", ("seconds", "merges", "target_accuracy", "timeout_seconds"))
    if reader is None:
        if "stop" not in top.table:
            top.error("stop", "missing (a table with seconds, merges or target_accuracy)")
        return StopCondition()
    stop = StopCondition(
        seconds=reader.get("seconds", "number", above=0),
        merges=reader.get("merges", "int", minimum=1),
        target_accuracy=reader.get("target_accuracy", "number", above=0, maximum=1),
        timeout_seconds=reader.get("timeout_seconds", "number", 600.0, above=0),
    )
    if stop.seconds is None and stop.merges is None and stop.target_accuracy is None and not any(
        k in reader.table for k in ("seconds", "merges", "target_accuracy")
    ):
        top.error("stop", "give at least one of seconds, merges, target_accuracy")
    return stop


def _evaluation(top: _Reader) -> EvaluationSchedule:
    reader = top.table_at("evaluation", ("every_merges", "every_seconds", "chunk_size", "backend"))
    if reader is None:
        return EvaluationSchedule()
    return EvaluationSchedule(
        every_merges=reader.get("every_merges", "int", minimum=1),
        every_seconds=reader.get("every_seconds", "number", above=0),
        chunk_size=reader.get("chunk_size", "int", minimum=1),
        backend=reader.get("backend", "str", "cpu", choices=BACKENDS),
    )


def _server(top: _Reader) -> ServerOptions:
    reader = top.table_at("server", ("lease_seconds", "max_staleness"))
    if reader is None:
        return ServerOptions()
    return ServerOptions(
        lease_seconds=reader.get("lease_seconds", "number", 10.0, above=0),
        max_staleness=reader.get("max_staleness", "int", minimum=0),
    )


def _strategies(top: _Reader) -> tuple[StrategyEntry, ...]:
    entries = top.get("strategies", "list", [], required=True)
    if "strategies" in top.table and not entries:
        top.error("strategies", "must hold at least one strategy")
    result: list[StrategyEntry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(entries):
        path = f"strategies[{i}]"
        if not isinstance(raw, dict):
            top.problems.append(f"{path}: expected a table, got {_show(raw)}")
            continue
        reader = _Reader(top.problems, raw, path,
                         ("label", "name", "params", "attack", "attack_scale", "screening",
                          "encoding", "weights_encoding"))
        name = reader.get("name", "str", required=True)
        label = reader.get("label", "str", name)
        params = reader.get("params", "table", {})
        attack = reader.get("attack", "str", None, choices=(*ATTACK_KINDS, "none"))
        attack_scale = reader.get("attack_scale", "number", None)
        if attack_scale is not None and attack is None:
            reader.error("attack_scale", "given without attack")
        screening = _check_screening(reader, reader.get("screening", "table", None))
        if name is None or label is None:
            continue
        if not _LABEL.match(label):
            reader.error("label", f"use letters, digits, '.', '_', '+' or '-', got {_show(label)}")
        if label in seen:
            reader.error("label" if "label" in raw else "name",
                         f"duplicate label {_show(label)} (also strategies[{seen[label]}]); give "
                         "each entry its own label")
        seen[label] = i
        params = _check_strategy(reader, name, params)
        result.append(StrategyEntry(
            label=label, name=name, params=params, attack=attack, attack_scale=attack_scale,
            screening=screening,
            encoding=reader.get("encoding", "str", None, choices=UPDATE_ENCODINGS),
            weights_encoding=reader.get("weights_encoding", "str", None,
                                        choices=WEIGHTS_ENCODINGS)))
    return tuple(result)


def _check_screening(reader: _Reader, table: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check a ``screening`` table against `ScreeningConfig` (its message names the key)."""
    from webnn.merge.screening import ScreeningConfig, ScreeningConfigError

    if table is None:
        return None
    try:
        ScreeningConfig.from_mapping(table, path=reader.key("screening"))
    except ScreeningConfigError as exc:
        reader.problems.append(str(exc))
    return dict(table)


def _check_strategy(reader: _Reader, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check `name` against the merge registry and `params` against its declared parameters."""
    from webnn.merge import create_strategy, get_strategy

    try:
        cls = get_strategy(name)
    except Exception as exc:  # the registry's message names the known strategies
        reader.error("name", str(exc))
        return params
    declared = {p.name: p for p in cls.params}
    ok = True
    for key, value in params.items():
        where = f"params.{key}"
        param = declared.get(key)
        if param is None:
            known = ", ".join(declared) or "none"
            reader.error(where, f"unknown parameter of strategy {name!r} (known: {known})")
            ok = False
            continue
        kind = _param_kind(param.type)
        if kind and not _KINDS[kind][1](value):
            reader.error(where, f"expected {_KINDS[kind][0]}, got {_show(value)}")
            ok = False
    if ok:
        try:
            create_strategy(name, dict(params))
        except Exception as exc:
            reader.error("params", str(exc))
    return params


def _param_kind(declared: Any) -> str | None:
    """Map a `Param.type` (a Python type or its name) to one of the TOML kinds above."""
    name = getattr(declared, "__name__", str(declared))
    return {"float": "number", "int": "int", "str": "str", "bool": "bool"}.get(name)


_GROUP_KEYS = ("label", "count", "speed", "latency_ms", "backend", "churn", "attack",
               "attack_scale", "encoding", "weights_encoding")


def _clients(top: _Reader) -> tuple[ClientGroup, ...]:
    entries = top.get("clients", "list", [], required=True)
    if "clients" in top.table and not entries:
        top.error("clients", "must hold at least one client group")
    groups: list[ClientGroup] = []
    labels: set[str] = set()
    for i, raw in enumerate(entries):
        path = f"clients[{i}]"
        if not isinstance(raw, dict):
            top.problems.append(f"{path}: expected a table, got {_show(raw)}")
            continue
        reader = _Reader(top.problems, raw, path, _GROUP_KEYS)
        label = reader.get("label", "str", f"group{i}")
        if label in labels:
            reader.error("label", f"duplicate label {_show(label)}")
        labels.add(label)
        churn = None
        churn_reader = reader.table_at(
            "churn", ("mean_online_seconds", "mean_offline_seconds", "signal"))
        if churn_reader is not None:
            churn = Churn(
                mean_online_seconds=churn_reader.get("mean_online_seconds", "number", 1.0,
                                                     required=True, above=0),
                mean_offline_seconds=churn_reader.get("mean_offline_seconds", "number", 1.0,
                                                      required=True, minimum=0),
                signal=churn_reader.get("signal", "str", "kill", choices=CHURN_SIGNALS),
            )
        attack = reader.get("attack", "str", None, choices=ATTACK_KINDS)
        if "attack_scale" in raw and "attack" not in raw:
            reader.error("attack_scale", "given without attack")
        groups.append(ClientGroup(
            label=label,
            count=reader.get("count", "int", 1, minimum=1),
            speed=reader.get("speed", "number", 1.0, above=0, maximum=1),
            latency_ms=reader.get("latency_ms", "number", 0.0, minimum=0),
            backend=reader.get("backend", "str", "cpu", choices=BACKENDS),
            churn=churn,
            attack=attack,
            attack_scale=reader.get("attack_scale", "number", 1.0),
            encoding=reader.get("encoding", "str", None, choices=UPDATE_ENCODINGS),
            weights_encoding=reader.get("weights_encoding", "str", None,
                                        choices=WEIGHTS_ENCODINGS),
        ))
    return tuple(groups)


def _sweep(top: _Reader, groups: tuple[ClientGroup, ...]) -> Sweep | None:
    reader = top.table_at("sweep", ("clients", "group"))
    if reader is None:
        return None
    values = reader.get("clients", "list", [], required=True)
    counts: list[int] = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            reader.error(f"clients[{i}]", f"expected an integer >= 1, got {_show(value)}")
        else:
            counts.append(value)
    if "clients" in reader.table and not values:
        reader.error("clients", "must hold at least one client count")
    if len(set(counts)) != len(counts):
        reader.error("clients", "client counts must be distinct")
    labels = [g.label for g in groups]
    group = reader.get("group", "str", labels[0] if len(labels) == 1 else None)
    if group is None and "group" not in reader.table and len(labels) > 1:
        reader.error("group", f"name the client group to sweep, one of {', '.join(labels)}")
    elif group is not None and group not in labels:
        reader.error("group", f"no client group {_show(group)} (groups: {', '.join(labels)})")
    return Sweep(tuple(sorted(counts)), group or "")
