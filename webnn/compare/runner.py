"""Run a comparison: every strategy under every seed, each run against a fresh in-process server.

A run starts `create_app(ServeConfig(...))` on a free loopback port (the seed drives the initial
weights and the batch order, so every strategy starts from the same model and sees the same data),
a latency proxy per client that has added latency, one dedicated evaluator worker
(``--role evaluate``) and the training clients (``--role train``) with their speed factor, attack
and churn. It polls the server (history, status, /metrics) every `POLL_SECONDS` until the stop
condition, then stops everything. A run that fails is recorded as failed and the next one starts;
cancellation (Ctrl-C) stops workers, proxies and the server and propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import numpy as np
from aiohttp import web

from webnn.compare.browsers import BrowserSlot, Chromium
from webnn.compare.config import CompareConfig, ConfigError, StrategyEntry
from webnn.compare.proxy import LatencyProxy
from webnn.compare.results import RunRecord, SeriesRow, write_run
from webnn.compare.workers import ClientSlot, WorkerCrashed
from webnn.node_worker import WorkerArgs, WorkerCommand, WorkerSetupError

POLL_SECONDS = 0.5
RUN_ORDER_SEED = 0x5EED
"""Mixed with each seed to draw that seed's strategy order (``order = "random"``)."""
END_GRACE_SECONDS = 20.0
"""How long after the stop condition holds the server gets to validate the final model and end."""


@dataclass
class Prepared:
    """Loaded once per comparison and shared by its runs."""

    spec: Any
    dataset: Any
    command: WorkerCommand


def prepare(config: CompareConfig, client_dir: Path | None = None) -> Prepared:
    """Load the spec and data module, find the worker; raises `ConfigError` naming the key."""
    from webnn.data import DataModuleError, check_dataset, load_data_module
    from webnn.server.config import default_client_dir
    from webnn.spec import SpecError, load_spec

    problems: list[str] = []
    source = str(config.path) if config.path else "config"
    try:
        spec = load_spec(config.model)
    except SpecError as exc:
        raise ConfigError([f"model: {config.model}: {p.path}: {p.message}" for p in exc.problems],
                          source) from None
    try:
        dataset = load_data_module(config.data, dict(config.data_options))
    except DataModuleError as exc:
        raise ConfigError([f"data: {exc}"], source) from None
    mismatches = check_dataset(dataset, spec)
    if mismatches:
        raise ConfigError([f"data: {m}" for m in mismatches], source)
    try:
        command = WorkerCommand.find(client_dir or default_client_dir())
    except WorkerSetupError as exc:
        raise ConfigError([f"worker: {exc}"], source) from None
    attacks = [i for i, g in enumerate(config.clients) if g.attack]
    speeds = [i for i, g in enumerate(config.clients) if g.speed != 1.0]
    if attacks or speeds:
        usage = command.help_text()
        for i in attacks if "--attack" not in usage else []:
            problems.append(f"clients[{i}].attack: the worker {command.script} has no --attack "
                            "option yet")
        for i in speeds if "--speed" not in usage else []:
            problems.append(f"clients[{i}].speed: the worker {command.script} has no --speed "
                            "option")
    if problems:
        raise ConfigError(problems, source)
    return Prepared(spec, dataset, command)


@dataclass
class Progress:
    """One status line on stderr: rewritten in place on a terminal, every few seconds otherwise."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every: float = 5.0
    _last: float = 0.0
    _width: int = 0

    def update(self, text: str, force: bool = False) -> None:
        tty = self.stream.isatty()
        now = time.monotonic()
        if tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif force or now - self._last >= self.every:
            self.stream.write(text + "\n")
            self._last = now
        self.stream.flush()

    def done(self, text: str) -> None:
        if self.stream.isatty():
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self._width = 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


@dataclass
class Sample:
    """Counters read from /metrics at one poll."""

    accepted: int = 0
    rejected: int = 0
    staleness_sum: float = 0.0
    staleness_count: float = 0.0

    @property
    def mean_staleness(self) -> float:
        return self.staleness_sum / self.staleness_count if self.staleness_count else math.nan


def parse_metrics(text: str) -> Sample:
    """Accepted/rejected update counters and the staleness histogram from Prometheus text.

    Refusals with reason ``ended`` (work submitted after the run stopped) are not counted.
    """
    from prometheus_client.parser import text_string_to_metric_families

    sample = Sample()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "webnn_updates_accepted_total":
                sample.accepted = int(s.value)
            elif (s.name == "webnn_updates_rejected_total"
                  and s.labels.get("reason") not in ("ended", "finishing")):
                sample.rejected += int(s.value)  # "ended"/"finishing": sent after training stopped
            elif s.name == "webnn_update_staleness_sum":
                sample.staleness_sum = s.value
            elif s.name == "webnn_update_staleness_count":
                sample.staleness_count = s.value
    return sample


class _Server:
    """The run's server on a free loopback port, in this event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app, handle_signals=False)
        self.port = 0

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{self.port}/"

    async def close(self) -> None:
        await self.runner.cleanup()


