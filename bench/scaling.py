"""Scaling benchmark: does adding volunteers make training faster? 1, 2, 4, 8, 16 Node clients.

Every run starts a real server in this process (`webnn.server.app.create_app` on a free loopback
port), one evaluator worker (``--role evaluate``) and N training workers
(``client_js/bin/wnn-worker.js --role train``), and polls the server until the validation accuracy
reaches the workload's target or the workload's time cap passes. It separates the two
efficiencies of data-parallel training:

- hardware efficiency: accepted updates per second against N (ideal: N x the 1-client rate);
- statistical efficiency: updates merged before the first validation at or above the target;
- time to target = updates to target / updates per second, measured directly: seconds from the
  moment the last training client joined (so Node's start-up, equal for every N, is not counted)
  to the end of the first validation at or above the target.

Each client count runs with the setting given for it (strategy, its parameters, the client's
optimiser learning rate, its local steps per task, its batch size, ``--reset-optimizer``:
``--setting "16=webnn.merge.fedbuff_live:FedBuffLive server_lr=0.5 lr=0.04 steps=5 batch=64"``;
the task-scaling settings, ``lr_warmup`` included, go to the server) and its own time cap
(``--cap-for 1=90 --cap-for 16het=35``); hardware and statistical efficiency are counted in
examples (optimiser steps x batch size), so settings with different task lengths or batch sizes
compare; the speedup at N is the median
time to target of the 1-client setting over the median time to target at N, the 1-client setting
being the best one found for a single client (see docs/scaling.md). Final accuracy is the last
validation when the run stopped at its time cap (runs do not stop at the target, unless
``--stop-after S`` ends each S seconds after its first validation at the target). The text
workload reads the bundled Tiny Shakespeare (``--corpus FILE`` for another text); the report
records the corpus's SHA-256.

With ``--pin`` (Linux, taskset) this process (the servers) runs on the first core and every run
gets cores of its own from the rest: one for its evaluator and one per training worker, while they
fit (a run of more clients than cores shares them); runs of few clients run side by side on
disjoint cores, up to ``--parallel`` at a time. Without it nothing is pinned and runs go one at a
time.

    python bench/scaling.py --workload mlp --seeds 1 2 3 --clients 1 2 4 8 16 --pin \
        --out bench-out/scaling

writes ``scaling.json`` (every run), ``scaling.md`` (the table) and ``scaling.png`` (the plots).
``--report-only DIR`` redraws table and plot from a JSON file already written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.1


TASK_SCALING = ("lr_scaling", "local_steps_exponent", "min_local_steps", "scaling_max_clients",
                "lr_warmup")
"""`ServeConfig` settings a ``--setting`` may give: train tasks' learning rate and local steps
from the live clients (docs/scaling.md)."""


def _number(text: str) -> int | float | str:
    """`text` as an int or a float where it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class Setting:
    """How one client count trains: merge strategy and its parameters, client optimiser options."""

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    learning_rate: float | None = None
    reset_optimizer: bool = False
    local_steps: int | None = None
    serve: dict[str, Any] = field(default_factory=dict)
    """Server settings (`TASK_SCALING`: the task values that follow the live clients)."""
    batch_size: int | None = None
    """The spec's ``training.batchSize`` (None: the spec's own): the examples of one optimiser
    step; the server's feed cuts batches of ``batchSize x localSteps`` examples."""

    @classmethod
    def parse(cls, text: str) -> Setting:
        """``"strategy key=value ... [lr=X] [steps=L] [batch=B] [reset]"``, e.g.
        ``"fedbuff k=4 lr=0.01 reset"``; ``steps`` sets the spec's ``training.localSteps``,
        ``batch`` its ``training.batchSize`` (a whole number of at least 1); the
        keys of `TASK_SCALING` (``lr_scaling=sqrt local_steps_exponent=0.25``) go to the server's
        configuration, the other keys are the strategy's parameters."""
        name, *items = text.split()
        params: dict[str, Any] = {}
        serve: dict[str, Any] = {}
        lr, reset, steps, batch = None, False, None, None
        for item in items:
            if item == "reset":
                reset = True
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"setting {text!r}: {item!r} is not key=value or 'reset'")
            if key == "lr":
                lr = float(value)
            elif key == "steps":
                steps = int(value)
            elif key == "batch":
                if not value.isdigit() or int(value) < 1:
                    raise ValueError(f"setting {text!r}: batch must be a whole number of at "
                                     f"least 1, got {value!r}")
                batch = int(value)
            elif key in TASK_SCALING:
                serve[key] = _number(value)
            else:
                params[key] = value
        return cls(name, params, lr, reset, steps, serve, batch)

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in {**self.params, **self.serve}.items())
        lr = f" lr={self.learning_rate:g}" if self.learning_rate is not None else ""
        steps = f" steps={self.local_steps}" if self.local_steps is not None else ""
        batch = f" batch={self.batch_size}" if self.batch_size is not None else ""
        reset = " reset" if self.reset_optimizer else ""
        return f"{self.strategy}{' ' + params if params else ''}{lr}{steps}{batch}{reset}"


