"""Task scaling on a real server over loopback (docs/scaling.md): a train task's learningRate
and localSteps follow the live training clients, fall back when they leave or go quiet, stay the
spec's with the default rule; the settings name the field they refuse; `fedbuff_live` is a
built-in strategy."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support.protocol_client import ProtocolClient

from webnn.cli import main
from webnn.merge.fedbuff_live import FedBuffLive
from webnn.merge.registry import builtin_strategies, get_strategy
from webnn.server.app import create_app
from webnn.server.toml_config import load_toml
from webnn.settings import ConfigError, ServeConfig

SPEC_LR, SPEC_STEPS, BATCH = 0.01, 5, 32  # model_specs/digits_mlp.json


async def clients(http, url: str, n: int) -> list[ProtocolClient]:
    joined = [ProtocolClient(http, url) for _ in range(n)]
    for client in joined:
        await client.join()
    return joined


async def train_task(client: ProtocolClient) -> dict:
    task = (await client.task("train"))["task"]
    assert task is not None and task["kind"] == "train"
    return task


async def contribute(client: ProtocolClient, task: dict) -> None:
    """Send `task`'s update (accepted): from then on the session counts as a live trainer."""
    weights = await client.weights_array(task["urls"]["weights"])
    answer = await client.submit_update(task, weights + 0.001)
    assert answer.status == 200 and answer.body["accepted"], answer.body


async def rates_while_joining(group: list[ProtocolClient]) -> list[float]:
    """Each client in turn takes a train task and contributes it; the rates they were given."""
    rates = []
    for client in group:
        task = await train_task(client)
        rates.append(task["learningRate"])
        await contribute(client, task)
    return rates


async def status(client: ProtocolClient) -> dict:
    answer = await client.get("api/v1/status")
    assert answer.status == 200
    return answer.body


async def test_default_rule_leaves_the_payload_as_before(make_config, serve, http) -> None:
    running = await serve(create_app(make_config(evaluate_initial=False)))
    group = await clients(http, running.url, 4)
    for client in group:
        task = await train_task(client)
        assert (task["learningRate"], task["localSteps"], task["batchSize"], task["examples"]) \
            == (SPEC_LR, SPEC_STEPS, BATCH, BATCH * SPEC_STEPS)
        _, batch = await client.batch(task)
        assert batch["x"].shape[0] == BATCH * SPEC_STEPS
        await contribute(client, task)
    scaling = (await status(group[0]))["taskScaling"]
    assert scaling["lrScaling"] == "none" and scaling["liveClients"] == 4
    assert (scaling["clients"], scaling["learningRate"], scaling["localSteps"]) == (
        1, SPEC_LR, SPEC_STEPS)


async def test_learning_rate_follows_the_live_training_clients(make_config, serve, http) -> None:
    running = await serve(create_app(make_config(evaluate_initial=False, lr_scaling="sqrt")))
    group = await clients(http, running.url, 4)
    # a session counts once it has had an update accepted: each asks with 0, 1, 2, 3 trainers
    # before it (quantised: 1, 1, 2, 2)
    rates = await rates_while_joining(group)
    assert rates == pytest.approx([SPEC_LR, SPEC_LR, SPEC_LR * math.sqrt(2),
                                   SPEC_LR * math.sqrt(2)])
    # sessions that only take leases and never return work do not raise the rate
    for idle in await clients(http, running.url, 8):
        await train_task(idle)
    assert (await status(group[0]))["taskScaling"]["liveClients"] == 4
    # an update, then its follow-up task, both at N = 4: 0.01 * sqrt(4)
    first = await train_task(group[0])
    assert first["learningRate"] == pytest.approx(0.02) and first["localSteps"] == SPEC_STEPS
    weights = await group[0].weights_array(first["urls"]["weights"])
    answer = await group[0].submit_update(first, weights + 0.001, extra={"next": "train"})
    assert answer.status == 200, answer.body
    assert answer.body["next"]["task"]["learningRate"] == pytest.approx(0.02)
    # two leave: 2 < 3/4 of 4, so N falls to 2 at once
    for client in group[2:]:
        assert (await client.leave()).status == 200
    assert (await train_task(group[1]))["learningRate"] == pytest.approx(SPEC_LR * math.sqrt(2))
    scaling = (await status(group[0]))["taskScaling"]
    assert (scaling["liveClients"], scaling["clients"]) == (2, 2)
    # the model description keeps the spec's rate: only tasks vary
    assert group[0].model is not None
    assert group[0].model["training"]["learningRate"] == SPEC_LR


