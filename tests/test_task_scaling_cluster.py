"""Task scaling in a scale-out run (webnn/cluster/task_rate.py) with a real redis-server: the
train tasks' learningRate follows the run's live training clients (sessions with an accepted
update: a lease alone counts no one), a leave counts at once, a failed count keeps the last rate,
and a local-steps rule is refused naming its setting."""

from __future__ import annotations

import math

import aiohttp
import pytest
from support.protocol_client import ProtocolClient
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.cluster.frontend import FRONTEND
from webnn.cluster.settings import ClusterSettings
from webnn.server.app import create_app
from webnn.settings import ConfigError

pytestmark = pytest.mark.slow
SPEC_LR = 0.01  # model_specs/digits_mlp.json


async def test_the_run_learning_rate_follows_its_live_trainers(
        redis_server, make_config, serve):  # noqa: F811
    with pytest.raises(ConfigError, match="local_steps_exponent"):
        create_app(make_config(local_steps_exponent=0.5),
                   cluster=ClusterSettings(redis_url=redis_server.url, run="refused"))
    config = make_config(lr_scaling="sqrt", evaluate_initial=False)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="scaled"))
    served = await serve(app)
    check = redis_server.client()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            group = [ProtocolClient(http, served.url) for _ in range(4)]
            quiet = [ProtocolClient(http, served.url) for _ in range(8)]
            tasks = []
            for client in group + quiet:  # a lease alone counts no one
                await client.join()
                task = (await client.task("train"))["task"]
                assert task is not None and task["localSteps"] == 5
                assert task["learningRate"] == SPEC_LR
                tasks.append(task)
            assert check.zcard("wnn:scaled:trainers") == 0
            base = await group[0].weights_array(tasks[0]["urls"]["weights"])
            for client, task in zip(group, tasks, strict=False):  # accepted updates count
                sent = await client.submit_update(task, base + 0.01)
                assert sent.status == 200 and sent.body["durable"], sent.body
            assert check.zcard("wnn:scaled:trainers") == 4
            # the times are Redis's own (TIME), whichever front-end's clock
            seconds, micros = check.time()
            score = check.zscore("wnn:scaled:trainers", group[0].token)
            assert 0 <= seconds + micros / 1e6 - score < 30
            task = (await group[0].task("train"))["task"]  # 4 live trainers: sqrt(4) = 2
            assert task["learningRate"] == pytest.approx(2 * SPEC_LR)
            assert check.zcard("wnn:scaled:trainers") == 4  # the quiet ones still not counted
            for client in group[2:]:
                assert (await client.leave()).status == 200
            assert check.zcard("wnn:scaled:trainers") == 2
            # an update of a session that left, accepted while it left, does not add it again
            frontend = app[FRONTEND]
            await frontend.task_rate.accepted(frontend.redis, group[2].token,
                                              frontend.keys.session(group[2].token))
            assert check.zcard("wnn:scaled:trainers") == 2
            task = (await group[0].task("train"))["task"]
            assert task["learningRate"] == pytest.approx(SPEC_LR * math.sqrt(2))
            # the count cannot be read (here: the key holds another type): the lease is
            # answered at the last known rate, not with an error
            check.delete("wnn:scaled:trainers")
            check.set("wnn:scaled:trainers", "not a sorted set")
            task = (await group[1].task("train"))["task"]
            assert task is not None
            assert task["learningRate"] == pytest.approx(SPEC_LR * math.sqrt(2))
    finally:
        await served.stop()


async def test_the_default_rule_keeps_the_spec_rate_and_leaves_redis_alone(
        redis_server, make_config, serve):  # noqa: F811
    app = create_app(make_config(evaluate_initial=False),
                     cluster=ClusterSettings(redis_url=redis_server.url, run="plain"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for _ in range(3):
                client = ProtocolClient(http, served.url)
                await client.join()
                task = (await client.task("train"))["task"]
                assert task["learningRate"] == SPEC_LR and task["localSteps"] == 5
            assert not redis_server.client().exists("wnn:plain:trainers")
    finally:
        await served.stop()