@dataclass(frozen=True)
class Workload:
    """A model spec, its data module and options, the target accuracy and the per-run time cap."""

    name: str
    spec: str
    data: str
    target: float
    cap_seconds: float
    data_options: dict[str, str] = field(default_factory=dict)
    eval_every_merges: int = 4
    eval_every_seconds: float = 0.5
    eval_chunk_size: int | None = None
    settings: dict[int, Setting] = field(default_factory=dict)
    """The setting of each client count; `default_setting` for the others."""
    default_setting: Setting = Setting("average")
    caps: dict[str, float] = field(default_factory=dict)
    """Per-run caps overriding `cap_seconds`: key ``"N"`` (homogeneous) or ``"Nhet"``."""
    stop_after: float | None = None
    """Seconds a run goes on after its first validation at or above the target (None: to its
    cap); saves device time where only the time to target is wanted."""
    init_weights: str | None = None
    """A file of initial weights (`read_init_weights`) every run starts from instead of the
    seed's initialisation (None: the seed's)."""

    def setting(self, clients: int) -> Setting:
        return self.settings.get(clients, self.default_setting)

    def cap(self, clients: int, heterogeneous: bool) -> float:
        key = f"{clients}{'het' if heterogeneous else ''}"
        return self.caps.get(key, self.caps.get(str(clients), self.cap_seconds))


def corpus_options(corpus: Path | None) -> tuple[dict[str, str], str]:
    """The text data module's options for `corpus` (a file; None: the bundled Tiny Shakespeare,
    frozen so that figures compare across commits) and the SHA-256 of the text it reads."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("text_module", ROOT / "data_modules" / "text.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = {"path": str(corpus)} if corpus else {"corpus": "shakespeare"}
    raw = module.read_text(**options)[0].encode("utf-8")
    return options, hashlib.sha256(raw).hexdigest()


TEACHER_OPTIONS = {"teacher_hidden": "16", "label_noise": "0.3", "validation_examples": "2048"}
"""`data_modules/teacher.py`'s options for the ``teacher`` workload (the others its defaults: 64
inputs, 10 classes, 524,288 training examples; 2,048 validation examples with clean labels: a
validation of the dense model costs about 1.5 text validations of as many windows in Node)."""
TEACHER_TARGET = 0.775
"""The teacher workload's target: clean validation accuracy 0.775, three quarters of the way from
chance (0.10) to the Bayes-optimal classifier's 1.0 (the teacher itself)."""


