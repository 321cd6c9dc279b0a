"""The learning-rate warm-up of task scaling (`--lr-warmup`) on a real server over loopback: a
rise of the rule's rate ramps from the rate in use, a fall applies at once, the task's
learningRate is the rate in use the status shows, and the settings, TOML and command line refuse
a warm-up without a rate rule or below 0, naming the field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.protocol_client import ProtocolClient

from webnn.cli import main
from webnn.server.app import create_app
from webnn.server.toml_config import load_toml
from webnn.settings import ConfigError, ServeConfig

SPEC = Path(__file__).resolve().parents[1] / "model_specs" / "digits_mlp.json"
SPEC_LR = 0.01  # model_specs/digits_mlp.json
WARMUP = 3600.0  # a ramp far longer than the test: the rate in use stays near its start


async def status(client: ProtocolClient) -> dict:
    answer = await client.get("api/v1/status")
    assert answer.status == 200
    return answer.body["taskScaling"]


async def train_task(client: ProtocolClient) -> dict:
    task = (await client.task("train"))["task"]
    assert task is not None and task["kind"] == "train"
    return task


async def test_a_rise_ramps_and_a_fall_applies_at_once(make_config, serve, http) -> None:
    config = make_config(evaluate_initial=False, lr_scaling="sqrt", lr_warmup=WARMUP)
    running = await serve(create_app(config))
    group = [ProtocolClient(http, running.url) for _ in range(4)]
    for client in group:
        await client.join()
    first = await status(group[0])
    assert first["lrWarmup"] == {"seconds": WARMUP, "targetRate": SPEC_LR,
                                 "rateInUse": SPEC_LR, "secondsLeft": 0.0}
    rates = []
    for client in group:  # each contributes before the next asks: 0, 1, 2, 3 trainers before
        task = await train_task(client)
        rates.append(task["learningRate"])
        weights = await client.weights_array(task["urls"]["weights"])
        answer = await client.submit_update(task, weights + 0.001)
        assert answer.status == 200 and answer.body["accepted"], answer.body
    # N = 1, 1, then 2: the rule asks 0.01 * sqrt(2) but the ramp has only begun
    assert rates[:2] == [SPEC_LR, SPEC_LR]
    assert all(SPEC_LR <= rate < SPEC_LR * 1.01 for rate in rates[2:])
    assert rates == sorted(rates)  # never down while it ramps
    # four trainers: the target is 0.01 * sqrt(4); the rate in use still near 0.01
    before = await status(group[0])
    task = await train_task(group[0])
    after = await status(group[0])
    assert before["clients"] == 4 and before["lrWarmup"]["targetRate"] == pytest.approx(0.02)
    assert WARMUP - 600 < before["lrWarmup"]["secondsLeft"] <= WARMUP
    # the task carries the rate in use, as the status shows it around the lease
    assert before["learningRate"] == before["lrWarmup"]["rateInUse"]
    assert before["lrWarmup"]["rateInUse"] <= task["learningRate"] \
        <= after["lrWarmup"]["rateInUse"] < 0.02
    # three leave: N falls to 1 and its rate (0.01) is below the rate in use: at once, exactly
    for client in group[1:]:
        assert (await client.leave()).status == 200
    task = await train_task(group[0])
    assert task["learningRate"] == SPEC_LR
    fallen = await status(group[0])
    assert fallen["lrWarmup"] == {"seconds": WARMUP, "targetRate": SPEC_LR,
                                  "rateInUse": SPEC_LR, "secondsLeft": 0.0}
    assert math.isclose(fallen["learningRate"], SPEC_LR)


def test_a_warmup_needs_a_rate_rule_and_no_negative(tmp_path: Path, digits_spec,
                                                    digits_data) -> None:
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec=digits_spec, data=digits_data, lr_warmup=20)
    assert any(p.startswith("lr_warmup:") and "lr_scaling" in p for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        ServeConfig(spec=digits_spec, data=digits_data, lr_scaling="sqrt", lr_warmup=-1)
    assert any(p.startswith("lr_warmup:") for p in info.value.problems)
    assert ServeConfig(spec=digits_spec, data=digits_data, lr_scaling="sqrt",
                       lr_warmup=20).lr_warmup == 20.0
    assert ServeConfig(spec=digits_spec, data=digits_data).lr_warmup == 0.0  # off by default
    path = tmp_path / "serve.toml"
    path.write_text('lr_scaling = "sqrt"\nlr_warmup = 20\n[[models]]\nspec = "a.json"\n')
    assert load_toml(path).models[0]["lr_warmup"] == 20.0
    path.write_text('lr_warmup = -5\n[[models]]\nspec = "a.json"\n')
    with pytest.raises(ConfigError) as info:
        load_toml(path)
    assert any(p.startswith("lr_warmup:") for p in info.value.problems)
    result = CliRunner().invoke(main, ["serve", str(SPEC), "--data", digits_data,
                                       "--lr-warmup", "20"])
    assert result.exit_code != 0 and "lr_warmup" in result.output
    result = CliRunner().invoke(main, ["serve", "--lr-warmup", "soon"])
    assert result.exit_code != 0 and "--lr-warmup" in result.output