def serve_config(config: CompareConfig, prepared: Prepared, entry: StrategyEntry,
                 seed: int) -> Any:
    """The `ServeConfig` of one run."""
    from webnn.server.config import ServeConfig

    return ServeConfig(
        spec=prepared.spec, data=prepared.dataset, strategy=entry.name,
        strategy_params=dict(entry.params),
        # an entry without a screening table runs unscreened (serve screens by default): a
        # comparison measures the strategy itself; a table is laid over serve's defaults
        screening=entry.screening if entry.screening is not None else "off",
        seed=seed, state_dir=None,
        lease_seconds=config.server.lease_seconds, max_staleness=config.server.max_staleness,
        target_accuracy=config.stop.target_accuracy, max_seconds=config.stop.seconds,
        max_merges=config.stop.merges, eval_every_merges=config.evaluation.every_merges,
        eval_every_seconds=config.evaluation.every_seconds,
        eval_chunk_size=config.evaluation.chunk_size, checkpoint_every_merges=None,
        checkpoint_every_seconds=None, poll_seconds=0.5,
        # one trusted evaluator: every client of a comparison is the operator's own, so each
        # chunk is evaluated once (replication would only slow the series down)
        eval_quorum=1,
        # each training slot keeps its shard across churn restarts (its name is its volunteer id)
        partition=config.partition_config(),
    )


@dataclass
class StopWatch:
    """Decides when a run stops.

    The server applies the stop condition itself (then validates the final model and ends), so
    the runner waits for ``state == "ended"``; its own check of the same condition acts only
    `grace` seconds after the condition first held, for a server that does not end by itself.
    """

    config: CompareConfig
    grace: float = END_GRACE_SECONDS
    seen: dict[str, float] = field(default_factory=dict)

    def reason(self, elapsed: float, merges: int, accuracy: float,
               status: dict[str, Any]) -> str | None:
        stop = self.config.stop
        if status.get("state") == "ended":
            return str(status.get("endReason") or "ended")
        held = {
            "target_accuracy": (stop.target_accuracy is not None
                                and accuracy >= stop.target_accuracy),
            "merges": stop.merges is not None and merges >= stop.merges,
            "seconds": stop.seconds is not None and elapsed >= stop.seconds,
        }
        for key, holds in held.items():
            if holds and elapsed - self.seen.setdefault(key, elapsed) >= self.grace:
                return f"{key} (server did not end)"
        return None


@dataclass
class RunContext:
    config: CompareConfig
    prepared: Prepared
    out_dir: Path
    progress: Progress
    index: int = 1
    total: int = 1


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def run_one(ctx: RunContext, entry: StrategyEntry, seed: int) -> tuple[RunRecord,
                                                                              list[SeriesRow]]:
    """One run; failures are caught and recorded, cancellation propagates after clean-up."""
    from webnn.server.app import create_app

    config = ctx.config
    record = RunRecord(label=entry.label, strategy=entry.name, seed=seed,
                       params=dict(entry.params), started_at=time.time())
    rows: list[SeriesRow] = []
    slots: list[ClientSlot | BrowserSlot] = []
    t0 = time.time()
    async with contextlib.AsyncExitStack() as stack:
        try:
            app = create_app(serve_config(config, ctx.prepared, entry, seed))
            server = _Server(app)
            t0 = time.time()
            url = await server.start()
            stack.push_async_callback(server.close)
            slots = await _start_clients(ctx, stack, url, record, entry, seed)
            session = await stack.enter_async_context(aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10)))
            tasks = [asyncio.create_task(slot.run(), name=slot.name) for slot in slots]
            stack.push_async_callback(_cancel_all, tasks)
            rows, record.stopped_by, record.final_status = await _watch(
                ctx, session, url, t0, entry, seed, tasks)
            record.status = "ok"
        except asyncio.CancelledError:
            record.status = "interrupted"
            raise
        except Exception as exc:  # any failure ends this run only
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
        finally:
            record.duration = time.time() - t0
            record.worker_restarts = sum(s.stats.crashes for s in slots)
            record.churn_events = sum(s.stats.churn_events for s in slots)
    return record, rows