def workloads(corpus: dict[str, str]) -> dict[str, Workload]:
    """The measured workloads with the best settings found (docs/scaling.md): `average` merging,
    the client's Adam at 0.01 (text: 0.02 from 2 clients on); ``text_lstm`` is a candidate
    being probed (bench/specs/text_lstm.json: the text inputs through an LSTM), settings untuned;
    ``teacher`` is the synthetic task of large gradient noise scale (data_modules/teacher.py,
    bench/specs/teacher_mlp.json), its settings the simulator's best (docs/scaling.md)."""
    adam = Setting("average", {}, 0.01)
    return {
        "mlp": Workload(
            name="mlp", spec=str(ROOT / "bench" / "specs" / "digits_mlp_wide.json"),
            data=str(ROOT / "data_modules" / "digits.py"), target=0.95, cap_seconds=20.0,
            default_setting=adam),
        "text": Workload(
            name="text", spec=str(ROOT / "bench" / "specs" / "text_mlp.json"),
            data=str(ROOT / "data_modules" / "text.py"), target=0.33, cap_seconds=45.0,
            data_options={**corpus, "seq_len": "12", "validation_limit": "2048"},
            eval_chunk_size=2048, settings={1: adam},
            default_setting=Setting("average", {}, 0.02)),
        "text_lstm": Workload(
            name="text_lstm", spec=str(ROOT / "bench" / "specs" / "text_lstm.json"),
            data=str(ROOT / "data_modules" / "text.py"), target=0.35, cap_seconds=450.0,
            data_options={**corpus, "seq_len": "12", "validation_limit": "2048"},
            eval_chunk_size=2048, default_setting=adam),
        "teacher": Workload(
            name="teacher", spec=str(ROOT / "bench" / "specs" / "teacher_mlp.json"),
            data=str(ROOT / "data_modules" / "teacher.py"), target=TEACHER_TARGET,
            cap_seconds=500.0, data_options=dict(TEACHER_OPTIONS), eval_chunk_size=2048,
            settings={1: Setting("average", {}, 0.011, batch_size=256)},
            default_setting=Setting("average", {}, 0.015, local_steps=2, batch_size=256)),
    }


@dataclass
class RunResult:
    workload: str
    clients: int
    seed: int
    setting: str
    speeds: list[float]
    reached: bool = False
    time_to_target: float | None = None
    updates_to_target: int | None = None
    versions_to_target: int | None = None
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    updates: int = 0
    local_steps: int = 10
    batch_size: int = 32
    """The examples of one optimiser step, as the server's status gave them (the spec's)."""
    seconds: float = 0.0
    updates_per_second: float = 0.0
    ready_after: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class Cores:
    """Core assignment: the servers (this process) on `server`; `pool` for evaluators and workers.

    A run of N clients gets N + 1 cores of the pool (its evaluator on the first) while they fit;
    a larger run gets the whole pool (evaluator on its first core, workers sharing the rest).
    """

    pin: bool
    server: int = 0
    pool: list[int] = field(default_factory=list)

    @classmethod
    def detect(cls, pin: bool) -> Cores:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(cpus) < 3:
            return cls(False)
        return cls(True, cpus[0], cpus[1:])


def read_init_weights(path: str | Path, size: int) -> Any:
    """Flat float32 weights in the spec's weight order (TF.js ``model.weights``: for the text
    model the embedding, then each dense kernel and bias): a ``.npy`` 1-D array (e.g.
    bench/scaling_results/noise_scale.py --save-dir) or raw little-endian float32 (a TF.js
    ``weights.bin`` of one file, as ``wnn export`` writes). A clear error names the file when it
    is unreadable, of the wrong length or holds non-finite values."""
    import numpy as np

    path = Path(path)
    try:
        if path.suffix == ".npy":
            flat = np.load(path, allow_pickle=False)
        else:
            raw = path.read_bytes()
            if len(raw) % 4:
                raise ValueError(f"{len(raw)} bytes is not a whole number of float32 values")
            flat = np.frombuffer(raw, dtype="<f4")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--init-weights {path}: cannot read weights ({exc})") from exc
    if flat.ndim != 1 or flat.size != size or flat.dtype.kind != "f":
        raise SystemExit(f"--init-weights {path}: {flat.dtype} array of shape {flat.shape}; the "
                         f"spec has {size} float weights")
    if not np.isfinite(flat).all():
        raise SystemExit(f"--init-weights {path}: holds non-finite values")
    return flat.astype(np.float32)


def _spec_with(path: str, setting: Setting, init_weights: str | None = None) -> Any:
    """The spec at `path` with the setting's rate, task length and batch; with `init_weights`
    its initial weights are that file's (the server starts the run from them)."""
    from webnn.spec import load_spec

    raw = json.loads(Path(path).read_text())
    raw.pop("$schema", None)
    if setting.learning_rate is not None:
        raw["optimizer"]["learningRate"] = setting.learning_rate
    if setting.local_steps is not None:
        raw["training"]["localSteps"] = setting.local_steps
    if setting.batch_size is not None:
        raw["training"]["batchSize"] = setting.batch_size
    spec = load_spec(raw)
    if init_weights is not None:
        spec.compiled.loaded_weights = read_init_weights(init_weights,
                                                         spec.compiled.layout.size)
    return spec


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


