"""Embedding a scale-out run: ``create_app(config, cluster=ClusterSettings(...))`` mounted as a
sub-app is a front-end plus an in-process merger of a run in a real redis-server; a client
trains and evaluates through the mount prefix until the run ends on max_merges."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest
from support.protocol_client import ProtocolClient
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.cluster.settings import ClusterSettings, ClusterSettingsError
from webnn.server.app import create_app

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
