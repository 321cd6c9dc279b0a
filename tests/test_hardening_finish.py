"""A run always ends: while finishing, clients asking with role ``any`` get the final evaluation's
chunks; when nobody completes it by ``finishingDeadline`` (the clients left), the run ends with
the last validated evaluation, says so in status, history and the export's metadata. Real server,
real HTTP; the coordinator's clock is moved forward instead of waiting out the deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.keys import COORDINATOR


class Clock:
    """Wall time plus a shift the test moves forward."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


async def _status(client: ProtocolClient) -> dict:
    return (await client.get("api/v1/status")).body


async def _wait(condition, what: str, limit: float = 30.0):
    """Poll `condition()` (a coroutine function) until it answers something true."""
    deadline = time.monotonic() + limit
    while True:
        value = await condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _exported(path: Path) -> dict:
    async def read() -> dict | None:
        return json.loads(path.read_text()) if path.is_file() else None
    return await _wait(read, f"{path}")


async def _started(make_config, serve, http, tmp_path: Path):
    served = await serve(create_app(make_config(max_merges=1, eval_every_merges=None,
                                                export_dir=tmp_path / "export")))
    clock = Clock()
    served.app[COORDINATOR].clock = clock
    a, b = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await a.join()
    await b.join()
    assert await a.evaluate_all() == 3 and await b.evaluate_all() == 3  # version 0, validated
    return served, clock, a, b


async def test_finishing_hands_the_final_evaluation_to_role_any(make_config, serve, http,
                                                               tmp_path):
    served, _, a, b = await _started(make_config, serve, http, tmp_path)
    late = (await b.task("train"))["task"]
    assert (await a.train_once(np.random.default_rng(0))).status == 200  # max_merges reached
    status = await _status(a)
    assert status["finishing"] and status["evaluating"]["version"] == status["version"] == 1
    refused = await b.submit_update(late, await b.weights_array())
    assert refused.code == "finishing"
    for client in (a, b):
        seen = 0
        while (task := (await client.task("any"))["task"]) is not None:
            assert task["kind"] == "evaluate" and task["version"] == 1
            _, tensors = await client.batch(task)
            answer = await client.submit_evaluation(task, 1.0, 0.5, int(tensors["x"].shape[0]))
            assert answer.status == 200
            seen += 1
        assert seen == 3
    status = await _status(a)
    assert status["state"] == "ended" and status["endReason"] == "max_merges=1 reached"
    final = (await a.get("api/v1/history")).body["history"][-1]
    assert final["version"] == 1 and final["final"] is True and final["evaluated"] is True
    assert final["validated"] is True
    meta = (await _exported(tmp_path / "export" / "model.json"))["userDefinedMetadata"]["webnn"]
    assert meta["final"] and meta["evaluated"] and meta["validated"] and meta["version"] == 1


async def test_a_run_whose_clients_leave_ends_with_the_last_validated_evaluation(
        make_config, serve, http, tmp_path):
    served, clock, a, b = await _started(make_config, serve, http, tmp_path)
    assert (await a.train_once(np.random.default_rng(0))).status == 200  # max_merges reached
    status = await _status(a)
    assert status["finishing"] and status["state"] == "running"
    # one chunk of the final evaluation is taken, then everybody leaves
    assert (await b.task("any"))["task"]["kind"] == "evaluate"
    assert (await a.leave()).status == 200 and (await b.leave()).status == 200
    watcher = ProtocolClient(http, served.url)
    assert (await _status(watcher))["clients"] == 0
    clock.shift = status["finishingDeadline"] - time.time() + 1  # past the deadline

    async def ended() -> dict | None:
        status = await _status(watcher)
        return status if status["state"] == "ended" else None

    status = await _wait(ended, "the end of the run")
    assert "final evaluation not completed in time" in status["endReason"]
    assert "last validated evaluation: version 0" in status["endReason"]
    assert status["finishing"] is False
    history = (await watcher.get("api/v1/history")).body["history"]
    final = history[-1]
    assert final["final"] is True and final["evaluated"] is False and final["validated"] is False
    assert final["version"] == 1 and final["valAccuracy"] is None
    assert final["lastValidated"] == {"version": 0, "valLoss": 1.0, "valAccuracy": 0.5}
    assert status["lastValidatedEvaluation"]["version"] == 0
    meta = (await _exported(tmp_path / "export" / "model.json"))["userDefinedMetadata"]["webnn"]
    assert meta["evaluated"] is False and meta["version"] == 1
    assert meta["lastValidated"]["version"] == 0
    assert "not completed in time" in meta["endReason"]
