"""Scale-out benchmark: the load of bench/load.py against ``wnn serve --redis URL --processes N``
for N front-ends (default 1, 2, 4), each with its own fresh redis-server.

For each N: a fresh ``redis-server`` on a free loopback port (no persistence: this measures the
processes, not the disk), the generated dense model of about ``--params`` parameters
(bench/load_model.py) served with FedBuff (K = ``--k``) by N front-ends and the mergers, pinned
with ``taskset`` to ``--server-cpus``; ``--clients`` simulated volunteers (bench/load_clients.py,
the same clients as bench/load.py) in ``--processes`` generator processes pinned to
``--load-cpus``, ``--warmup`` then ``--duration`` seconds. Reported per N: accepted updates/s
(the clients' count over the window), merges/s (the run's merges over the window), update p50 /
p99, errors and busy answers, and the ratio of updates/s to N = 1's.

    .venv/bin/python bench/cluster_load.py --params 1000000 --clients 200 --think 0 \\
        --frontends 1,2,4 --duration 30 --server-cpus 0-7 --load-cpus 8-15

``--kill frontend|merger --kill-after S`` SIGKILLs front-end 0 or the active merger S seconds
into the window (found through the run's ``processes`` hash and the merger lock); several kills
in one window are ``--kill frontend@30,merger@60`` (role@seconds into the window). Each kill
adds: ``durable_gap_s`` (from the kill to the next update made durable), ``version_gap_s`` (to
the next published version: the standby's takeover for a merger kill), ``restart_s`` (to the
supervisor's replacement naming itself in the ``processes`` hash), the errors the clients saw
in the 10 s after it; once the stream is drained after the window, ``lost``: updates
acknowledged as durable that no merge log record holds (the issue's target: 0 lost, service
back within 5 s). With kills, ``steady_*`` figures cover the window before the first kill only
(update p50/p99, errors, busy answers, accepted updates/s), the plain ones the whole window.

``--variant NAME:ARGS`` (repeatable) runs each front-end count once per variant, ARGS being
more ``wnn serve`` arguments for that variant only (``--variant "old:--lock-ms 3000
--merge-backlog 0" --variant new:``), so settings are compared side by side in one run;
``--repeat R`` runs the whole set R times, alternating (each row names its variant and round).
Each kill also reports ``unmerged``: the stream entries no published checkpoint covered when it
came (what a standby must replay after a merger kill).

Every process of the run is pinned to ``--server-cpus`` (redis-server too), the generators to
``--load-cpus``; the open-files limit is lifted to the hard limit first (a socket per client).

Each row also has ``cpu``: per process role (``redis``, ``merger``, ``frontend``) the CPU
seconds over the window (``/proc/<pid>/stat``, user + system, all threads; Redis's own
``INFO cpu`` beside it as ``redis_info``) as ``cores`` and as ``ms_per_update`` (per accepted
update), and ``redis_commands``: Redis's milliseconds per update in each command (``INFO
commandstats``). A variant's leading ``NAME=VALUE`` words set its server's environment:
``--variant "old:PYTHONPATH=/tmp/old"`` serves another checkout's ``webnn`` beside this one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import load_clients
import numpy as np
from load_clients import ProcessPlan, ProcessResult, Recorder, process_main
from load_model import write_model

REPO = Path(__file__).resolve().parent.parent
WNN = (REPO / ".venv" / "bin" / "wnn" if (REPO / ".venv" / "bin" / "wnn").exists()
       else Path(shutil.which("wnn") or "wnn"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10, help="FedBuff's K")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--think", default="0", help="A or A:B seconds between tasks")
    parser.add_argument("--frontends", default="1,2,4")
    parser.add_argument("--processes", type=int, default=4, help="generator processes")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--server-cpus", default=None, help="taskset list for wnn serve")
    parser.add_argument("--load-cpus", default=None, help="CPUs of the generator processes")
    parser.add_argument("--redis-server", default=shutil.which("redis-server")
                        or "/usr/bin/redis-server")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--kill", default="none",
                        help="SIGKILL front-end 0 or the active merger during the window: "
                        "frontend, merger, or a list role@seconds,...")
    parser.add_argument("--kill-after", type=float, default=5.0,
                        help="seconds into the window for a --kill without @seconds")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="seconds to wait for the stream to drain before counting lost")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="one more argument for wnn serve (repeatable)")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:ARGS: run every front-end count once more with these wnn "
                        "serve arguments (repeatable; compared side by side)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the whole set of runs (alternating the variants)")
    args = parser.parse_args(argv)
    args.kills = kills(args.kill, args.kill_after)
    args.variants = variants(args.variant)
    return args


def variants(texts: list[str]) -> list[tuple[str, list[str]]]:
    """``["old:--lock-ms 3000", "new:"]`` as ``[("old", ["--lock-ms", "3000"]), ("new",
    [])]``; none given: one unnamed variant without extra arguments. Leading ``NAME=VALUE``
    words are environment variables of that variant's server (``old:PYTHONPATH=/tmp/old``
    serves another checkout's ``webnn``: two versions of the code side by side)."""
    out = []
    for text in texts:
        name, sep, extra = text.partition(":")
        if not sep or not name:
            raise SystemExit(f"--variant: NAME:ARGS, got {text!r}")
        out.append((name, shlex.split(extra)))
    return out or [("", [])]


