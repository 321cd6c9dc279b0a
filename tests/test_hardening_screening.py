"""Screening is on by default: after its warm-up, a huge finite update is clipped to the adaptive
norm bound (10 x the median of the recent delta norms), so the model stays finite and close to
where it was, and honest updates keep merging. ``off`` turns it off. Real server, real HTTP."""

from __future__ import annotations

import numpy as np
import pytest
from support.protocol_client import ProtocolClient

from webnn.merge.screening import DEFAULT_SCREENING
from webnn.server.app import create_app
from webnn.server.config import ServeConfig, _load_screening
from webnn.server.keys import COORDINATOR
from webnn.server.toml_config import parse_settings

WARM_UP = DEFAULT_SCREENING["adaptive_min_history"]


async def test_a_huge_finite_update_is_clipped_and_the_model_stays_close(make_config, serve,
                                                                        http):
    served = await serve(create_app(make_config(evaluate_initial=False)))
    assert served.app[COORDINATOR].screen is not None  # on by default
    client = ProtocolClient(http, served.url)
    await client.join()
    rng = np.random.default_rng(0)
    for _ in range(WARM_UP + 2):
        answer = await client.train_once(rng)
        assert answer is not None and answer.status == 200 and not answer.body["clipped"]
    before = await client.weights_array()
    task = (await client.task("train"))["task"]
    base = await client.weights_array(task["urls"]["weights"])
    huge = np.full_like(base, 1e30)
    answer = await client.submit_update(task, huge)
    assert answer.status == 200 and answer.body["clipped"] is True, answer.body
    after = await client.weights_array()
    assert np.isfinite(after).all()
    # honest steps have norm ~0.01 * sqrt(n); the bound is 10 x their median
    honest = 0.01 * np.sqrt(base.size)
    assert np.linalg.norm(after.astype(np.float64) - before) <= 10 * honest * 1.5
    for _ in range(3):  # honest updates keep merging, unclipped
        answer = await client.train_once(rng)
        assert answer is not None and answer.status == 200 and not answer.body["clipped"]
    assert np.isfinite(await client.weights_array()).all()


async def test_screening_off(make_config, serve, http):
    served = await serve(create_app(make_config(screening="off", evaluate_initial=False)))
    assert served.app[COORDINATOR].screen is None


def test_screening_settings_lay_over_the_defaults(tmp_path):
    assert _load_screening(None).adaptive_factor == DEFAULT_SCREENING["adaptive_factor"]
    assert _load_screening(None).action == "clip"
    refusing = _load_screening({"action": "refuse", "norm_bound": 5.0})
    assert refusing.action == "refuse" and refusing.norm_bound == 5.0
    assert refusing.adaptive_quantile == DEFAULT_SCREENING["adaptive_quantile"]
    assert not _load_screening({"adaptive_quantile": None}).checks_norm
    assert _load_screening("off") is None and _load_screening(False) is None
    assert parse_settings({"screening": "off"}, tmp_path).models[0]["screening"] == "off"
    with pytest.raises(Exception, match='a table or "off"'):
        parse_settings({"screening": "on"}, tmp_path)
    assert ServeConfig(spec={}, data="x", screening="off").screening == "off"
