"""The merger's CPU per stream entry, old and new code side by side: a real redis-server holds
E FedBuff partials (K = 10, each of C updates, their arrays detached as COMMIT writes them) and
one `Merger` (whichever ``webnn`` PYTHONPATH gives) drains them with its read loop
(``Merger._read``), as the lock holder. Reported: process CPU seconds (all threads)
per entry and per update. Run from the repository root:

    PYTHONPATH=/tmp/x/old nice -n 10 .venv/bin/python <this> old
    PYTHONPATH=$PWD nice -n 10 .venv/bin/python <this> new
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path.cwd() / "bench"))
from load_model import write_model  # noqa: E402

import webnn  # noqa: E402
from webnn.cluster.connection import connect  # noqa: E402
from webnn.cluster.keys import RunKeys  # noqa: E402
from webnn.cluster.merger import Merger  # noqa: E402
from webnn.cluster.records import detach, partial_fields  # noqa: E402
from webnn.cluster.settings import ClusterSettings  # noqa: E402
from webnn.merge.base import Partial  # noqa: E402
from webnn.server.config import ServeConfig, load_parts  # noqa: E402

PARAMS, ENTRIES, COUNT, ROUNDS = 1_000_000, 40, 3, 3
RUN = "micro"


async def main(label: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis = connect(url)
        while True:
            try:
                await redis.ping()
                break
            except Exception:
                await asyncio.sleep(0.05)
        model = write_model(Path(tempfile.mkdtemp()), PARAMS, None)
        config = ServeConfig(spec=model.spec_path, data=model.data_path, strategy="fedbuff",
                             strategy_params={"k": 10}, eval_every_merges=10**9,
                             eval_every_seconds=1e9)
        merger = Merger(config, load_parts(config), ClusterSettings(redis_url=url, run=RUN),
                        connect(url), RunKeys(RUN), "micro")
        await redis.set(f"wnn:{RUN}:merger_lock", merger.owner)
        await merger._load()
        rng = np.random.default_rng(1)
        figures = []
        for round_ in range(ROUNDS):
            last = b""
            for index in range(ENTRIES):
                total = rng.normal(0, 1e-4, merger.layout.size).astype(np.float32)
                fields = partial_fields([f"r{round_}e{index}"], Partial(
                    total=total, count=COUNT, weight=float(COUNT), max_steps=1), "micro")
                key = f"wnn:{RUN}:payload:micro:{round_}:{index}"
                small, data = detach(fields, key)
                await redis.set(key, data)
                last = await redis.xadd(f"wnn:{RUN}:stream",
                                        dict(zip(small[::2], small[1::2], strict=True)))
            cpu, wall = time.process_time(), time.perf_counter()
            stop, lost = asyncio.Event(), asyncio.Event()
            reading = asyncio.create_task(merger._read(stop, lost))
            while merger.applied != last.decode():
                await asyncio.sleep(0.005)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            stop.set()
            await reading
            figures.append({"cpu_ms_per_entry": round(1000 * cpu / ENTRIES, 2),
                            "cpu_ms_per_update": round(1000 * cpu / ENTRIES / COUNT, 2),
                            "wall_ms_per_entry": round(1000 * wall / ENTRIES, 2)})
        print(json.dumps({"variant": label, "webnn": str(Path(webnn.__file__).parent),
                          "params": merger.layout.size, "entries": ENTRIES,
                          "updates_per_entry": COUNT, "version": merger.model.version,
                          "rounds": figures}))
        await merger.redis.aclose()
        await redis.aclose()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