def _worker_argv(command: Any, url: str, name: str, role: str, speed: float, reset: bool,
                 cpus: str | None) -> list[str]:
    from webnn.node_worker import WorkerArgs

    argv = WorkerArgs(server_url=url, name=name, role=role, speed=speed,
                      reset_optimizer=reset).argv(command)
    return (["taskset", "-c", cpus] if cpus else []) + argv


async def run_one(workload: Workload, clients: int, seed: int, speeds: list[float],
                  command: Any, dataset: Any, worker_cpus: str | None, eval_cpus: str | None,
                  log_dir: Path) -> RunResult:
    """One run (see the module docstring); failures are recorded in `RunResult.error`."""
    from webnn.server.app import create_app
    from webnn.server.config import ServeConfig

    setting = workload.setting(clients)
    result = RunResult(workload.name, clients, seed, setting.label(), speeds)
    spec = _spec_with(workload.spec, setting, workload.init_weights)
    result.local_steps = int(spec.training.local_steps)
    result.batch_size = int(spec.training.batch_size)
    config = ServeConfig(
        spec=spec, data=dataset, strategy=setting.strategy,
        strategy_params=dict(setting.params), seed=seed, state_dir=None,
        max_seconds=None, eval_every_merges=workload.eval_every_merges,
        eval_every_seconds=workload.eval_every_seconds, eval_chunk_size=workload.eval_chunk_size,
        checkpoint_every_merges=None, checkpoint_every_seconds=None, poll_seconds=0.2,
        screening="off", eval_quorum=1,  # one evaluator; no update screening (as wnn compare)
        **setting.serve)
    runner = web.AppRunner(create_app(config), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    processes: list[asyncio.subprocess.Process] = []
    log_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{workload.name}-n{clients}-s{seed}" + ("-het" if len(set(speeds)) > 1 else "")
    try:
        roles = [("evaluator", "evaluate", 1.0, eval_cpus)] + [
            (f"c{i + 1}", "train", speeds[i], worker_cpus) for i in range(clients)]
        for name, role, speed, cpus in roles:
            with open(log_dir / f"{tag}-{name}.log", "wb") as log:
                processes.append(await asyncio.create_subprocess_exec(
                    *_worker_argv(command, url, f"{tag}-{name}", role, speed,
                                  setting.reset_optimizer, cpus),
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            await _watch(session, url, workload, workload.cap(clients, len(set(speeds)) > 1),
                         clients, result, processes)
    except Exception as exc:  # one failed run must not end the sweep
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        await runner.cleanup()
    return result


async def _watch(session: aiohttp.ClientSession, url: str, workload: Workload, cap: float,
                 clients: int, result: RunResult,
                 processes: list[asyncio.subprocess.Process]) -> None:
    ready: float | None = None
    ready_merges = 0
    start_wall = time.monotonic()
    status: dict[str, Any] = {}
    reached_at: float | None = None  # server elapsed of the first validation at the target
    last_look = 0.0
    while True:
        for process in processes:
            if process.returncode is not None:
                raise RuntimeError(f"a worker exited with status {process.returncode}")
        status = await _get(session, url + "api/v1/status")
        if ready is None:
            if int(status.get("clients", 0)) >= clients + 1:
                ready, ready_merges = float(status["elapsed"]), int(status["merges"])
            elif time.monotonic() - start_wall > 120:
                raise RuntimeError(f"only {status.get('clients')} of {clients + 1} workers joined")
        elif float(status["elapsed"]) - ready >= cap:
            break
        elif workload.stop_after is not None:
            if reached_at is None and time.monotonic() - last_look >= 1.0:
                last_look = time.monotonic()
                reached_at = _first_at(
                    (await _get(session, url + "api/v1/history"))["history"], workload.target)
            if reached_at is not None and (float(status["elapsed"]) - reached_at
                                           >= workload.stop_after):
                break
        await asyncio.sleep(POLL_SECONDS)
    history = (await _get(session, url + "api/v1/history"))["history"]
    assert ready is not None
    # what train tasks carry: the server's batch size (the feed's batches hold this x localSteps)
    result.batch_size = int(status.get("taskScaling", {}).get("batchSize", result.batch_size))
    result.ready_after = ready
    result.seconds = float(status["elapsed"]) - ready
    result.updates = int(status["merges"]) - ready_merges
    result.updates_per_second = result.updates / result.seconds if result.seconds > 0 else 0.0
    result.history = [{"t": round(float(h["elapsed"]) - ready, 3), "merges": h["merges"],
                       "version": h["version"], "acc": h["valAccuracy"], "loss": h["valLoss"]}
                      for h in history]
    accs = [h["valAccuracy"] for h in history if h.get("valAccuracy") is not None]
    result.final_accuracy = accs[-1] if accs else None
    result.best_accuracy = max(accs) if accs else None
    for h in history:
        if h.get("valAccuracy") is not None and h["valAccuracy"] >= workload.target:
            result.reached = True
            result.time_to_target = max(0.0, float(h["elapsed"]) - ready)
            result.updates_to_target = int(h["merges"])
            result.versions_to_target = int(h["version"])
            break


def _first_at(history: list[dict[str, Any]], target: float) -> float | None:
    """The server elapsed time of the first validation at or above `target`, or None."""
    return next((float(h["elapsed"]) for h in history
                 if h.get("valAccuracy") is not None and h["valAccuracy"] >= target), None)


@dataclass(frozen=True)
class Planned:
    clients: int
    seed: int
    speeds: list[float]


def plan(clients: list[int], seeds: list[int], hetero: list[int], spread: float) -> list[Planned]:
    runs = [Planned(n, s, [1.0] * n) for n in clients for s in seeds]
    for n in hetero:
        speeds = [float(v) for v in np.linspace(1.0 / spread, 1.0, n)] if n > 1 else [1.0]
        runs += [Planned(n, s, speeds) for s in seeds]
    return runs


def batches(runs: list[Planned], cores: Cores, parallel: int) -> list[list[Planned]]:
    """Runs that go side by side: N + 1 cores each, within the pool, at most `parallel`."""
    if not cores.pin:
        return [[r] for r in runs]
    out: list[list[Planned]] = []
    for run in runs:
        for group in out:
            if (len(group) < parallel
                    and sum(r.clients + 1 for r in group) + run.clients + 1 <= len(cores.pool)):
                group.append(run)
                break
        else:
            out.append([run])
    return out


def _cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


async def sweep(workload: Workload, runs: list[Planned], cores: Cores, parallel: int,
                out: Path, deadline: float,
                on_group: Any = None) -> list[RunResult]:
    from webnn.data import load_data_module
    from webnn.node_worker import WorkerCommand
    from webnn.server.config import default_client_dir

    command = WorkerCommand.find(default_client_dir())
    dataset = load_data_module(workload.data, dict(workload.data_options))
    results: list[RunResult] = []
    for group in batches(runs, cores, parallel):
        if time.monotonic() > deadline:
            print(f"deadline: skipping {len(group)} run(s) of {workload.name}", flush=True)
            continue
        jobs, offset = [], 0
        for run in group:
            eval_cpus = worker_cpus = None
            if cores.pin:
                mine = cores.pool[offset:offset + run.clients + 1]
                offset += run.clients + 1
                if len(mine) < 2:  # more clients than cores: the whole pool
                    mine = cores.pool
                eval_cpus, worker_cpus = str(mine[0]), _cpu_list(mine[1:])
            jobs.append(run_one(workload, run.clients, run.seed, run.speeds, command, dataset,
                                worker_cpus, eval_cpus, out / "logs"))
        for result in await asyncio.gather(*jobs):
            results.append(result)
            print(f"{workload.name} n={result.clients:2d} seed={result.seed} "
                  f"{'het ' if len(set(result.speeds)) > 1 else ''}{result.setting}: "
                  f"ttt={result.time_to_target} upd={result.updates_to_target} "
                  f"ups={result.updates_per_second:.2f} final={result.final_accuracy} "
                  f"{result.error or ''}", flush=True)
        if on_group is not None:
            on_group(results)
    return results


# ------------------------------------------------------------------------------------- report

def retarget(run: dict[str, Any], target: float) -> dict[str, Any]:
    """`run` with reached / time / updates / versions to target recomputed for `target` from its
    recorded validation history (times relative to the last client's join)."""
    out = {**run, "reached": False, "time_to_target": None, "updates_to_target": None,
           "versions_to_target": None}
    for h in run["history"]:
        if h.get("acc") is not None and h["acc"] >= target:
            out.update(reached=True, time_to_target=max(0.0, h["t"]),
                       updates_to_target=h["merges"], versions_to_target=h["version"])
            break
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def accuracy_at(run: dict[str, Any], seconds: float) -> float | None:
    """The accuracy of the last validation that ended at or before `seconds`, or None."""
    done = [h["acc"] for h in run["history"] if h.get("acc") is not None and h["t"] <= seconds]
    return done[-1] if done else None


def summarise(results: list[dict[str, Any]], at: float | None = None) -> list[dict[str, Any]]:
    """One row per (workload, clients, homogeneous or not): medians, ranges, speedups; with `at`,
    the median accuracy `at` seconds after the last client joined.

    A run marked ``history_incomplete`` counts for updates/s and accuracy only: its updates and
    time to target are unknown (NaN), not "not reached"."""
    keys = sorted({(r["workload"], r["clients"], len(set(r["speeds"])) > 1) for r in results})
    rows = []
    for workload, n, het in keys:
        runs = [r for r in results if (r["workload"], r["clients"],
                                       len(set(r["speeds"])) > 1) == (workload, n, het)]
        unknown = any(r.get("history_incomplete") for r in runs)
        ttt = [math.nan if unknown else r["time_to_target"] if r["reached"] else math.inf
               for r in runs]
        upd = [math.nan if unknown else r["updates_to_target"] if r["reached"] else math.inf
               for r in runs]
        rows.append({
            "workload": workload, "clients": n, "heterogeneous": het, "runs": len(runs),
            "setting": runs[0]["setting"],
            "reached": sum(r["reached"] for r in runs),
            "updates_per_second": _median([r["updates_per_second"] for r in runs]),
            "ups_range": [min(r["updates_per_second"] for r in runs),
                          max(r["updates_per_second"] for r in runs)],
            "local_steps": runs[0].get("local_steps", 10),
            "steps_per_second": _median([r["updates_per_second"] * r.get("local_steps", 10)
                                         for r in runs]),
            "updates_to_target": _median(upd), "upd_range": [min(upd), max(upd)],
            "steps_to_target": _median([u * runs[0].get("local_steps", 10) for u in upd]),
            "batch_size": runs[0].get("batch_size", 32),
            "time_to_target": _median(ttt), "ttt_range": [min(ttt), max(ttt)],
            "final_accuracy": _median([r["final_accuracy"] or 0.0 for r in runs]),
            "final_range": [min(r["final_accuracy"] or 0.0 for r in runs),
                            max(r["final_accuracy"] or 0.0 for r in runs)],
        })
        if at is not None:
            accs = [a for a in (accuracy_at(r, at) for r in runs) if a is not None]
            rows[-1]["acc_at"] = _median(accs)
            rows[-1]["acc_at_range"] = [min(accs, default=math.nan), max(accs, default=math.nan)]
    for row in rows:
        base = next((b for b in rows if b["workload"] == row["workload"] and b["clients"] == 1
                     and not b["heterogeneous"]), None)
        if base is None:
            continue
        # in examples (steps x batch): settings may differ in local steps and batch size
        scale = row["batch_size"] / base["batch_size"]
        row["hardware_speedup"] = scale * row["steps_per_second"] / base["steps_per_second"]
        row["statistical_cost"] = scale * row["steps_to_target"] / base["steps_to_target"]
        row["speedup"] = base["time_to_target"] / row["time_to_target"]
        row["final_vs_1"] = row["final_accuracy"] - base["final_accuracy"]
    return rows


def _fmt(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "not measured"
    return "not reached" if value == math.inf else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    with_at = any("acc_at" in r for r in rows)
    lines = [f"Measured {meta['date']} on {meta['machine']}; command: `{meta['command']}`.", "",
             "| workload | clients | speeds | setting | updates/s (range) | examples/s x 1 client "
             "| updates to target (range) | examples to target x 1 client "
             "| time to target s (range) | speedup | final acc (range) |"
             + (" accuracy at equal time (range) |" if with_at else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if with_at else "")]
    for r in rows:
        at = (f" {r['acc_at']:.3f} ({r['acc_at_range'][0]:.3f}-{r['acc_at_range'][1]:.3f}) |"
              if with_at else "")
        lines.append(
            f"| {r['workload']} | {r['clients']} | {'0.25-1' if r['heterogeneous'] else '1'} "
            f"| {r['setting']} | {r['updates_per_second']:.2f} ({r['ups_range'][0]:.2f}-"
            f"{r['ups_range'][1]:.2f}) | {r.get('hardware_speedup', math.nan):.2f} "
            f"| {_fmt(r['updates_to_target'], 0)} ({_fmt(r['upd_range'][0], 0)}-"
            f"{_fmt(r['upd_range'][1], 0)}) | {r.get('statistical_cost', math.nan):.2f} "
            f"| {_fmt(r['time_to_target'])} "
            f"({_fmt(r['ttt_range'][0])}-{_fmt(r['ttt_range'][1])}) "
            f"| {r.get('speedup', math.nan):.2f} | {r['final_accuracy']:.3f} "
            f"({r['final_range'][0]:.3f}-{r['final_range'][1]:.3f}) |" + at)
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_at = any("acc_at" in r for r in rows)
    fig, axes = plt.subplots(1, 4 if with_at else 3, figsize=(20 if with_at else 15, 4.5))
    for workload in sorted({r["workload"] for r in rows}):
        for het in (False, True):
            sel = sorted((r for r in rows if r["workload"] == workload
                          and r["heterogeneous"] == het), key=lambda r: r["clients"])
            if not sel:
                continue
            n = [r["clients"] for r in sel]
            label = f"{workload}{' (speeds 0.25-1)' if het else ''}"
            style = "--" if het else "-"
            axes[0].plot(n, [r.get("hardware_speedup", math.nan) for r in sel], style + "o",
                         label=label)
            axes[1].plot(n, [r.get("statistical_cost", math.nan) for r in sel], style + "o",
                         label=label)
            axes[2].plot(n, [r.get("speedup", math.nan) if r["time_to_target"] != math.inf
                             else math.nan for r in sel], style + "o", label=label)
            if with_at:
                axes[3].plot(n, [r.get("acc_at", math.nan) for r in sel], style + "o",
                             label=label)
    top = max([r["clients"] for r in rows] + [2])
    for ax in (axes[0], axes[2]):
        ax.plot([1, top], [1, top], ":", color="grey", label="ideal (linear)")
    titles = ["hardware: examples/s (steps x batch), x 1 client",
              "statistics: examples to target, x 1 client", "time-to-target speedup"]
    if with_at:
        titles.append("validation accuracy at equal time")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].axhline(1.0, linestyle=":", color="grey", label="ideal (no extra steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, results: list[dict[str, Any]], meta: dict[str, Any],
                 at: float | None = None) -> None:
    rows = summarise(results, at)
    (out / "scaling.json").write_text(json.dumps({"meta": meta, "summary": rows,
                                                  "runs": results}, indent=1, default=str))
    (out / "scaling.md").write_text(markdown(rows, meta))
    plot(rows, out / "scaling.png")
    plot(rows, out / "scaling.svg")


def provenance(argv: list[str]) -> dict[str, Any]:
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
    node = shutil.which("node")
    node_version = ""
    if node:
        node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                      check=False).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                       f"Python {platform.python_version()}, node {node_version}",
            "commit": commit, "command": "python bench/scaling.py " + " ".join(argv)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", action="append",
                        choices=("mlp", "text", "text_lstm", "teacher"))
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 2, 4, 8, 16],
                        help="client counts run with equal speeds (none: only the --hetero runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--hetero", type=int, nargs="*", default=[],
                        help="client counts also run with speeds spread over [1/spread, 1]")
    parser.add_argument("--spread", type=float, default=4.0)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--budget", type=float, default=math.inf,
                        help="seconds; runs that would start later are skipped")
    parser.add_argument("--setting", action="append", default=[], metavar="N=SETTING",
                        help='the setting of N clients (N="*": every other count), e.g. '
                             '"4=fedbuff k=4 lr=0.01 reset"')
    parser.add_argument("--target", type=float, help="override the workloads' target accuracy")
    parser.add_argument("--cap", type=float, help="override the workloads' per-run time cap (s)")
    parser.add_argument("--cap-for", action="append", default=[], metavar="N=SECONDS",
                        help='the cap of N-client runs ("16het=45": heterogeneous ones)')
    parser.add_argument("--stop-after", type=float, metavar="SECONDS",
                        help="end a run this long after its first validation at or above the "
                             "target (default: every run goes to its cap)")
    parser.add_argument("--corpus", type=Path,
                        help="text file for the text workload (default: the bundled Tiny "
                             "Shakespeare, webnn/data/corpora)")
    parser.add_argument("--init-weights", type=Path, metavar="FILE",
                        help="start every run from these weights (.npy of the flat weights in "
                             "the spec's order, or a TF.js weights.bin) instead of the seed's "
                             "initialisation; times still count from the last client's join")
    parser.add_argument("--out", type=Path, default=Path("bench-out/scaling"))
    parser.add_argument("--report-only", action="store_true",
                        help="redraw table and plot from OUT/scaling.json (or --inputs), with "
                             "--target re-applied to the recorded validation histories")
    parser.add_argument("--inputs", type=Path, nargs="*", help="JSON reports for --report-only")
    parser.add_argument("--at", type=float,
                        help="--report-only: also the accuracy this many seconds after the last "
                             "client joined")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        sources = args.inputs or [args.out / "scaling.json"]
        loaded = [json.loads(Path(p).read_text()) for p in sources]
        runs = [r for data in loaded for r in data["runs"]]
        if args.target is not None:
            runs = [retarget(r, args.target) for r in runs]
        meta = dict(loaded[0]["meta"])
        meta["command"] = "; ".join(d["meta"]["command"] for d in loaded)
        write_report(args.out, runs, meta, args.at)
        print((args.out / "scaling.md").read_text())
        return 0
    cores = Cores.detect(args.pin)
    if cores.pin:
        os.sched_setaffinity(0, {cores.server})
    deadline = time.monotonic() + args.budget
    corpus, corpus_sha256 = corpus_options(args.corpus)
    table = workloads(corpus)
    results: list[dict[str, Any]] = []
    meta = provenance(argv)
    meta["cores"] = asdict(cores)
    meta["corpus"] = corpus.get("path") or corpus["corpus"]
    meta["corpus_sha256"] = corpus_sha256
    for name in args.workload or ["mlp"]:
        if args.cap is not None:
            table[name] = replace(table[name], cap_seconds=args.cap)
        if args.target is not None:
            table[name] = replace(table[name], target=args.target)
        if args.stop_after is not None:
            table[name] = replace(table[name], stop_after=args.stop_after)
        if args.init_weights is not None:
            table[name] = replace(table[name], init_weights=str(args.init_weights))
            _spec_with(table[name].spec, table[name].default_setting, str(args.init_weights))
            meta["init_weights"] = str(args.init_weights)
            meta["init_weights_sha256"] = hashlib.sha256(
                args.init_weights.read_bytes()).hexdigest()
        for item in args.cap_for:
            key, _, value = item.partition("=")
            table[name] = replace(table[name], caps={**table[name].caps, key: float(value)})
        for item in args.setting:
            count, _, text = item.partition("=")
            if count == "*":
                table[name] = replace(table[name], default_setting=Setting.parse(text))
            else:
                table[name] = replace(table[name], settings={**table[name].settings,
                                                             int(count): Setting.parse(text)})
        runs = plan(args.clients, args.seeds, args.hetero, args.spread)
        before = list(results)

        def save(done: list[RunResult], before: list[dict[str, Any]] = before) -> None:
            write_report(args.out, before + [asdict(r) for r in done], meta)

        done = asyncio.run(sweep(table[name], runs, cores, args.parallel, args.out, deadline,
                                 save))
        results = before + [asdict(r) for r in done]
        write_report(args.out, results, meta)
    print((args.out / "scaling.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
