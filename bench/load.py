"""Load benchmark: simulated protocol clients in separate processes against one ``wnn serve``.

Generates a dense model of about ``--params`` parameters (bench/load_model.py), starts ``wnn
serve`` on it (pinned with ``taskset -c`` to ``--server-cpus``), runs ``--clients`` simulated
volunteers in ``--processes`` processes (pinned to ``--load-cpus``; bench/load_clients.py says what
a client does), samples the server's status, CPU and RSS every second, and reports merges/s,
latency p50/p99 per request kind, errors, refusals and 503s, server CPU and RSS, and ingest
bytes/s against a plain memory copy measured in the same run (bench/load_report.py defines every
figure). It speaks only docs/protocol.md; ``--encoding q8f16`` makes the clients offer what the
shipped clients get by default (q8 updates, f16 weights; bench/load_encodings.py builds them).

    .venv/bin/python bench/load.py --params 1000000 --clients 1000 --think 0.5:1 \\
        --duration 300 --server-cpus 0 --load-cpus 1-15 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from load_clients import (
    ProcessPlan,
    ProcessResult,
    process_main,
    raise_fd_limit,
)
from load_encodings import OFFERS
from load_model import write_model
from load_report import Sample, build_report, format_report
from load_server import ServerError, ServerProcess, memcopy_bandwidth, parse_cpus, read_proc

REPO = Path(__file__).resolve().parent.parent


def parse_think(text: str) -> tuple[float, float]:
    """"A:B" (uniform in [A, B] seconds) or "A" (fixed); "0" means no think time."""
    low, _, high = text.partition(":")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--think {text!r}: expected A or A:B seconds") from None
    if not (0 <= pair[0] <= pair[1]) or not all(math.isfinite(v) for v in pair):
        raise argparse.ArgumentTypeError(f"--think {text!r}: need 0 <= A <= B")
    return pair


def parse_step(text: str) -> tuple[float, int]:
    """"T:N": T seconds into the window, N clients go on."""
    at, _, keep = text.partition(":")
    try:
        step = (float(at), int(keep))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--step {text!r}: expected T:N") from None
    if not (math.isfinite(step[0]) and step[0] > 0 and step[1] >= 0):
        raise argparse.ArgumentTypeError(f"--step {text!r}: need T > 0 and N >= 0")
    return step


def cpu_list(text: str) -> tuple[int, ...] | None:
    try:
        return parse_cpus(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--params", type=int, default=100_000, help="model size (parameters, about)")
    add("--clients", type=int, default=50, help="simulated volunteers")
    add("--think", type=parse_think, default=(0.5, 1.0), metavar="A:B",
        help="compute time per task, uniform in [A, B] s; 0 for none")
    add("--duration", type=float, default=60.0, help="measured seconds (after the warm-up)")
    add("--warmup", type=float, default=10.0, help="seconds before measuring")
    add("--ramp", type=float, default=None,
        help="seconds over which clients join [warm-up / 2]")
    add("--processes", type=int, default=None,
        help="generator processes [number of load CPUs, at most --clients]")
    add("--server-cpus", type=cpu_list, default=None, metavar="LIST",
        help="pin the server with taskset -c LIST (e.g. 0)")
    add("--load-cpus", type=cpu_list, default=None, metavar="LIST",
        help="pin the generator (and this process) to LIST (e.g. 1-15)")
    add("--strategy", default="average", help="wnn serve --strategy")
    add("--param", action="append", default=[], metavar="KEY=VALUE",
        help="wnn serve --param (repeatable)")
    add("--screen", action="append", default=[], metavar="KEY=VALUE",
        help="wnn serve --screen (repeatable)")
    add("--server-arg", action="append", default=[], metavar="ARG",
        help="one more argument for wnn serve, verbatim (repeatable; e.g. --server-arg="
             "--max-staleness=50)")
    add("--clients-per-address", type=int, default=50,
        help="simulated volunteers per loopback source address (127.1.x.y); 0: all from the "
             "default address")
    add("--role", choices=("any", "train"), default="any", help="task role clients ask for")
    add("--no-follow-up", dest="follow_up", action="store_false",
        help="three requests per task (task; weights and batch; update) instead of one")
    add("--timeout", type=float, default=30.0, help="seconds before a request counts as timed out")
    add("--perturb", type=int, default=1024, help="floats of noise added per update")
    add("--encoding", choices=tuple(OFFERS), default="f32",
        help="what clients offer at join (docs/protocol.md, Encodings): f32 (no offer), q8f16 "
             "(q8 updates, f16 weights: what the shipped clients get by default) or f16 (f16 "
             "both ways)")
    add("--eval-seconds", type=float, default=60.0,
        help="the spec's validation.everySeconds (0: only the initial evaluation)")
    add("--step", type=parse_step, default=None, metavar="T:N",
        help="a load step: T seconds into the measured window only the first N clients go on "
             "(the report gives merges/s and 503s before and after, and when 503s stopped)")
    add("--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="one more variable in the server's environment (repeatable; e.g. "
             "--server-env=MALLOC_ARENA_MAX=2)")
    add("--census", type=Path, default=None, metavar="FILE",
        help="append a heap census of the server (bench/memory_census.py) to FILE as JSON lines")
    add("--census-every", type=float, default=10.0, help="seconds between two census lines")
    add("--census-tracemalloc", action="store_true",
        help="the census with tracemalloc's allocating lines (slows the server several times)")
    add("--census-collect", action="store_true",
        help="each census also runs gc.collect() and records what cyclic garbage held")
    add("--census-garbage", action="store_true",
        help="each census counts the cyclic garbage found since the last by type")
    add("--profile", type=Path, default=None, metavar="FILE",
        help="cProfile the server's event-loop thread over the measured window; pstats to FILE "
             "(bench/load_profile.py)")
    add("--seed", type=int, default=0)
    add("--commit", default=None,
        help="commit to record in the report [git rev-parse of this checkout]")
    add("--json", type=Path, default=None, help="write the report (with time series) here")
    args = parser.parse_args(argv)
    for name in ("params", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    if args.processes is not None and args.processes < 1:
        parser.error("--processes must be at least 1")
    for pair in args.server_env:
        if "=" not in pair or not pair.partition("=")[0]:
            parser.error(f"--server-env {pair!r}: expected KEY=VALUE")
    return args


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """Variables added to the server's environment: --server-env, the census's settings and the
    profile's file."""
    env = dict(pair.split("=", 1) for pair in args.server_env)
    if args.profile is not None:
        env["WEBNN_PROFILE"] = str(args.profile.resolve())
    if args.census is not None:
        env["WEBNN_CENSUS"] = str(args.census.resolve())
        env["WEBNN_CENSUS_EVERY"] = str(args.census_every)
        if args.census_tracemalloc:
            env["WEBNN_CENSUS_TRACEMALLOC"] = "1"
        if args.census_collect:
            env["WEBNN_CENSUS_COLLECT"] = "1"
        if args.census_garbage:
            env["WEBNN_CENSUS_GARBAGE"] = "1"
    return env


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform()}


