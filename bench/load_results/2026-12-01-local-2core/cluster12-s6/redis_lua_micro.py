"""Redis's own CPU (INFO used_cpu_user + used_cpu_sys) per command for a 4 MB value (a 1M-parameter
float32 array) passed through a Lua script against plain commands; a fresh redis-server on core 1.

    .venv/bin/python redis_lua_micro.py [redis-server]
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import redis

ROUNDS = 100
LUA_XADD = """local f = {} for i = 1, #ARGV do f[#f + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], '*', unpack(f))"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "1", sys.argv[1] if len(sys.argv) > 1
                               else "redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)

        def cpu() -> float:
            info = client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        def bench(name: str, command: Callable[[int], object]) -> None:
            used, began = cpu(), time.perf_counter()
            for index in range(ROUNDS):
                command(index)
            print(f"{name:40s} redis {1000 * (cpu() - used) / ROUNDS:6.2f} ms/op  "
                  f"wall {1000 * (time.perf_counter() - began) / ROUNDS:6.2f}")

        data = np.random.default_rng(0).random(1_000_000).astype("<f4").tobytes()
        lua_xadd = client.register_script(LUA_XADD)
        lua_set = client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
        lua_hset = client.register_script("return redis.call('HSET', KEYS[1], 'state', ARGV[1])")
        unused = client.register_script("return 1")
        bench("lua XADD 4MB (COMMIT path)",
              lambda i: lua_xadd(keys=["s1"], args=["kind", "partial", "total", data]))
        bench("XREAD 1 entry 4MB", lambda i: client.xread({"s1": "0-0"}, count=1))
        client.delete("s1")
        bench("plain XADD 4MB", lambda i: client.xadd("s2", {"kind": "partial", "total": data}))
        client.delete("s2")
        bench("SET 4MB (distinct keys)", lambda i: client.set(f"k{i}", data, px=60000))
        bench("GET 4MB", lambda i: client.get(f"k{i}"))
        bench("DEL 4MB", lambda i: client.delete(f"k{i}"))
        bench("lua SET 4MB", lambda i: lua_set(keys=[f"j{i}"], args=[data]))
        bench("lua HSET 4MB", lambda i: lua_hset(keys=["cp"], args=[data]))
        bench("lua script with 4MB unused arg", lambda i: unused(keys=[], args=[data]))
        bench("SET small", lambda i: client.set("x", "y"))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