async def _cancel_all(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _start_clients(ctx: RunContext, stack: contextlib.AsyncExitStack, url: str,
                         record: RunRecord, entry: StrategyEntry,
                         seed: int) -> list[ClientSlot | BrowserSlot]:
    """The evaluator and every training client, each behind a latency proxy when it has one."""
    config = ctx.config
    logs = ctx.out_dir / "logs" / record.run_id
    port = int(url.rsplit(":", 1)[1].strip("/"))
    command = ctx.prepared.command
    chromium = None
    if config.worker == "chromium":
        chromium = Chromium()
        stack.push_async_callback(chromium.close)
        await chromium.start()
    slots: list[ClientSlot | BrowserSlot] = [ClientSlot(
        WorkerArgs(server_url=url, name="evaluator", role="evaluate",
                   backend=config.evaluation.backend),
        log_path=logs / "evaluator.log", command=command)]
    # One stream per client, derived from the run's seed: churn repeats across strategies.
    streams = np.random.SeedSequence(seed).spawn(config.num_clients)
    n = 0
    for group in config.clients:
        for k in range(group.count):
            client_url = url
            if group.latency_ms > 0:
                proxy = LatencyProxy("127.0.0.1", port, group.latency_ms / 1000)
                client_url = f"http://127.0.0.1:{await proxy.start()}/"
                stack.push_async_callback(proxy.close)
            name = f"{group.label}-{k + 1}"
            attack, scale = entry.attack_for(group)
            update_encoding, weights_encoding = entry.encodings_for(group)
            if chromium is not None:
                slots.append(BrowserSlot(
                    name=name, chromium=chromium, server_url=client_url, backend=group.backend,
                    churn=group.churn, rng=np.random.default_rng(streams[n]),
                    overlap=entry.overlap))
                n += 1
                continue
            slots.append(ClientSlot(
                WorkerArgs(server_url=client_url, name=name, role="train", backend=group.backend,
                           speed=group.speed, attack=attack, attack_scale=scale,
                           encoding=update_encoding, weights_encoding=weights_encoding,
                           volunteer_id=name, overlap=entry.overlap),
                log_path=logs / f"{name}.log", churn=group.churn,
                rng=np.random.default_rng(streams[n]), command=command))
            n += 1
    return slots


async def _watch(ctx: RunContext, session: aiohttp.ClientSession, url: str, t0: float,
                 entry: StrategyEntry, seed: int,
                 tasks: list[asyncio.Task]) -> tuple[list[SeriesRow], str, dict[str, Any]]:
    """Poll until the stop condition; returns the series, why it stopped and the last status."""
    config = ctx.config
    samples: dict[int, Sample] = {}  # history index -> counters when the row was first seen
    history: list[dict[str, Any]] = []
    status: dict[str, Any] = {}
    head = f"[{ctx.index}/{ctx.total}] {entry.label} seed {seed}"
    reason = None
    watch = StopWatch(config)
    while True:
        for task in tasks:
            failure = task.exception() if task.done() and not task.cancelled() else None
            if failure is not None:
                raise failure
        status = await _get_json(session, url + "api/v1/status")
        history = (await _get_json(session, url + "api/v1/history"))["history"]
        async with session.get(url + "metrics") as response:
            sample = parse_metrics(await response.text())
        for i in range(len(history)):
            samples.setdefault(i, sample)
        elapsed = _float(status.get("elapsed"))
        elapsed = time.time() - t0 if math.isnan(elapsed) else elapsed
        last = history[-1] if history else {}
        accuracy = _float(last.get("valAccuracy"))
        merges = int(last.get("merges", 0) or 0)
        ctx.progress.update(
            f"{head}  {elapsed:6.1f}s  v{last.get('version', 0)}  merges {merges}  "
            f"acc {accuracy:.3f}  rejected {sample.rejected}" if history else
            f"{head}  {elapsed:6.1f}s  waiting for the first validation")
        reason = watch.reason(elapsed, int(status.get("merges", merges) or 0), accuracy, status)
        if reason is None and time.time() - t0 >= config.stop.timeout_seconds:
            reason = "timeout"
        if reason:
            break
        await asyncio.sleep(POLL_SECONDS)
    rows = [_row(entry_, t0, samples[i]) for i, entry_ in enumerate(history)]
    ctx.progress.done(f"{head}  done in {time.time() - t0:.1f}s ({reason}): "
                      + (f"acc {rows[-1].val_accuracy:.3f}, merges {rows[-1].merges}"
                         if rows else "no validation"))
    return rows, reason, status


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _row(entry: dict[str, Any], t0: float, sample: Sample) -> SeriesRow:
    elapsed = entry.get("elapsed")
    return SeriesRow(
        time=round(float(elapsed) if elapsed is not None else float(entry["time"]) - t0, 3),
        version=int(entry["version"]),
        steps=int(entry["steps"]), merges=int(entry["merges"]),
        val_loss=_float(entry.get("valLoss")), val_accuracy=_float(entry.get("valAccuracy")),
        updates_accepted=sample.accepted, updates_rejected=sample.rejected,
        mean_staleness=round(sample.mean_staleness, 4),
        worst_class_accuracy=_float(entry.get("worstClassAccuracy")),
    )


def run_plan(strategies: Sequence[StrategyEntry], seeds: Sequence[int],
             order: str = "random") -> list[tuple[StrategyEntry, int]]:
    """Every seed x strategy, seed-major (interleaved: partial results cover every strategy, and
    slow drifts of the machine's load spread over all of them); with ``random`` the strategies of
    each seed run in an order drawn from ``default_rng([RUN_ORDER_SEED, seed])`` (reproducible)."""
    plan = []
    for seed in seeds:
        entries = list(strategies)
        if order == "random":
            picks = np.random.default_rng([RUN_ORDER_SEED, seed]).permutation(len(entries))
            entries = [entries[i] for i in picks]
        plan += [(entry, seed) for entry in entries]
    return plan


def _relabelled(entry: StrategyEntry, label: str) -> StrategyEntry:
    """A copy of `entry` under the sweep run label `label` (``average@4``). The '@' is reserved for
    sweeps: a config's own labels cannot hold it (`StrategyEntry` checks them), so a run label
    never clashes with an entry's; the copy therefore skips that check."""
    copied = copy.copy(entry)
    object.__setattr__(copied, "label", label)
    return copied


def sweep_plan(config: CompareConfig) -> list[tuple[CompareConfig, StrategyEntry, int, int | None]]:
    """``(config, entry, seed, clients)`` for every run: per seed, every (sweep value, strategy)
    pair in `run_plan` order, so each seed covers the whole sweep before the next. Swept entries
    are relabelled ``label@clients``."""
    variants = config.variants()
    pairs = [(clients, variant, entry) for clients, variant in variants
             for entry in config.strategies]
    labelled = [_relabelled(entry, config.sweep.label(entry.label, clients))
                if config.sweep is not None and clients is not None else entry
                for clients, _, entry in pairs]
    by_label = {e.label: (clients, variant) for e, (clients, variant, _) in zip(
        labelled, pairs, strict=True)}
    return [(by_label[e.label][1], e, seed, by_label[e.label][0])
            for e, seed in run_plan(labelled, config.seeds, config.order)]


async def run_comparison(config: CompareConfig, prepared: Prepared, out_dir: Path,
                         progress: Progress | None = None,
                         on_run: Callable[[RunRecord], None] | None = None) -> list[RunRecord]:
    """Every seed x strategy in `run_plan` order.

    Each finished run is written to `out_dir` at once; on cancellation the finished runs stay.
    """
    progress = progress or Progress()
    plan = sweep_plan(config)
    records = []
    for index, (variant, entry, seed, clients) in enumerate(plan, start=1):
        ctx = RunContext(variant, prepared, out_dir, progress, index, len(plan))
        record, rows = await run_one(ctx, entry, seed)
        record.clients = clients if clients is not None else variant.num_clients
        write_run(out_dir, record, rows)
        records.append(record)
        if record.status != "ok":
            progress.done(f"[{index}/{len(plan)}] {entry.label} seed {seed} FAILED: "
                          f"{record.error}")
        if on_run is not None:
            on_run(record)
    return records


__all__ = ["Prepared", "Progress", "WorkerCrashed", "prepare", "run_comparison", "run_one"]
