"""Embedding a scale-out run: ``create_app(config, cluster=ClusterSettings(...))`` mounted as a
sub-app is a front-end plus an in-process merger of a run in a real redis-server; a client
trains and evaluates through the mount prefix until the run ends on max_merges."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest
from support.protocol_client import Answer, ProtocolClient, decode_frame, encode_frame
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.cluster.settings import ClusterSettings, ClusterSettingsError
from webnn.server.app import create_app
from webnn.server.config import load_parts
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE

pytestmark = pytest.mark.slow


async def test_create_app_with_cluster_settings_serves_a_whole_run(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(max_merges=3, eval_quorum=1)
    with pytest.raises(ClusterSettingsError, match="role"):
        create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, role="merger"))
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="embedded"))
    served = await serve(app, prefix="/models/digits/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            joined = await client.join(name="embedded")
            assert "/models/digits/" in joined["model"]["urls"]["tasks"]
            rng = np.random.default_rng(0)
            status: dict = {}
            for _ in range(600):
                await client.evaluate_all()
                await client.train_once(rng)
                status = (await client.get("api/v1/status")).body
                if status["state"] == "ended":
                    break
                await asyncio.sleep(0.05)
            assert status["state"] == "ended", status
            assert status["endReason"] == "max_merges=3 reached"
            history = (await client.get("api/v1/history")).body["history"]
            assert history[0]["version"] == 0 and history[-1]["final"]
            assert all(h["validated"] for h in history)  # quorum 1: every result validates
            keys = redis_server.client().keys("wnn:embedded:*")
            assert keys  # the run lives in Redis under its name
    finally:
        await served.stop()


async def _join_as(http: aiohttp.ClientSession, url: str, volunteer: str) -> ProtocolClient:
    client = ProtocolClient(http, url)
    answer = await client.request("POST", "api/v1/join", session=False, json_body={
        "client": {"kind": "python", "name": volunteer, "volunteerId": volunteer}})
    assert answer.status == 200, answer.body
    client.token, client.client_id = answer.body["token"], answer.body["clientId"]
    return client


async def test_a_partitioned_run_keeps_each_volunteer_on_its_shard(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(partition={"kind": "shards", "shards": 4, "classes": 2})
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="parts"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            labels: dict[str, set[int]] = {}
            for volunteer in ("vol-a", "vol-b", "vol-a"):  # vol-a comes back in a new session
                client = await _join_as(http, served.url, volunteer)
                seen = labels.setdefault(volunteer, set())
                for _ in range(3):
                    task = (await client.task("train"))["task"]
                    assert task is not None
                    _, tensors = await client.batch(task)
                    seen.update(int(y) for y in np.asarray(tensors["y"]).ravel())
            parts = load_parts(config)
            y = np.asarray(parts.dataset.train_examples(np.arange(parts.dataset.num_train)).y)
            table = redis_server.client().hgetall("wnn:parts:volunteers")
            shards = {k.decode(): int(v) for k, v in table.items()}
            assert shards["vol-a"] != shards["vol-b"]
            for volunteer, seen in labels.items():  # every batch came from the volunteer's shard
                assert seen <= {int(v) for v in y[parts.shards[shards[volunteer]]]}
            status = (await client.get("api/v1/status")).body
            partition = status["partition"]
            assert partition["kind"] == "shards" and partition["shards"] == 4
            assert partition["volunteers"] == 2
            assert sorted(s["load"] for s in partition["perShard"]) == [0, 0, 1, 1]
    finally:
        await served.stop()


async def test_float16_weights_and_follow_up_frames(redis_server, make_config, serve):  # noqa: F811
    app = create_app(make_config(), cluster=ClusterSettings(redis_url=redis_server.url,
                                                            run="wire"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            answer = await client.request("POST", "api/v1/join", session=False, json_body={
                "client": {"kind": "python"}, "encodings": {"weights": ["f32", "f16"],
                                                            "update": ["f32"]}})
            assert answer.body["encodings"]["weights"] == "f16"
            client.token = answer.body["token"]
            size = answer.body["model"]["totalParams"]
            task = (await client.task("train"))["task"]
            weights = await client.weights(task["urls"]["weights"])
            assert weights.headers["X-WebNN-Encoding"] == "f16"
            digest = redis_server.client().hget(f"wnn:wire:version:{task['version']}",
                                                "digest").decode()
            assert weights.headers["ETag"] == f'"v{task["version"]}-{digest[:16]}-f16"'
            half = np.frombuffer(weights.raw, dtype="<f2")
            assert half.size == size
            plain = await http.get(served.url + "api/v1/weights/" + str(task["version"]))
            full = np.frombuffer(await plain.read(), dtype="<f4")  # no session: float32
            np.testing.assert_array_equal(half, full.astype("<f2"))

            frame = encode_frame({"baseVersion": task["version"], "steps": task["localSteps"],
                                  "loss": 1.0, "accuracy": 0.5, "next": "train"},
                                 {"weights": full + 0.001})
            sent = await client.request("POST", task["urls"]["submit"], data=frame,
                                        content_type=FRAME_TYPE,
                                        headers={"Accept": f"{FRAME_TYPE}, application/json"})
            assert sent.status == 200 and sent.headers["Content-Type"].startswith(FRAME_TYPE)
            header, tensors = decode_frame(sent.raw)
            assert header["accepted"] and header["next"]["task"]["kind"] == "train"
            assert tensors["weights"].dtype == np.float16 and tensors["weights"].size == size
            follow = header["next"]["task"]
            _, batch = await client.batch(follow)
            np.testing.assert_array_equal(tensors["x"], batch["x"])  # the follow-up's batch
            np.testing.assert_array_equal(tensors["y"], batch["y"])
            # the frame names the follow-up weights' ETag (with their digest), so fetching that
            # version again is a 304
            again = await client.weights(follow["urls"]["weights"], etag=header["weightsEtag"])
            assert again.status == 304
    finally:
        await served.stop()


async def test_the_etag_names_the_weights_not_only_the_version_number(
        redis_server, make_config, serve):  # noqa: F811
    """A new run in the same Redis numbers its versions from 0 again: a client holding the
    first run's version 0 must not get 304 for the second run's (other weights)."""
    etags, bodies = [], []
    for seed in (1, 2):
        app = create_app(make_config(seed=seed),
                         cluster=ClusterSettings(redis_url=redis_server.url, run="etag"))
        served = await serve(app)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                client = ProtocolClient(http, served.url)
                await client.join(name=f"seed-{seed}")
                first = await client.weights("api/v1/weights/0")
                assert first.status == 200 and first.headers["X-WebNN-Version"] == "0"
                again = await client.weights("api/v1/weights/0", etag=first.headers["ETag"])
                assert again.status == 304  # the same weights: not sent again
                if etags:  # the first run's ETag for its version 0 names other weights
                    stale = await client.weights("api/v1/weights/0", etag=etags[0])
                    assert stale.status == 200 and stale.raw == first.raw
                etags.append(first.headers["ETag"])
                bodies.append(first.raw)
        finally:
            await served.stop()
        redis_server.client().flushdb()  # the run is gone; the next starts anew
    assert bodies[0] != bodies[1]
    assert etags[0] != etags[1] and etags[0].startswith('"v0-')


@pytest.mark.parametrize(("settings", "reason"), [
    ({"target_accuracy": 0.4}, "target_accuracy=0.4 reached (0.5000)"),
    ({"max_seconds": 1.0}, "max_seconds=1.0 reached"),
])
async def test_target_accuracy_and_max_seconds_end_the_run(
        redis_server, make_config, serve, settings, reason):  # noqa: F811
    config = make_config(eval_quorum=1, **settings)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="ends"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="evaluator")
            status: dict = {}
            for _ in range(600):
                await client.evaluate_all()  # accuracy 0.5 for every chunk
                status = (await client.get("api/v1/status")).body
                if status["state"] == "ended":
                    break
                await asyncio.sleep(0.05)
            assert status["state"] == "ended" and status["endReason"] == reason, status
            assert status["lastValidatedEvaluation"]["valAccuracy"] == pytest.approx(0.5)
            answer = await client.task("any")
            assert answer["task"] is None and answer["state"] == "ended"
    finally:
        await served.stop()


async def test_an_evaluation_lease_that_runs_out_goes_to_another_session(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(eval_quorum=1, lease_seconds=1.0)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="lease"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            slow, other = ProtocolClient(http, served.url), ProtocolClient(http, served.url)
            await slow.join(name="slow")
            await other.join(name="other")
            taken = []
            for _ in range(300):  # every chunk of the initial evaluation goes to `slow`
                task = (await slow.task("evaluate"))["task"]
                if task is not None:
                    taken.append(task)
                elif taken:
                    break
                await asyncio.sleep(0.05)
            assert taken and (await other.task("evaluate"))["task"] is None
            again = None
            for _ in range(300):  # the leases run out: the merger gives the chunks back
                again = (await other.task("evaluate"))["task"]
                if again is not None:
                    break
                await asyncio.sleep(0.05)
            assert again is not None and again["chunk"] in {t["chunk"] for t in taken}
            late = await slow.submit_evaluation(taken[0], 1.0, 0.5, taken[0]["examples"])
            assert late.status == 409 and late.body["error"]["code"] == "lease_expired"
    finally:
        await served.stop()


async def test_a_streak_of_invalid_updates_cuts_the_session_off(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(max_invalid_updates=2, cut_off_seconds=60.0)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="cut"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="liar")
            task = (await client.task("train"))["task"]
            for _ in range(2):
                bad = await client.request("POST", task["urls"]["submit"], data=b"not a frame",
                                           content_type=FRAME_TYPE)
                assert bad.status == 400, bad.body
            cut = await client.request("POST", "api/v1/tasks", json_body={"role": "train"})
            assert cut.status == 429 and cut.body["error"]["code"] == "cut_off"
            assert int(cut.headers["Retry-After"]) > 50
            status = (await client.get("api/v1/status")).body
            assert sum(status["rejected"].values()) == 2
    finally:
        await served.stop()


async def test_the_join_rate_limit_holds_for_the_run(redis_server, make_config, serve):  # noqa: F811
    config = make_config(joins_per_minute=1.0, join_burst=2, trusted_proxies=("127.0.0.1",))
    settings = ClusterSettings(redis_url=redis_server.url, run="joins", role="frontend")
    first = await serve(create_app(config, cluster=ClusterSettings(
        redis_url=redis_server.url, run="joins")))
    second = await serve(create_app(config, cluster=settings))  # a front-end only
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await ProtocolClient(http, first.url).join(name="one")
            await ProtocolClient(http, second.url).join(name="two")
            third = await ProtocolClient(http, first.url).request(
                "POST", "api/v1/join", session=False, json_body={"client": {"kind": "python"}})
            assert third.status == 429 and third.body["error"]["code"] == "rate_limited"
            assert "127.0.0.1" in third.body["error"]["message"]

            async def join_as(url: str, address: str) -> Answer:
                return await ProtocolClient(http, url).request(
                    "POST", "api/v1/join", session=False, headers={"X-Forwarded-For": address},
                    json_body={"client": {"kind": "python"}})

            # one IPv6 /64 is one client for the limit, whichever front-end it joins through
            assert (await join_as(first.url, "2001:db8:5::1")).status == 200
            assert (await join_as(second.url, "2001:db8:5::2")).status == 200
            fourth = await join_as(first.url, "2001:db8:5::ffff")
            assert fourth.status == 429 and "2001:db8:5::/64" in fourth.body["error"]["message"]
    finally:
        await second.stop()
        await first.stop()


async def test_a_disagreement_asks_one_more_session_and_counts_the_outlier(
        redis_server, make_config, serve):  # noqa: F811
    config = make_config(eval_quorum=2)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="quorum"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            honest, liar, third = (ProtocolClient(http, served.url) for _ in range(3))
            for client, name in ((honest, "honest"), (liar, "liar"), (third, "third")):
                await client.join(name=name)
            for _ in range(300):  # the initial evaluation has started
                if (await honest.get("api/v1/status")).body["evaluating"]:
                    break
                await asyncio.sleep(0.05)
            assert await honest.evaluate_all(lambda task, tensors: 0.5) > 0
            assert await liar.evaluate_all(lambda task, tensors: 0.9) > 0
            chunks = 0
            for _ in range(300):  # each chunk now wants a third result
                chunks += await third.evaluate_all(lambda task, tensors: 0.5)
                history = (await third.get("api/v1/history")).body["history"]
                if history:
                    break
                await asyncio.sleep(0.05)
            assert history and history[0]["validated"], history
            assert history[0]["valAccuracy"] == pytest.approx(0.5)
            # the merger counts the outlier just after it writes the history entry
            for _ in range(300):
                status = (await third.get("api/v1/status")).body
                if "evaluation_disagrees" in status["rejected"]:
                    break
                await asyncio.sleep(0.05)
            assert status["rejected"]["evaluation_disagrees"] == chunks
    finally:
        await served.stop()


async def test_an_idle_anonymous_session_leaves_its_shard(redis_server, make_config, serve):  # noqa: F811
    config = make_config(partition={"kind": "dirichlet", "shards": 2}, session_timeout=1.0)
    app = create_app(config, cluster=ClusterSettings(redis_url=redis_server.url, run="idle"))
    served = await serve(app)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = ProtocolClient(http, served.url)
            await client.join(name="anonymous")
            assert (await client.task("train"))["task"] is not None

            async def loads() -> list[int]:
                answer = await http.get(served.url + "api/v1/status")
                status = await answer.json()
                return [s["load"] for s in status["partition"]["perShard"]]

            assert sorted(await loads()) == [0, 1]
            for _ in range(300):  # the session times out: its shard counts it no more
                if await loads() == [0, 0]:
                    break
                await asyncio.sleep(0.05)
            assert await loads() == [0, 0]
    finally:
        await served.stop()
