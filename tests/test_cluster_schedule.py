"""Evaluations, the end of a run and the admin in cluster mode, with real parts: a real
redis-server, real ``wnn serve --redis --role`` processes (two front-ends on their own ports,
mergers), simulated protocol clients.

- the admin pauses through one front-end and the other sees it at once (status, no task, a
  ``state`` event on its event stream); resume through the other;
- a run ends on ``--max-merges`` after its final evaluation even though the active merger is
  SIGKILLed while the run is finishing; its history is identical from both front-ends;
- evaluation results are checked at the door (impossible values refused and named).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest
from support.protocol_client import ProtocolClient
from support.redis import (  # noqa: F401 (fixture)
    ADMIN_TOKEN,
    get_json,
    post_json,
    redis_server,
    start_run,
    wait_for_version,
)

from webnn.cluster.evalstate import evaluation_from_json, evaluation_to_json
from webnn.server.evaluation import ChunkResult, ClassCounts, EvaluationSchedule, Party

RUN = "digits_mlp"


def test_an_evaluation_in_progress_survives_its_trip_through_json():
    schedule = EvaluationSchedule(10, None, [256, 104], quorum=2)
    evaluation = schedule.start(3, 30, 12, 4.5)
    _, chunk = schedule.next_chunk("a", Party("10.0.0.1", None))  # type: ignore[misc]
    schedule.next_chunk("b", Party(None, "vol-1"))
    schedule.record(evaluation.id, chunk, "a",
                    ChunkResult(0.5, 0.75, 256, ClassCounts((1, 2), (3, 253))), 7.0)
    back = evaluation_from_json(evaluation_to_json(evaluation))
    assert back == evaluation
    assert evaluation_to_json(back) == evaluation_to_json(evaluation)


async def _events(http: aiohttp.ClientSession, url: str, seen: list[tuple[str, dict]],
                  ready: asyncio.Event) -> None:
    async with http.get(url + "api/v1/events") as answer:
        event = None
        while True:
            line = (await answer.content.readline()).decode()
            if not line:
                return
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event is not None:
                seen.append((event, json.loads(line[6:])))
                ready.set()


@pytest.mark.slow
def test_pause_through_one_frontend_is_seen_by_the_other(redis_server):  # noqa: F811
    mergers, fronts = start_run(redis_server.url, "--strategy", "average")
    a, b = fronts[0].url, fronts[1].url
    try:
        wait_for_version(redis_server.client(), RUN)

        async def drive() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                seen: list[tuple[str, dict]] = []
                ready = asyncio.Event()
                stream = asyncio.create_task(_events(http, b, seen, ready))
                await asyncio.wait_for(ready.wait(), 30)  # the hello (status) arrived
                client = ProtocolClient(http, b)
                await client.join(name="on-b")
                assert (await client.task("train"))["task"] is not None

                status, paused = await asyncio.to_thread(post_json, a, "api/v1/admin/pause",
                                                         ADMIN_TOKEN)
                assert status == 200 and paused["state"] == "paused"
                assert get_json(b, "api/v1/status")["state"] == "paused"
                answer = await client.task("train")
                assert answer["task"] is None and answer["state"] == "paused"
                for _ in range(300):  # B's event stream relays A's pause
                    if any(e == "state" and d.get("state") == "paused" for e, d in seen[1:]):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"no paused state event on B: {seen}")

                status, refused = await asyncio.to_thread(post_json, b, "api/v1/admin/resume",
                                                          "wrong-token")
                assert status == 401 and refused["error"]["code"] == "admin_token_required"
                status, resumed = await asyncio.to_thread(post_json, b, "api/v1/admin/resume",
                                                          ADMIN_TOKEN)
                assert status == 200 and resumed["state"] == "running"
                assert get_json(a, "api/v1/status")["state"] == "running"
                assert (await client.task("train"))["task"] is not None
                stream.cancel()

        asyncio.run(drive())
    finally:
        for process in fronts + mergers:
            process.stop()


class Evaluators:
    """Two sessions doing evaluation tasks (agreeing figures), holding their results back while
    `hold` is set and the run is finishing (so the final evaluation waits for the test)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.hold = True
        self.stop = asyncio.Event()
        self.done = 0

    async def run_one(self, http: aiohttp.ClientSession, url: str, name: str) -> None:
        client = ProtocolClient(http, url)
        await client.join(name=name)
        while not self.stop.is_set():
            answer = await client.task("evaluate")
            task = answer["task"]
            if task is None:
                if answer.get("state") == "ended":
                    return
                await asyncio.sleep(0.1)
                continue
            _, tensors = await client.batch(task)
            while self.hold and (await asyncio.to_thread(get_json, url, "api/v1/status")
                                 )["finishing"]:
                await asyncio.sleep(0.1)
            sent = await client.submit_evaluation(task, 1.0, 0.5, int(tensors["x"].shape[0]))
            assert sent.status in (200, 409), sent.body
            self.done += 1


