"""Float16 copies at most every `HALF_COPY_INTERVAL` (`webnn.server.half_copies`): the policy on a
real version store, and a real server on loopback where an f16 session's task starts from the
newest version with its copy while f32 sessions start from the newest version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.server import half_copies
from webnn.server.app import create_app
from webnn.server.half_copies import MIN_VALUES, HalfCopies
from webnn.server.keys import COORDINATOR
from webnn.server.versions import Snapshot, VersionSnapshots

REPO = Path(__file__).resolve().parent.parent
F16 = {"update": ["f32"], "weights": ["f16"]}


def _snapshot(value: float) -> Snapshot:
    return Snapshot(np.full(4, value, np.float32), steps=int(value))


def test_copies_at_most_every_interval_and_f16_tasks_start_from_the_newest_copy() -> None:
    versions = VersionSnapshots(0, _snapshot(0))
    half = HalfCopies(versions, interval=1.0)
    assert half.due(0.0) and half.lease_version(current=0, now=0.0) == 0  # none made yet
    half.made(0, now=0.0)
    for version in (1, 2, 3):  # merges within the interval: no copies
        assert not half.due(0.1 * version)
        versions.advance(version, _snapshot(version))
    assert 0 in versions  # held while it is the newest version with a copy
    assert half.lease_version(current=3, now=0.5) == 0
    assert half.lease_version(current=3, now=2.5) == 3  # too old: the current version
    assert half.due(1.0)
    versions.advance(4, _snapshot(4))
    half.made(4, now=1.0)
    assert 0 not in versions and half.lease_version(current=4, now=1.2) == 4
    half.made(2, now=1.3)  # a copy made late for an older version does not take over
    assert half.version == 4 and 2 not in versions
    versions.advance(5, _snapshot(5))
    half.forget()  # the last f16 session left
    assert 4 not in versions and half.version is None and half.due(1.4)


def test_small_models_copy_every_version() -> None:
    versions = VersionSnapshots(0, _snapshot(0))
    small = HalfCopies.for_model(versions, MIN_VALUES)
    assert small.interval == 0.0 and small.due(0.0)
    small.made(0, now=5.0)
    assert small.due(5.0) and small.lease_version(current=1, now=5.0) == 1
    assert HalfCopies.for_model(versions, MIN_VALUES + 1).interval == half_copies.HALF_COPY_INTERVAL


@pytest.fixture
async def model(load_script: Callable, tmp_path: Path):
    return load_script("load_model", REPO / "bench" / "load_model.py").write_model(
        tmp_path, 100_000, None)


async def _join(http, url: str, offer: dict | None) -> ProtocolClient:
    client = ProtocolClient(http, url)
    await client.join_with(offer)
    return client


async def _merge_once(client: ProtocolClient) -> int:
    task = (await client.task("train"))["task"]
    weights = await client.weights_array(task["urls"]["weights"])
    answer = await client.submit_update(task, weights + 0.001)
    assert answer.status == 200 and answer.body["merged"], answer.body
    return answer.body["version"]


@pytest.mark.parametrize("interval, starts_behind", [(3600.0, True), (0.0, False)])
async def test_an_f16_task_starts_from_the_newest_version_with_its_copy(
        model, make_config, serve, http, monkeypatch, interval, starts_behind):
    monkeypatch.setattr(half_copies, "HALF_COPY_INTERVAL", interval)
    served = await serve(create_app(make_config(
        spec=str(model.spec_path), data=str(model.data_path), evaluate_initial=False)))
    coordinator = served.app[COORDINATOR]
    half_client, plain = await _join(http, served.url, F16), await _join(http, served.url, None)
    first = (await half_client.task("train"))["task"]
    assert first["version"] == 0
    copy = await half_client.weights(first["urls"]["weights"])  # version 0's copy, made now
    assert copy.status == 200 and copy.headers["X-WebNN-Encoding"] == "f16"
    for _ in range(3):
        current = await _merge_once(plain)
    task = (await half_client.task("train"))["task"]
    assert (task["version"] == 0) is starts_behind
    assert task["version"] == (0 if starts_behind else current)
    assert (coordinator.versions.get(current).half is None) is starts_behind  # no eager copies
    sent = await half_client.weights(task["urls"]["weights"])
    reference = coordinator.versions.get(task["version"]).array().astype(np.float16)
    np.testing.assert_array_equal(np.frombuffer(sent.raw, "<f2"), reference)
    assert (await plain.task("train"))["task"]["version"] == current  # f32: the newest
