"""What stalled weight fetches make a server hold, with and without the answer budget.

For each budget (``--budget``, repeatable: a byte count such as ``512M``, or ``default``; the
first run of the default set is ``1024G``, in effect no budget, as before it existed), starts
``wnn serve`` on a synthetic model of ``--params`` parameters (`load_model`), fetches the
weights once in full (so what a first fetch makes exists), reads its RSS, then opens
``--connections`` sockets that each send ``GET api/v1/weights`` with a 4 KiB receive buffer
and read nothing, as a hostile client would. Once every request is either being sent (held in
the budget) or answered ``503 busy`` (status ``capacity``: ``answersInFlight`` + ``refused
.answer_budget`` = connections), it reads RSS again (the most over ``--settle`` seconds), then
resets the sockets and reads RSS once the answers are gone.

    nice -n 10 taskset -c 1 .venv/bin/python bench/stalled_answers.py \\
        [--params 1000000] [--connections 400] [--budget 1024G --budget default] [--json]

RSS comes from ``/proc/<pid>/statm`` (`load_server.read_proc`). The figures are the server's
memory on this machine's Python (3.11 copies the unsent rest of each answer into the
transport's buffer; 3.12 keeps a view of the snapshot instead), not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_model import write_model  # noqa: E402
from load_server import ServerProcess, parse_cpus, read_proc  # noqa: E402

MB = 1e6
UNBOUNDED = "1024G"
"""A budget no run reaches: the server as it was before the budget."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--budget", action="append", default=None,
                        help=f"--answer-budget of a run (repeatable); 'default': the "
                             f"server's default (default: {UNBOUNDED} then default)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds over which RSS is read once every request is held or "
                             "refused (the most is reported)")
    parser.add_argument("--server-cpus", type=parse_cpus, default=None,
                        help="pin the server (taskset list, e.g. 1)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def status(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "api/v1/status", timeout=30) as answer:
        return json.loads(answer.read())


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.2)


def rss_mb(pid: int) -> float:
    sample = read_proc(pid)
    assert sample is not None, "the server has gone"
    return sample.rss_bytes / MB


def stalled_fetch(host: str, port: int) -> socket.socket:
    """A connection that asks for the weights and reads nothing (4 KiB receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.sendall(b"GET /api/v1/weights HTTP/1.1\r\nHost: bench\r\n\r\n")
    return sock


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def run_one(model: Any, budget: str, connections: int, settle: float,
            cpus: tuple[int, ...] | None, log: Path) -> dict:
    args = [str(model.spec_path), "--data", str(model.data_path), "--host", "127.0.0.1",
            "--port", "0"]
    if budget != "default":
        args += ["--answer-budget", budget]
    server = ServerProcess(args, log, cpus)
    sockets: list[socket.socket] = []
    try:
        base_url = server.wait_listening(timeout=180)
        wait_for(lambda: _answers(base_url) is not None, 60, "status")
        with urllib.request.urlopen(base_url + "api/v1/weights", timeout=60) as answer:
            assert len(answer.read()) == model.nbytes
        time.sleep(1.0)  # let the start's evaluation and the first fetch settle
        before = rss_mb(server.pid)
        host, port = base_url.split("//")[1].rstrip("/").split(":")
        for _ in range(connections):
            sockets.append(stalled_fetch(host, int(port)))

        def settled() -> bool:
            held, refused = _answers(base_url) or (0, 0)
            return held + refused >= connections

        wait_for(settled, 120, "every fetch held or refused")
        peak = before
        end = time.time() + settle
        while time.time() < end:
            peak = max(peak, rss_mb(server.pid))
            time.sleep(0.1)
        capacity = status(base_url)["capacity"]
        for sock in sockets:
            reset(sock)
        sockets.clear()
        wait_for(lambda: (_answers(base_url) or (1, 0))[0] == 0, 120, "the answers' end")
        time.sleep(1.0)
        after = rss_mb(server.pid)
        held = capacity["answersInFlight"]
        return {"budget": budget, "budget_bytes": capacity["answerBudget"],
                "connections": connections, "held": held,
                "refused_503": capacity["refused"].get("answer_budget", 0),
                "answer_mb_held": capacity["answerBytes"] / MB,
                "rss_before_mb": round(before, 1), "rss_stalled_mb": round(peak, 1),
                "rss_growth_mb": round(peak - before, 1),
                "rss_after_close_mb": round(after, 1)}
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def _answers(base_url: str) -> tuple[int, int] | None:
    """(answers in flight, fetches refused for the budget), None while status does not answer."""
    try:
        capacity = status(base_url)["capacity"]
    except OSError:
        return None
    return capacity["answersInFlight"], capacity["refused"].get("answer_budget", 0)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 256)),
                                                hard))
    budgets = args.budget or [UNBOUNDED, "default"]
    results = []
    with tempfile.TemporaryDirectory(prefix="wnn-stalled-") as tmp:
        model = write_model(Path(tmp), args.params, None)
        for i, budget in enumerate(budgets):
            results.append(run_one(model, budget, args.connections, args.settle,
                                   args.server_cpus, Path(tmp) / f"server{i}.log"))
    if args.json:
        print(json.dumps({"params": model.params, "answer_bytes": model.nbytes,
                          "python": sys.version.split()[0], "runs": results}, indent=2))
    else:
        print(f"{model.params} parameters ({model.nbytes / MB:.1f} MB answers), "
              f"{args.connections} stalled GET weights, Python {sys.version.split()[0]}")
        for r in results:
            print(f"budget {r['budget']:>8} ({r['budget_bytes'] / MB:,.0f} MB): held "
                  f"{r['held']}, 503 {r['refused_503']}; RSS {r['rss_before_mb']} -> "
                  f"{r['rss_stalled_mb']} MB (+{r['rss_growth_mb']}), "
                  f"{r['rss_after_close_mb']} MB after the sockets closed")
    return results


if __name__ == "__main__":
    main()