@pytest.mark.slow
def test_a_run_ends_on_max_merges_with_a_final_evaluation_despite_a_merger_sigkill(
        redis_server):  # noqa: F811
    mergers, fronts = start_run(redis_server.url, "--strategy", "average", "--max-merges", "12",
                                mergers=2)
    urls = [f.url for f in fronts]
    client = redis_server.client()
    try:
        wait_for_version(client, RUN)

        async def drive() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                evaluators = Evaluators(urls)
                tasks = [asyncio.create_task(evaluators.run_one(http, url, f"eval-{i}"))
                         for i, url in enumerate(urls)]
                trainer = ProtocolClient(http, urls[0])
                await trainer.join(name="trainer")
                rng = np.random.default_rng(0)
                codes = set()
                for _ in range(400):
                    answer = await trainer.train_once(rng)
                    if answer is None:
                        if get_json(urls[1], "api/v1/status")["finishing"]:
                            break
                        await asyncio.sleep(0.05)
                        continue
                    codes.add(answer.status)
                    if answer.status == 409:
                        assert answer.body["error"]["code"] == "finishing", answer.body
                        break
                else:
                    raise AssertionError("the run never started finishing")
                status = get_json(urls[1], "api/v1/status")
                assert status["finishing"] and status["state"] == "running"
                assert status["endReason"] == "max_merges=12 reached"
                assert status["merges"] >= 12
                answer = await trainer.task("train")
                assert answer["task"] is None  # no training while finishing

                owner = client.get(f"wnn:{RUN}:merger_lock").decode()
                pid = int(owner.split(":")[0].rsplit("-", 1)[1])
                victim = next(m for m in mergers if m.process.pid == pid)
                victim.kill()  # SIGKILL the active merger while the run is finishing
                evaluators.hold = False
                for _ in range(1200):
                    if get_json(urls[0], "api/v1/status")["state"] == "ended":
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the run did not end after the takeover")
                evaluators.stop.set()
                await asyncio.gather(*tasks)

        asyncio.run(drive())
        statuses = [get_json(url, "api/v1/status") for url in urls]
        histories = [get_json(url, "api/v1/history")["history"] for url in urls]
        assert histories[0] == histories[1]
        history = histories[0]
        final = history[-1]
        assert final["final"] and final["evaluated"] and final["validated"], final
        assert final["version"] == statuses[0]["version"]
        assert final["valAccuracy"] == pytest.approx(0.5)
        assert sum(1 for h in history if h.get("final")) == 1
        assert any(h["version"] == 0 for h in history)  # the initial evaluation
        for status in statuses:
            assert status["state"] == "ended"
            assert status["endReason"] == "max_merges=12 reached"
            assert status["lastValidatedEvaluation"] == final
        assert statuses[0]["elapsed"] == statuses[1]["elapsed"]  # frozen at the end
    finally:
        for process in fronts + mergers:
            process.stop()


@pytest.mark.slow
def test_evaluation_results_are_checked_at_the_door(redis_server):  # noqa: F811
    mergers, fronts = start_run(redis_server.url, "--strategy", "average", frontends=1)
    url = fronts[0].url
    try:
        wait_for_version(redis_server.client(), RUN)

        async def drive() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                client = ProtocolClient(http, url)
                await client.join(name="checker")
                task = None
                for _ in range(300):  # the initial evaluation of version 0
                    task = (await client.task("evaluate"))["task"]
                    if task is not None:
                        break
                    await asyncio.sleep(0.1)
                assert task is not None and task["kind"] == "evaluate" and task["version"] == 0
                sent = await client.submit_evaluation(task, 1.0, 1.5, task["examples"])
                assert sent.status == 400 and "$.accuracy" in sent.body["error"]["message"]
                sent = await client.submit_evaluation(task, 1.0, 0.5, task["examples"] + 1)
                assert sent.status == 400 and "$.examples" in sent.body["error"]["message"]
                sent = await client.submit_evaluation(task, -2.0, 0.5, task["examples"])
                assert sent.status == 400 and "$.loss" in sent.body["error"]["message"]
                sent = await client.submit_evaluation(task, 1.0, 0.5, task["examples"])
                assert sent.status == 200 and sent.body["accepted"]
                again = await client.submit_evaluation(task, 1.0, 0.5, task["examples"])
                assert again.status == 200 and again.body == sent.body  # a retry's answer
                # the same session never gets the same chunk twice
                other = (await client.task("evaluate"))["task"]
                assert other is None or other["chunk"] != task["chunk"]
                wrong = await client.request("POST", task["urls"]["submit"].replace(
                    "evaluation", "update"), data=b"x", content_type="application/octet-stream")
                assert wrong.status == 404 and wrong.body["error"]["code"] == "unknown_task"
                status = get_json(url, "api/v1/status")
                assert status["rejected"].get("bad_field", 0) >= 3
                assert status["evaluating"]["version"] == 0

        asyncio.run(drive())
    finally:
        for process in fronts + mergers:
            process.stop()