def commit(given: str | None) -> str | None:
    """`given` (--commit), else the checkout's short HEAD (+dirty(webnn) when webnn/ differs)."""
    if given:
        return given
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "webnn"], capture_output=True, text=True).stdout.strip()
        return head + ("+dirty(webnn)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def wait_ready(base_url: str, timeout: float = 60.0) -> None:
    """Poll ``GET api/v1/status`` until it answers 200."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(base_url + "api/v1/status", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            if time.time() > deadline:
                raise
        time.sleep(0.2)


async def monitor(base_url: str, server: ServerProcess, start: float,
                  stop_at: float, profile_from: float | None = None
                  ) -> tuple[list[Sample], dict | None]:
    """Every second until `stop_at`: the server's CPU time and RSS, and its status (merges,
    version, open tasks); then the final status. With `profile_from`, the server's profile
    (`load_profile`) is started at the first sample from then on and written at `stop_at`."""
    samples: list[Sample] = []
    profiling = False
    timeout = aiohttp.ClientTimeout(total=0.9)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def status(limit: aiohttp.ClientTimeout = timeout) -> dict | None:
            try:
                async with http.get(base_url + "api/v1/status", timeout=limit) as answer:
                    return await answer.json() if answer.status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None

        tick = start
        while tick <= stop_at + 1e-6:
            await asyncio.sleep(max(0.0, tick - time.time()))
            proc = read_proc(server.pid)
            if proc is None or not server.alive():
                raise ServerError(f"the server died during the run:\n{server.log_tail()}")
            t = time.time()
            if profile_from is not None and not profiling and t >= profile_from - 0.5:
                os.kill(server.pid, signal.SIGUSR1)
                profiling = True
            answer = await status()
            samples.append(Sample(
                t, proc.cpu_seconds, proc.rss_bytes,
                answer.get("merges") if answer else None,
                answer.get("version") if answer else None,
                answer.get("openTasks") if answer else None,
                answer.get("capacity") if answer else None))
            tick += 1.0
        if profiling:
            os.kill(server.pid, signal.SIGUSR2)
        final = await status(aiohttp.ClientTimeout(total=30))
    return samples, final


def run_generator(args: argparse.Namespace, base_url: str, params: int, processes: int,
                  server: ServerProcess) -> tuple[list[Sample], dict | None,
                                                  list[ProcessResult], tuple[float, ...]]:
    """Start the generator processes, synchronise their clocks, monitor, collect results."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = context.Barrier(processes + 1)
    times = context.Array("d", 3)
    go = context.Event()
    share, extra = divmod(args.clients, processes)
    children, first = [], 0
    for index in range(processes):
        count = share + (1 if index < extra else 0)
        plan = ProcessPlan(
            base_url=base_url, first_client=first, clients=count, params=params,
            start=0.0, ramp=args.ramp if args.ramp is not None else args.warmup / 2,
            measure_from=0.0, stop_at=0.0, think=args.think, follow_up=args.follow_up,
            role=args.role, timeout=args.timeout, perturb=args.perturb,
            seed=args.seed * 1000 + index, clients_per_address=args.clients_per_address,
            cpus=args.load_cpus, step_after=args.step[0] if args.step else None,
            keep_clients=args.step[1] if args.step else 0, encoding=args.encoding)
        first += count
        child = context.Process(target=process_entry, args=(plan, results, ready, go, times),
                                daemon=True)
        child.start()
        children.append(child)
    try:
        ready.wait(timeout=120)
        start = time.time() + 0.2
        times[:] = [start, start + args.warmup, start + args.warmup + args.duration]
        go.set()
        samples, final = asyncio.run(monitor(base_url, server, start, times[2],
                                             times[1] if args.profile is not None else None))
        collected = [results.get(timeout=args.timeout + 60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join()
    return samples, final, collected, tuple(times[:])


def process_entry(plan: ProcessPlan, results: Any, ready: Any, go: Any, times: Any) -> None:
    """A generator process: wait for the common clock, then run its clients."""
    from dataclasses import replace

    ready.wait()
    go.wait()
    start, measure_from, stop_at = times[:]
    process_main(replace(plan, start=start, measure_from=measure_from, stop_at=stop_at), results)


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    raise_fd_limit()
    load_cpus = args.load_cpus
    processes = args.processes or min(args.clients, len(load_cpus) if load_cpus
                                      else max(1, (os.cpu_count() or 2) - 1))
    processes = min(processes, args.clients)
    with tempfile.TemporaryDirectory(prefix="wnn-load-") as tmp:
        model = write_model(Path(tmp), args.params, args.eval_seconds or None)
        memcopy = memcopy_bandwidth(model.nbytes, args.server_cpus)
        if load_cpus:
            os.sched_setaffinity(0, load_cpus)
        serve_args = [str(model.spec_path), "--data", str(model.data_path),
                      "--host", "127.0.0.1", "--port", "0", "--strategy", args.strategy]
        for pair in args.param:
            serve_args += ["--param", pair]
        for pair in args.screen:
            serve_args += ["--screen", pair]
        serve_args += args.server_arg
        server = ServerProcess(serve_args, Path(tmp) / "server.log", args.server_cpus,
                               env=server_env(args))
        try:
            base_url = server.wait_listening(timeout=180)
            wait_ready(base_url)
            samples, final, results, (start, t0, t1) = run_generator(
                args, base_url, model.params, processes, server)
        finally:
            server.stop()
        config = {
            "command": shlex.join([Path(sys.executable).name, *sys.argv]) if argv is None
            else shlex.join(["bench/load.py", *argv]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(args.commit), "machine": machine(),
            "params": model.params, "requested_params": args.params,
            "model_bytes": model.nbytes, "hidden_width": model.width,
            "clients": args.clients, "processes": processes, "think_s": list(args.think),
            "duration_s": args.duration, "warmup_s": args.warmup,
            "strategy": args.strategy, "strategy_params": args.param, "screen": args.screen,
            "server_args": args.server_arg, "server_env": args.server_env,
            "follow_up": args.follow_up, "role": args.role, "encoding": args.encoding,
            "timeout_s": args.timeout, "clients_per_address": args.clients_per_address,
            "step": ({"after_s": args.step[0], "clients": args.step[1]} if args.step
                     else None),
            "server_cpus": list(args.server_cpus) if args.server_cpus else None,
            "load_cpus": list(load_cpus) if load_cpus else None,
            "server_command": shlex.join(server.command),
        }
        report = build_report(config=config, samples=samples, results=results, start=start,
                              t0=t0, t1=t1, memcopy_bytes_per_s=memcopy, final_status=final)
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(finite(report), indent=1, allow_nan=False))
        print(f"report written to {args.json}")
    return report


if __name__ == "__main__":
    main()
