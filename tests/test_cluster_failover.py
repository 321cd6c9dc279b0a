"""Scale-out with real parts: a real redis-server, two front-ends and two mergers (active and
standby) as real ``wnn serve --redis --role`` processes, simulated protocol clients on both
front-ends, SIGKILL of a front-end and of the active merger mid-run, with the default merger
lock (1.5 s) and a tight merger back-pressure budget (0.2 s of the merger's work), so bodies and
leases are turned away while the standby takes over.

Checked: every acknowledged update (task id) is merged exactly once, the run goes on after each
kill, and the final published model is exactly what replaying the merge log's stream entries
from the initial weights gives.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import numpy as np
import pytest
from support.e2e import DIGITS_SPEC, wait_until
from support.protocol_client import ProtocolClient
from support.redis import redis_server, start_role, wait_for_version  # noqa: F401 (fixture)

from webnn.cluster.records import attach, decode_entry, payload_key
from webnn.merge.base import ModelState
from webnn.merge.registry import create_strategy
from webnn.spec import load_spec

pytestmark = pytest.mark.slow
RUN = "digits_mlp"


class Volunteers:
    """Simulated clients spread over the front-ends; they move to a live front-end (and join
    again) when theirs dies. `acked` holds the task ids of accepted updates."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = list(urls)
        self.acked: list[str] = []
        self.stop = asyncio.Event()

    async def run_one(self, http: aiohttp.ClientSession, index: int) -> None:
        rng = np.random.default_rng(index)
        url = self.urls[index % len(self.urls)]
        client: ProtocolClient | None = None
        while not self.stop.is_set():
            try:
                if client is None:
                    client = ProtocolClient(http, url)
                    await client.join(name=f"sim-{index}")
                answer = await client.train_once(rng)
                if answer is None:
                    await asyncio.sleep(0.05)
                    continue
                if answer.status == 200 and answer.body.get("accepted"):
                    self.acked.append(answer.body_task)  # type: ignore[attr-defined]
                elif answer.status == 401:
                    client = None
            except (TimeoutError, aiohttp.ClientError, AssertionError):
                alive = [u for u in self.urls if u != url] or self.urls
                url = random.choice(alive)
                client = None
                await asyncio.sleep(0.1)


def _track_task_ids() -> None:
    """Make `ProtocolClient.submit_update` answers carry their task id (`body_task`)."""
    original = ProtocolClient.submit_update

    async def submit(self, task, weights, **kwargs):
        answer = await original(self, task, weights, **kwargs)
        answer.body_task = task["id"]
        return answer

    ProtocolClient.submit_update = submit  # type: ignore[method-assign]


def _lock_pid(client) -> int:
    owner = client.get(f"wnn:{RUN}:merger_lock").decode()
    return int(owner.split(":")[0].rsplit("-", 1)[1])


def _merged_up_to_last_entry(client) -> bool:
    last = client.xrevrange(f"wnn:{RUN}:stream", count=1)
    applied = client.hget(f"wnn:{RUN}:checkpoint", "applied")
    return bool(last) and applied is not None and applied.decode() == last[0][0].decode()


def test_sigkill_frontend_and_merger_loses_no_accepted_update(redis_server):  # noqa: F811
    _track_task_ids()
    strategy = ["--strategy", "average", "--merge-backlog", "0.2"]
    mergers = [start_role(redis_server.url, "merger", *strategy) for _ in range(2)]
    frontends = [start_role(redis_server.url, "frontend", *strategy) for _ in range(2)]
    client = redis_server.client()
    processes = mergers + frontends
    try:
        wait_for_version(client, RUN)
        volunteers = Volunteers([f.url for f in frontends])

        async def drive() -> dict:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                workers = [asyncio.create_task(volunteers.run_one(http, i)) for i in range(6)]

                async def until(count: int, what: str) -> None:
                    for _ in range(1200):
                        if len(volunteers.acked) >= count:
                            return
                        await asyncio.sleep(0.1)
                    raise AssertionError(f"gave up waiting for {what}")

                await until(20, "20 accepted updates")
                frontends[0].kill()  # SIGKILL a front-end mid-run
                await until(len(volunteers.acked) + 15, "updates after the front-end died")
                version_before = int(client.hget(f"wnn:{RUN}:current", "version"))
                active = _lock_pid(client)
                victim = next(m for m in mergers if m.process.pid == active)
                victim.kill()  # SIGKILL the active merger
                await until(len(volunteers.acked) + 15, "updates after the merger died")
                for _ in range(1200):  # the standby took over and publishes again
                    if int(client.hget(f"wnn:{RUN}:current", "version")) > version_before:
                        break
                    await asyncio.sleep(0.1)
                volunteers.stop.set()
                await asyncio.gather(*workers)
                return {"version_before": version_before}

        seen = asyncio.run(drive())
        wait_until(lambda: _merged_up_to_last_entry(client), 120,
                   "the merger to apply every stream entry")
        current = {k.decode(): v.decode() for k, v in client.hgetall(f"wnn:{RUN}:current").items()}
        assert int(current["version"]) > seen["version_before"], "no version after the takeover"

        records = [json.loads(r) for r in client.lrange(f"wnn:{RUN}:merged", 0, -1)]
        merged = [task for record in records if record["refused"] is None
                  for task in record["tasks"]]
        assert len(merged) == len(set(merged)), "a task id was merged twice"
        missing = set(volunteers.acked) - set(merged)
        assert not missing, f"{len(missing)} acknowledged updates were never merged"
        assert int(current["merges"]) == len(merged)
        assert len({r["entry"] for r in records}) == len(records), "an entry was applied twice"
        assert len({r["frontend"] for r in records}) == 2, "both front-ends fed the stream"

        # Replaying the merge log's entries from the initial weights gives the final model.
        spec = load_spec(DIGITS_SPEC)
        model = ModelState(spec.compiled.initial_weights(int(spec.training.seed or 0)))
        replay = create_strategy("average", {})
        for record in records:
            [(entry_id, fields)] = client.xrange(f"wnn:{RUN}:stream", record["entry"],
                                                 record["entry"])
            # the entry names the key of its array (kept with the stream: --keep-stream)
            entry = decode_entry(entry_id, attach(fields, client.get(payload_key(fields))))
            assert entry.partial is not None
            replay.merge_partial(model, entry.partial)
        final = np.frombuffer(client.get(f"wnn:{RUN}:blob:{current['digest']}"), dtype="<f4")
        np.testing.assert_array_equal(model.weights, final)
        assert model.steps == int(current["steps"])
    finally:
        for process in processes:
            process.stop()