async def test_clients_that_stop_training_stop_counting(make_config, serve, http) -> None:
    # the live window is the lease time: sessions that hold no lease and returned nothing
    # within it are not counted, though they are still joined
    running = await serve(create_app(make_config(evaluate_initial=False, lr_scaling="linear",
                                                 lease_seconds=3.0, scaling_max_clients=2)))
    group = await clients(http, running.url, 3)
    rates = await rates_while_joining(group)
    # linear, capped at 2 clients: 0, 1, 2 trainers before each ask -> 0.01, 0.01, 0.02
    assert rates == pytest.approx([SPEC_LR, SPEC_LR, 2 * SPEC_LR])
    deadline = time.monotonic() + 60
    while (await status(group[0]))["taskScaling"]["liveClients"] > 0:
        assert time.monotonic() < deadline, "live clients never fell to 0"
        await asyncio.sleep(0.1)
    assert len((await group[0].get("api/v1/clients")).body["clients"]) == 3  # still joined
    task = await train_task(group[0])
    assert task["learningRate"] == pytest.approx(SPEC_LR)  # alone again: N = 1


async def test_local_steps_shrink_and_the_pieces_cover_the_batch(make_config, serve,
                                                                  http) -> None:
    # e = 1/2 at 4 clients: round(5 / 2) = 2 steps (64 examples), the rest of the batch next
    config = make_config(evaluate_initial=False, local_steps_exponent=0.5)
    running = await serve(create_app(config))
    group = await clients(http, running.url, 4)
    tasks, headers, xs = [], [], []

    async def take(client: ProtocolClient) -> dict:
        task = await train_task(client)
        header, batch = await client.batch(task)
        assert batch["x"].shape[0] == header["examples"] == task["examples"]
        assert task["localSteps"] == math.ceil(task["examples"] / BATCH)
        tasks.append(task)
        headers.append(header)
        xs.append(batch["x"])
        return task

    for client in group:  # each contributes before the next asks: N = 1, 1, 2, 2
        await contribute(client, await take(client))
    await take(group[0])  # N = 4
    # 5 steps, 5, round(5 / sqrt(2)) = 4, the 1-step rest of that batch, round(5 / 2) = 2
    assert [t["localSteps"] for t in tasks] == [5, 5, 4, 1, 2]
    assert [t["examples"] for t in tasks] == [160, 160, 128, 32, 64]
    assert [t["learningRate"] for t in tasks] == [SPEC_LR] * 5  # lr rule none: the spec's
    # task 3 took 128 of batch 2's 160 examples, task 4 the remaining 32, task 5 batch 3's head
    assert [(h["index"], h.get("offset", 0)) for h in headers] == [(0, 0), (1, 0), (2, 0),
                                                                     (2, 128), (3, 0)]
    # the same data, in the same order, as a server without scaling hands out
    plain = await serve(create_app(make_config(evaluate_initial=False)))
    reference = await clients(http, plain.url, 4)
    whole = [(await reference[i].batch(await train_task(reference[i])))[1]["x"] for i in range(4)]
    np.testing.assert_array_equal(xs[0], whole[0])
    np.testing.assert_array_equal(xs[1], whole[1])
    np.testing.assert_array_equal(np.concatenate(xs[2:4]), whole[2])
    np.testing.assert_array_equal(xs[4], whole[3][:64])
    # an update of a 2-step task is accepted with its steps; one claiming more is refused
    weights = await group[0].weights_array(tasks[4]["urls"]["weights"])
    refused = await group[0].submit_update(tasks[4], weights + 0.001, steps=5)
    assert refused.status == 400, refused.body
    assert "steps: must be an integer from 1 to 2" in refused.raw.decode()
    answer = await group[0].submit_update(tasks[4], weights + 0.001)
    assert answer.status == 200 and answer.body["accepted"], answer.body
    assert (await status(group[0]))["taskScaling"]["localSteps"] == 2


def test_settings_name_the_field_they_refuse(tmp_path: Path, digits_spec, digits_data) -> None:
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec=digits_spec, data=digits_data, lr_scaling="cube",
                    local_steps_exponent=1.5, scaling_max_clients=0, min_local_steps=0)
    text = str(info.value)
    for field in ("lr_scaling", "local_steps_exponent", "scaling_max_clients",
                  "min_local_steps"):
        assert f"{field}:" in text
    path = tmp_path / "serve.toml"
    path.write_text('lr_scaling = "square"\n[[models]]\nspec = "a.json"\n'
                    'local_steps_exponent = -1\n')
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert any(p.startswith("lr_scaling:") and "sqrt" in p for p in info.value.problems)
    assert any(p.startswith("models[0].local_steps_exponent:") for p in info.value.problems)
    result = CliRunner().invoke(main, ["serve", "--lr-scaling", "cube"])
    assert result.exit_code != 0 and "--lr-scaling" in result.output


def test_fedbuff_live_is_a_built_in_and_the_reference_still_works(digits_spec,
                                                                   digits_data) -> None:
    assert builtin_strategies()["fedbuff_live"] is FedBuffLive
    assert get_strategy("fedbuff_live") is FedBuffLive
    assert get_strategy("webnn.merge.fedbuff_live:FedBuffLive") is FedBuffLive
    config = ServeConfig(spec=digits_spec, data=digits_data, strategy="fedbuff_live",
                         strategy_params={"server_lr": "0.5"}, lr_scaling="sqrt")
    assert config.strategy == "fedbuff_live"
    result = CliRunner().invoke(main, ["strategies", "fedbuff_live"])
    assert result.exit_code == 0 and "fedbuff_live  (built-in)" in result.output
