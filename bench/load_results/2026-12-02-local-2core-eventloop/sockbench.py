"""Loopback socket options against the kernel's cost of an update's exchange (README.md).

A client (pinned to core 1) sends `BODY` bytes; the server (pinned to core 0) ``recv_into``s them
and answers a 400-byte head, `BODY` bytes of "weights" and an 8 KiB "batch" the way the variant
says; the server's CPU time (user + system) per exchange over `rounds` exchanges after 20 warm-up
ones is printed per variant:

    taskset -c 0,1 nice -n 10 .venv/bin/python sockbench.py 300
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import socket
import sys
import time
from typing import Any

BODY = 4_000_000
BATCH = 8192
HEAD = 400
WARMUP = 20
VARIANTS: list[dict[str, Any]] = [
    {}, {"mode": "sendmsg"}, {"mode": "cork"}, {"sndbuf": 4 << 20},
    {"sndbuf": 4 << 20, "mode": "sendmsg"}, {"rcvbuf": 4 << 20}, {"recvsize": 256 << 10},
]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _send(conn: socket.socket, pieces: list[bytes | memoryview], mode: str | None) -> None:
    if mode == "sendmsg":
        todo = [memoryview(piece) for piece in pieces]
        while todo:
            sent = conn.sendmsg(todo)
            rest = []
            for piece in todo:
                if sent >= len(piece):
                    sent -= len(piece)
                    continue
                rest.append(piece[sent:])
                sent = 0
            todo = rest
        return
    if mode == "cork":
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    for piece in pieces:
        conn.sendall(piece)
    if mode == "cork":
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def server(ports: Any, variant: dict[str, Any], rounds: int) -> None:
    os.sched_setaffinity(0, {0})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ports.put(listener.getsockname()[1])
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if "sndbuf" in variant:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, variant["sndbuf"])
    if "rcvbuf" in variant:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, variant["rcvbuf"])
    view = memoryview(bytearray(BODY))
    pieces: list[bytes | memoryview] = [b"h" * HEAD, memoryview(os.urandom(BODY)),
                                        os.urandom(BATCH)]
    cap = variant.get("recvsize", 0)
    began = cpu = 0.0
    for index in range(rounds + WARMUP):
        if index == WARMUP:
            cpu, began = _cpu(), time.perf_counter()
        got = 0
        while got < BODY:
            count = conn.recv_into(view[got:], min(BODY - got, cap) if cap else 0)
            if not count:
                return
            got += count
        _send(conn, pieces, variant.get("mode"))
    per = (_cpu() - cpu) / rounds * 1e3
    wall = (time.perf_counter() - began) / rounds * 1e3
    print(f"{variant!s:45} server CPU {per:.3f} ms per exchange (wall {wall:.3f} ms)",
          flush=True)


def client(port: int, rounds: int) -> None:
    os.sched_setaffinity(0, {1})
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = os.urandom(BODY)
    want = HEAD + BODY + BATCH
    view = memoryview(bytearray(want))
    for _ in range(rounds + WARMUP):
        conn.sendall(body)
        got = 0
        while got < want:
            got += conn.recv_into(view[got:])
    conn.close()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    for _ in range(2):
        for variant in VARIANTS:
            ports: Any = multiprocessing.Queue()
            child = multiprocessing.Process(target=server, args=(ports, variant, rounds))
            child.start()
            client(ports.get(), rounds)
            child.join()


if __name__ == "__main__":
    main()
