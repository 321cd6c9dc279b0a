"""Partitioned training over real HTTP: each session draws batches from its shard only, a volunteer
keeps its shard across sessions and restarts, and per-shard positions survive a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.data import load_data_module
from webnn.data.base import shard_batch_indices
from webnn.data.partition import PartitionConfig, partition
from webnn.server.app import create_app
from webnn.server.batch_feed import BatchFeed
from webnn.server.config import ConfigError
from webnn.server.shards import ShardAssigner

PARTITION = {"kind": "shards", "shards": 10, "classes": 1}
SEED = 1  # make_config's seed


@pytest.fixture(scope="module")
def digits(digits_data):
    return load_data_module(digits_data, {})


def _shards(digits) -> list[np.ndarray]:
    return partition(PartitionConfig.from_mapping(PARTITION), SEED, labels=digits.y_train)


async def _join(client: ProtocolClient, volunteer: str | None) -> dict:
    info = {"kind": "python", "name": "test"}
    if volunteer is not None:
        info["volunteerId"] = volunteer
    answer = await client.request("POST", "api/v1/join", session=False,
                                  json_body={"client": info})
    assert answer.status == 200, answer.body
    client.token, client.client_id = answer.body["token"], answer.body["clientId"]
    return answer.body


async def _shard_of(client: ProtocolClient) -> int:
    listed = (await client.get("api/v1/clients")).body["clients"]
    return next(c["shard"] for c in listed if c["clientId"] == client.client_id)


async def _train(client: ProtocolClient, submit: bool = True) -> tuple[dict, dict]:
    task = (await client.task("train"))["task"]
    header, tensors = await client.batch(task)
    if submit:
        w = await client.weights_array(task["urls"]["weights"])
        answer = await client.submit_update(task, (w + 0.01).astype(np.float32))
        assert answer.status == 200, answer.body
    return header, tensors


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.astype(np.float32).tobytes() for row in x}


async def test_sessions_draw_only_from_their_shards_and_keep_them(make_config, serve, http,
                                                                  digits):
    served = await serve(create_app(make_config(partition=PARTITION, evaluate_initial=False)))
    shards = _shards(digits)
    a, b = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
    await _join(a, "volunteer-a")
    await _join(b, "volunteer-b")
    per_batch = None
    seen: dict[str, int] = {}
    for name, client in (("a", a), ("b", b)):
        for _ in range(3):
            header, tensors = await _train(client)
            shard = await _shard_of(client)
            seen.setdefault(name, shard)
            assert shard == seen[name]
            allowed = _rows(digits.x_train[shards[shard]])
            assert _rows(tensors["x"]) <= allowed
            # one piece of the label-sorted data: (nearly) one label per shard
            assert set(tensors["y"].tolist()) <= set(digits.y_train[shards[shard]].tolist())
            assert np.bincount(tensors["y"]).max() >= 0.9 * len(tensors["y"])
            per_batch = int(tensors["x"].shape[0])
    assert seen["a"] != seen["b"]
    # the first batch of a shard is exactly the documented per-(seed, shard) sequence
    fresh = ProtocolClient(http, served.url)
    await _join(fresh, "volunteer-c")
    header, tensors = await _train(fresh, submit=False)
    shard_c = await _shard_of(fresh)
    assert shard_c not in (seen["a"], seen["b"])
    expected = next(shard_batch_indices(shards[shard_c], per_batch, SEED, shard_c))
    assert header["index"] == 0
    np.testing.assert_array_equal(tensors["x"], digits.x_train[expected])

    # a leaves and comes back with the same id: same shard; its batches go on from index 3
    assert (await a.leave()).status == 200
    again = ProtocolClient(http, served.url)
    await _join(again, "volunteer-a")
    header, tensors = await _train(again)
    assert await _shard_of(again) == seen["a"]
    assert header["index"] == 3
    assert _rows(tensors["x"]) <= _rows(digits.x_train[shards[seen["a"]]])
    # an anonymous session gets the least-loaded shard: the one nobody holds
    anonymous = ProtocolClient(http, served.url)
    await _join(anonymous, None)
    await _train(anonymous)
    assert await _shard_of(anonymous) not in (seen["a"], seen["b"], shard_c)

    status = (await a.get("api/v1/status")).body["partition"]
    assert status["kind"] == "shards" and status["shards"] == 10 and status["classes"] == 1
    assert status["volunteers"] == 3
    assert sum(s["examples"] for s in status["perShard"]) == digits.num_train
    assert status["perShard"][seen["a"]]["batches"] == 4


async def test_bad_volunteer_ids_are_refused(make_config, serve, http):
    served = await serve(create_app(make_config(partition=PARTITION)))
    client = ProtocolClient(http, served.url)
    for bad in ("", "x" * 65, "has space", 7, "tab\tbed"):
        answer = await client.request("POST", "api/v1/join", session=False,
                                      json_body={"client": {"volunteerId": bad}})
        assert answer.status == 400, bad
        assert "$.client.volunteerId" in answer.body["error"]["message"]
    status = (await client.get("api/v1/status")).body
    assert status["clients"] == 0  # nothing changed


async def test_restart_continues_every_shard_and_keeps_the_assignment(make_config, serve, http,
                                                                      tmp_path, digits):
    def config():
        return make_config(partition=PARTITION, evaluate_initial=False, state_dir=tmp_path / "s",
                           checkpoint_every_merges=None, checkpoint_every_seconds=None)

    first = await serve(create_app(config()))
    a, b = ProtocolClient(http, first.url), ProtocolClient(http, first.url)
    await _join(a, "volunteer-a")
    await _join(b, "volunteer-b")
    await _train(a)
    await _train(b)
    await _train(b)
    open_header, open_batch = await _train(a, submit=False)  # on lease at shutdown
    shard_a, shard_b = await _shard_of(a), await _shard_of(b)
    await first.stop()

    second = await serve(create_app(config()))
    b2, a2 = ProtocolClient(http, second.url), ProtocolClient(http, second.url)
    await _join(b2, "volunteer-b")  # b asks first: it must still get its own shard, not a's
    header, _ = await _train(b2)
    assert (await _shard_of(b2), header["index"]) == (shard_b, 2)
    await _join(a2, "volunteer-a")
    header, tensors = await _train(a2)
    assert await _shard_of(a2) == shard_a
    # the batch that was out on lease comes back first, then a's sequence continues
    assert header["index"] == open_header["index"] == 1
    np.testing.assert_array_equal(tensors["x"], open_batch["x"])
    header, _ = await _train(a2)
    assert header["index"] == 2


def test_feed_checkpoint_round_trip_per_shard(digits):
    shards = _shards(digits)
    feed = BatchFeed(digits, 16, SEED, shards)
    taken = [feed.take(s) for s in (0, 0, 2, 2, 2, 3)]
    feed.give_back(taken[1])  # shard 0's batch 1 came back unfinished
    leased = [taken[3]]  # shard 2's batch 1 is out on lease
    saved = [(feed.positions[s], feed.outstanding(leased, s)) for s in range(feed.count)]
    assert saved == [(2, [1]), (0, []), (3, [1]), (1, [])] + [(0, [])] * 6

    restored = BatchFeed(digits, 16, SEED, shards)
    for shard, (position, outstanding) in enumerate(saved):
        restored.resume(position, outstanding, shard)
    again = restored.take(2)
    assert (again.shard, again.index, again.frame) == (2, 1, taken[3].frame)
    next_one = restored.take(2)
    assert next_one.index == 3
    fresh = BatchFeed(digits, 16, SEED, shards)
    for _ in range(3):
        fresh.take(2)
    assert next_one.frame == fresh.take(2).frame  # the sequence itself goes on
    assert restored.take(0).index == 1 and restored.take(0).index == 2


def test_assigner_least_loaded_and_state():
    assigner = ShardAssigner(3)
    assert [assigner.assign(v) for v in ("a", "b", None, "a", "c")] == [0, 1, 2, 0, 0]
    assigner.release(2, None)  # the anonymous session left
    assert assigner.assign("d") == 2
    restored = ShardAssigner.from_state(assigner.state(), 3)
    assert restored.volunteers == {"a": 0, "b": 1, "c": 0, "d": 2}
    assert restored.assign("e") == 1


async def test_iid_keeps_no_volunteer_table(make_config, serve, http):
    served = await serve(create_app(make_config(evaluate_initial=False)))
    client = ProtocolClient(http, served.url)
    await _join(client, "volunteer-a")
    header, _ = await _train(client)
    assert (await _shard_of(client), header["index"]) == (0, 0)
    partition = (await client.get("api/v1/status")).body["partition"]
    assert (partition["kind"], partition["shards"], partition["volunteers"]) == ("iid", 1, 0)


def test_serve_toml_partition_table(tmp_path):
    from webnn.server.toml_config import ConfigError as TomlError
    from webnn.server.toml_config import parse_settings

    settings = parse_settings({"partition": {"kind": "dirichlet", "alpha": 0.1, "shards": 16}},
                              base_dir=tmp_path, label="serve.toml")
    assert settings.models[0]["partition"] == {"kind": "dirichlet", "alpha": 0.1, "shards": 16}
    with pytest.raises(TomlError, match=r"serve.toml: partition: expected a table"):
        parse_settings({"partition": 3}, base_dir=tmp_path, label="serve.toml")


def test_partition_settings_are_checked(make_config):
    with pytest.raises(ConfigError, match=r"partition.alpha: must be > 0, got -1"):
        create_app(make_config(partition={"kind": "dirichlet", "alpha": -1}))
    with pytest.raises(ConfigError, match=r"partition.shards: 2000 shards"):
        create_app(make_config(partition={"kind": "dirichlet", "shards": 2000}))
    with pytest.raises(ConfigError, match=r"partition.kind: by_key needs a key per training "
                                          r"example, and the data module gives none"):
        create_app(make_config(partition="by_key"))


def test_the_volunteer_table_forgets_the_least_recently_seen_id_past_its_limit() -> None:
    from webnn.server.shards import ShardAssigner

    assigner = ShardAssigner(2, limit=2)
    assert [assigner.assign(v) for v in ("a", "b")] == [0, 1]
    assert assigner.assign("a") == 0  # seen again: now the most recent
    assert assigner.assign("c") == 0  # loads tie at 1, 1: the lowest shard
    # a third id pushes out the least recently seen, "b", and its shard's load falls
    assert list(assigner.volunteers) == ["a", "c"] and assigner.load == [2, 0]
    assert assigner.assign("d") == 1  # shard 1 is now the least loaded