def split_env(words: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """A variant's leading ``NAME=VALUE`` words (its server's environment) and the rest (more
    ``wnn serve`` arguments)."""
    env: dict[str, str] = {}
    for index, word in enumerate(words):
        name, sep, value = word.partition("=")
        if not sep or word.startswith("-") or not name.isidentifier():
            return env, words[index:]
        env[name] = value
    return env, ()


def kills(text: str, default_after: float) -> list[tuple[str, float]]:
    """``frontend@30,merger@60`` as ``[("frontend", 30.0), ("merger", 60.0)]`` (sorted by time;
    a role without ``@`` is killed `default_after` seconds into the window)."""
    if text in ("", "none"):
        return []
    out = []
    for part in text.split(","):
        role, _, at = part.partition("@")
        if role not in ("frontend", "merger"):
            raise SystemExit(f"--kill: role must be frontend or merger, got {role!r}")
        out.append((role, float(at) if at else default_after))
    return sorted(out, key=lambda kill: kill[1])


class PhasedRecorder(Recorder):
    """`Recorder` that also files each latency sample under its phase of the window: kind
    ``update@0`` for samples finishing before the first boundary, ``update@1`` before the
    second, and so on (the phase boundaries are the kill times)."""

    boundaries: tuple[float, ...] = ()

    def done(self, kind: str, started: float, finished: float) -> None:
        super().done(kind, started, finished)
        if self.in_window(finished):
            phase = sum(1 for b in self.boundaries if finished >= b)
            self.samples[f"{kind}@{phase}"].append(finished - started)


def phased_process_main(plan: ProcessPlan, results: Any, boundaries: tuple[float, ...]) -> None:
    """`load_clients.process_main` with its recorder filing samples by phase (a spawned process:
    the recorder class is set for this process only)."""
    PhasedRecorder.boundaries = boundaries
    load_clients.Recorder = PhasedRecorder  # type: ignore[misc]
    process_main(plan, results)


def cpus(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return tuple(out)


def think(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def wait_ready(url: str, deadline: float, server: subprocess.Popen | None = None,
               errors: Path | None = None) -> None:
    """Until `url` answers status; a `server` that exited first fails at once with the tail of
    its `errors` file (a bad argument, say)."""
    while True:
        try:
            get_json(url + "api/v1/status")
            return
        except OSError:
            if server is not None and server.poll() is not None:
                tail = errors.read_text()[-2000:] if errors is not None else ""
                raise SystemExit(f"wnn serve exited ({server.returncode}) before serving:\n"
                                 f"{tail}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def victim_pid(client: Any, run: str, role: str) -> int:
    """The pid of front-end 0 or of the merger holding the lock (the ``processes`` hash)."""
    table = {k.decode(): json.loads(v) for k, v in client.hgetall(f"wnn:{run}:processes").items()}
    if role == "frontend":
        label = "frontend-0"
    else:
        label = client.get(f"wnn:{run}:merger_lock").decode().split(":")[0]
    return int(table[label]["pid"])


def watch_kill(client: Any, run: str, role: str, at: float, stop_at: float) -> dict[str, Any]:
    """Kill `role` at time `at`, then poll until `stop_at`: seconds to the next durable update,
    to the next version and to the replacement process naming itself; the unmerged stream
    entries at the kill and the most seen before the next version (what the standby replays
    after a merger kill)."""
    time.sleep(max(0.0, at - time.time()))
    pid = victim_pid(client, run, role)
    label = next(k.decode() for k, v in client.hgetall(f"wnn:{run}:processes").items()
                 if json.loads(v)["pid"] == pid)
    durable = int(client.hget(f"wnn:{run}:stats", "updates_durable") or 0)
    version = int(client.hget(f"wnn:{run}:current", "version") or 0)
    entries, applied = client.hmget(f"wnn:{run}:stats", "stream_entries", "stream_applied")
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    gaps: dict[str, Any] = {"killed": role, "label": label, "at": killed,
                            "durable_gap_s": None, "version_gap_s": None, "restart_s": None,
                            "unmerged": int(entries or 0) - int(applied or 0)}
    gaps["unmerged_max"] = gaps["unmerged"]
    while time.time() < stop_at and None in (gaps["durable_gap_s"], gaps["version_gap_s"],
                                             gaps["restart_s"]):
        now = time.time()
        if gaps["version_gap_s"] is None:
            entries, applied = client.hmget(f"wnn:{run}:stats", "stream_entries",
                                            "stream_applied")
            gaps["unmerged_max"] = max(gaps["unmerged_max"],
                                       int(entries or 0) - int(applied or 0))
        if gaps["durable_gap_s"] is None and int(
                client.hget(f"wnn:{run}:stats", "updates_durable") or 0) > durable:
            gaps["durable_gap_s"] = round(now - killed, 3)
        if gaps["version_gap_s"] is None and int(
                client.hget(f"wnn:{run}:current", "version") or 0) > version:
            gaps["version_gap_s"] = round(now - killed, 3)
        if gaps["restart_s"] is None:
            entry = client.hget(f"wnn:{run}:processes", label)
            if entry is not None and json.loads(entry)["pid"] != pid:
                gaps["restart_s"] = round(now - killed, 3)
        time.sleep(0.02)
    return gaps


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of a live process, from ``/proc/<pid>/stat``
    (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def cpu_sample(client: Any, run: str, redis_pid: int) -> dict[str, dict[str, float]]:
    """Every process of the run by role (``frontend``, ``merger``: the ``processes`` hash) and
    ``redis``: ``{role: {pid: cpu seconds}}``. Redis's own count (``INFO cpu``:
    ``used_cpu_user + used_cpu_sys``) is kept beside /proc's as ``redis_info``."""
    out: dict[str, dict[str, float]] = {"frontend": {}, "merger": {}, "redis": {},
                                        "redis_info": {}}
    for key, value in client.hgetall(f"wnn:{run}:processes").items():
        entry = json.loads(value)
        role = "merger" if key.decode().startswith("merger") else "frontend"
        used = process_cpu(int(entry["pid"]))
        if used is not None:
            out[role][str(entry["pid"])] = used
    used = process_cpu(redis_pid)
    if used is not None:
        out["redis"][str(redis_pid)] = used
    info = client.info("cpu")
    out["redis_info"]["info"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    out["redis_commands"] = {name.removeprefix("cmdstat_"): float(stats["usec"]) / 1e6
                             for name, stats in client.info("commandstats").items()}
    return out


def cpu_use(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
            seconds: float, updates: int) -> dict[str, Any]:
    """Per role over the window: ``cores`` (CPU seconds / wall seconds) and ``ms_per_update``
    (CPU milliseconds per accepted update), summed over the role's processes that lived through
    the window (a process started or killed in it counts from its first or to its last
    sample); ``redis_commands``: Redis's milliseconds per update in each command (a script's
    time includes the commands it calls, which are also counted on their own)."""
    out: dict[str, Any] = {}
    for role, now in after.items():
        if role == "redis_commands":  # Redis's own time per command (INFO commandstats)
            spent = {name: value - before[role].get(name, 0.0) for name, value in now.items()}
            out[role] = {name: round(1000 * value / updates, 3) if updates else None
                         for name, value in sorted(spent.items(), key=lambda kv: -kv[1])
                         if value > 0.001}
            continue
        used = sum(value - before.get(role, {}).get(pid, 0.0) for pid, value in now.items())
        out[role] = {"cores": round(used / seconds, 3),
                     "ms_per_update": round(1000 * used / updates, 3) if updates else None}
    return out


def lost_updates(client: Any, run: str, deadline: float) -> int | None:
    """Once the merger applied the stream's last entry: durable updates minus the task ids in
    the merge log (None when the stream did not drain by `deadline`)."""
    while time.monotonic() < deadline:
        last = client.xinfo_stream(f"wnn:{run}:stream")["last-generated-id"]
        applied = client.hget(f"wnn:{run}:checkpoint", "applied")
        if applied is not None and applied == last:
            break
        time.sleep(0.2)
    else:
        return None
    durable = int(client.hget(f"wnn:{run}:stats", "updates_durable") or 0)
    merged = sum(len(json.loads(r)["tasks"]) for r in client.lrange(f"wnn:{run}:merged", 0, -1))
    return durable - merged


def run_one(args: argparse.Namespace, frontends: int, model: Any,
            serve_args: tuple[str, ...] = ()) -> dict[str, Any]:
    redis_port, port = free_port(), free_port()
    prefix = ["taskset", "-c", args.server_cpus] if args.server_cpus else []
    redis = subprocess.Popen([*prefix, args.redis_server, "--port", str(redis_port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--maxclients", "10000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serve_log = Path(model.spec_path).parent / f"serve-{port}.err"
    env, serve_args = split_env(serve_args)
    server = subprocess.Popen(
        [*prefix, str(WNN), "serve", str(model.spec_path), "--data", str(model.data_path),
         "--redis", f"redis://127.0.0.1:{redis_port}/0", "--processes", str(frontends),
         "--strategy", "fedbuff", "--param", f"k={args.k}", "--port", str(port), "--quiet",
         "--max-open-tasks", "64", "--max-sessions", "100000", "--joins-per-minute", "0",
         *args.server_arg, *serve_args],
        stdout=subprocess.DEVNULL, stderr=serve_log.open("wb"), start_new_session=True,
        env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_ready(base, time.monotonic() + 180, server, serve_log)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        start = time.time() + 3.0
        measure_from, stop_at = start + args.warmup, start + args.warmup + args.duration
        boundaries = tuple(measure_from + at for _, at in args.kills)
        share, extra = divmod(args.clients, args.processes)
        children, first = [], 0
        for index in range(args.processes):
            count = share + (1 if index < extra else 0)
            plan = ProcessPlan(base_url=base, first_client=first, clients=count,
                               params=model.params, start=start, ramp=args.warmup / 2,
                               measure_from=measure_from, stop_at=stop_at,
                               think=think(args.think), follow_up=False, role="train",
                               timeout=args.timeout, perturb=0, seed=index,
                               clients_per_address=50, cpus=cpus(args.load_cpus))
            first += count
            child = context.Process(target=phased_process_main,
                                    args=(replace(plan), results, boundaries), daemon=True)
            child.start()
            children.append(child)
        time.sleep(max(0.0, measure_from - time.time()))
        import redis as redis_client

        client = redis_client.Redis(host="127.0.0.1", port=redis_port)
        cpu_before = cpu_sample(client, model_name(model), redis.pid)
        cpu_from = time.time()
        merges_before = get_json(base + "api/v1/status")["merges"]
        done_kills: list[dict[str, Any]] = []
        if args.kills:
            for index, (role, _) in enumerate(args.kills):
                until = boundaries[index + 1] if index + 1 < len(boundaries) else stop_at
                done_kills.append(watch_kill(client, model_name(model), role,
                                             boundaries[index], until))
                print(json.dumps({"kill": done_kills[-1]}), flush=True)
        time.sleep(max(0.0, stop_at - time.time()))
        cpu_after = cpu_sample(client, model_name(model), redis.pid)
        cpu_seconds = time.time() - cpu_from
        status = get_json(base + "api/v1/status")
        collected = [results.get(timeout=args.timeout + 30) for _ in children]
        for child in children:
            child.join(timeout=10)
        lost = (lost_updates(client, model_name(model), time.monotonic() + args.drain)
                if done_kills else None)
        # once drained, every merged entry's array was deleted with it (none left behind)
        payloads_left = (len(client.keys(f"wnn:{model_name(model)}:payload:*"))
                         if lost is not None else None)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(8)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        redis.terminate()
        redis.wait(10)
    updates = sum(r.accepted_updates for r in collected)
    update_latency = latencies(collected, "update")
    errors = sum(sum(r.errors.values()) for r in collected)
    busy = sum(sum(r.busy.values()) for r in collected)
    row: dict[str, Any] = {
        "frontends": frontends, "clients": args.clients, "think": args.think,
        "updates_per_s": updates / args.duration,
        "merges_per_s": (status["merges"] - merges_before) / args.duration,
        "update_p50_ms": percentile(update_latency, 50),
        "update_p99_ms": percentile(update_latency, 99), "update_max_ms":
        percentile(update_latency, 100), "errors": errors, "busy": busy,
        "error_kinds": dict(sum((r.errors for r in collected), Counter())),
        "busy_kinds": dict(sum((r.busy for r in collected), Counter())),
        "refused": dict(sum((r.refused for r in collected), Counter())),
        "version": status["version"], "stream_entries": status["cluster"]["streamEntries"],
        "durable": status["cluster"]["updatesDurable"], "capacity": status.get("capacity"),
        "cpu": cpu_use(cpu_before, cpu_after, cpu_seconds, updates)}
    if done_kills:
        start_second = int(measure_from - start)
        series = {name: np.sum([r.series[name] for r in collected], axis=0)
                  for name in ("updates", "busy", "errors")}
        first = int(boundaries[0] - start)
        steady = latencies(collected, "update@0")
        row.update({
            "steady_s": args.kills[0][1],
            "steady_update_p50_ms": percentile(steady, 50),
            "steady_update_p99_ms": percentile(steady, 99),
            "steady_errors": int(series["errors"][start_second:first].sum()),
            "steady_busy": int(series["busy"][start_second:first].sum()),
            "steady_updates_per_s": float(series["updates"][start_second:first].sum())
            / max(1, first - start_second), "lost": lost, "payloads_left": payloads_left,
            "kills": []})
        for index, kill in enumerate(done_kills):
            second = int(kill["at"] - start)
            after = latencies(collected, f"update@{index + 1}")
            kill["errors_10s"] = int(series["errors"][second:second + 10].sum())
            kill["busy_10s"] = int(series["busy"][second:second + 10].sum())
            kill["update_p99_ms_after"] = percentile(after, 99)
            kill["updates_per_s"] = [int(n) for n in series["updates"][second - 2:second + 8]]
            row["kills"].append(kill)
    return row


def latencies(collected: list[ProcessResult], kind: str) -> np.ndarray:
    return np.concatenate([r.latencies.get(kind, np.empty(0)) for r in collected])


def percentile(values: np.ndarray, q: float) -> float:
    """The `q`th percentile in milliseconds (NaN without samples)."""
    return float(np.percentile(values, q)) * 1000 if values.size else float("nan")


def model_name(model: Any) -> str:
    """The run's name in Redis: the generated spec's model name."""
    return str(json.loads(Path(model.spec_path).read_text())["name"])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    # a `timeout` in front of the benchmark stops it with SIGTERM: clean up (the server's
    # process group, redis-server) as on any other exit
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # the front-ends inherit it: one socket per client connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp), args.params, None)
        for round_ in range(args.repeat):
            for count in (int(n) for n in args.frontends.split(",")):
                for name, extra in args.variants:
                    row = run_one(args, count, model, tuple(extra))
                    row.update(variant=name, variant_args=" ".join(extra), round=round_)
                    rows.append(row)
                    print(json.dumps(rows[-1]), flush=True)
    report(args, model.params, rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


def label(row: dict[str, Any]) -> str:
    """A row's name in the tables: its front-end count, variant and round when there are
    several."""
    text = str(row["frontends"])
    if row.get("variant"):
        text += f" {row['variant']}"
    if row.get("round"):
        text += f" (round {row['round'] + 1})"
    return text


def report(args: argparse.Namespace, params: int, rows: list[dict[str, Any]]) -> None:
    """The Markdown tables of docs/scale-out.md (``x one``: against the first front-end count
    of the same variant and round)."""
    print(f"\n{params} parameters, FedBuff K={args.k}, {args.clients} clients, think "
          f"{args.think} s, {args.duration:g} s window\n")
    print("| front-ends | updates/s | x one | merges/s | update p50 ms | p99 ms | errors | busy "
          "| updates per stream entry |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        reference = next(r for r in rows if r.get("variant") == row.get("variant")
                         and r.get("round") == row.get("round"))["updates_per_s"]
        per_entry = row["durable"] / row["stream_entries"] if row["stream_entries"] else 0
        print(f"| {label(row)} | {row['updates_per_s']:.1f} | "
              f"{row['updates_per_s'] / (reference or float('nan')):.2f} | "
              f"{row['merges_per_s']:.1f} | "
              f"{row['update_p50_ms']:.0f} | {row['update_p99_ms']:.0f} | {row['errors']} | "
              f"{row['busy']} | {per_entry:.2f} |")
    print("\nCPU per accepted update over the window, ms (and cores busy), by process role:\n")
    print("| front-ends | Redis | merger(s) | front-ends (all) | per front-end |")
    print("|---|---|---|---|---|")
    for row in rows:
        cpu = row["cpu"]
        cells = [f"{cpu[role]['ms_per_update']} ({cpu[role]['cores']})"
                 for role in ("redis", "merger", "frontend")]
        share = cpu["frontend"]["cores"] / row["frontends"]
        print(f"| {label(row)} | {' | '.join(cells)} | {share:.2f} cores |")
    if not args.kills:
        return
    print(f"\nBefore the first kill ({args.kills[0][1]:g} s):\n")
    print("| front-ends | updates/s | update p50 ms | p99 ms | errors | busy |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {label(row)} | {row['steady_updates_per_s']:.1f} | "
              f"{row['steady_update_p50_ms']:.0f} | {row['steady_update_p99_ms']:.0f} | "
              f"{row['steady_errors']} | {row['steady_busy']} |")
    print("\nSIGKILLs (seconds into the window):\n")
    print("| front-ends | killed | unmerged entries at the kill (most before the next version) "
          "| next durable update s | next version s | replacement up s | errors in 10 s after "
          "| update p99 ms after | lost (run) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for kill, (_, at) in zip(row["kills"], args.kills, strict=True):
            print(f"| {label(row)} | {kill['label']} @ {at:g} | {kill['unmerged']} "
                  f"({kill['unmerged_max']}) | "
                  f"{kill['durable_gap_s']} | {kill['version_gap_s']} | "
                  f"{kill['restart_s']} | {kill['errors_10s']} | "
                  f"{kill['update_p99_ms_after']:.0f} | {row['lost']} |")
    print("\nEntry arrays left in Redis once the stream drained (0: each deleted with its "
          "merge): " + ", ".join(f"{label(row)}: {row['payloads_left']}" for row in rows))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
