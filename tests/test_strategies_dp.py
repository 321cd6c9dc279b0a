"""Central differential privacy (strategy ``dp``) against worked examples: clipping, the noise
split of adaptive clipping, the geometric clip update, the noise scale, the accountant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.strategies import checkpoint

from webnn.merge import ModelState, ParamError, Update, create_strategy
from webnn.merge.dp import (
    delta_noise_multiplier,
    geometric_clip_update,
    privacy_spent,
)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def update(delta: np.ndarray, base: np.ndarray, client: str = "c-1") -> Update:
    return Update(weights=(base + delta).astype(np.float32), base_version=0, base_steps=0,
                  local_steps=5, staleness=0, client=client, base_weights=base.copy())


def test_delta_noise_multiplier_splits_the_budget() -> None:
    # (1 - (2 * 5)^-2)^-1/2 = 0.99^-1/2
    assert delta_noise_multiplier(1.0, 5.0) == pytest.approx(0.99 ** -0.5)
    with pytest.raises(ValueError, match="must be below 2 \\* count_noise"):
        delta_noise_multiplier(1.0, 0.5)


def test_geometric_clip_update() -> None:
    # every update fit under C (b = 1) with gamma 0.5: C shrinks by exp(-0.2 * 0.5)
    assert geometric_clip_update(1.0, 1.0, 0.5, 0.2) == pytest.approx(math.exp(-0.1))
    assert geometric_clip_update(1.0, 0.0, 0.5, 0.2) == pytest.approx(math.exp(0.1))
    assert geometric_clip_update(2.0, 0.5, 0.5, 0.2) == 2.0


def test_clipped_deltas_move_the_model_by_their_mean() -> None:
    strategy = create_strategy("dp", {"k": 2, "clip_norm": 1.0, "adaptive": False,
                                      "noise_multiplier": 1e-9, "noise_seed": 0})
    base = np.zeros(2, dtype=np.float32)
    model = ModelState(weights=base.copy())
    assert not strategy.merge(model, update(f32(3, 4), base))  # norm 5 -> (0.6, 0.8)
    assert np.array_equal(model.weights, base)
    assert strategy.merge(model, update(f32(0.3, 0), base))  # fits under C
    np.testing.assert_allclose(model.weights, f32(0.45, 0.4), atol=1e-6)
    assert strategy.report()["noisySteps"] == 1


def test_noise_has_the_promised_scale() -> None:
    # zero deltas, K = 1: the model moves by N(0, (z C)^2) per coordinate, z C = 2 * 0.5 = 1
    strategy = create_strategy("dp", {"k": 1, "clip_norm": 0.5, "adaptive": False,
                                      "noise_multiplier": 2.0, "noise_seed": 7})
    base = np.zeros(200_000, dtype=np.float32)
    model = ModelState(weights=base.copy())
    strategy.merge(model, update(np.zeros_like(base), base))
    assert abs(float(model.weights.mean())) < 0.01
    assert float(model.weights.std()) == pytest.approx(1.0, abs=0.01)


def test_adaptive_clipping_follows_the_seeded_draws() -> None:
    k, z, clip = 2, 0.5, 1.0
    strategy = create_strategy("dp", {"k": k, "clip_norm": clip, "noise_multiplier": z,
                                      "noise_seed": 11, "target_quantile": 0.5, "clip_lr": 0.2})
    base = np.zeros(3, dtype=np.float32)
    model = ModelState(weights=base.copy())
    deltas = [f32(0.1, 0, 0), f32(0, 6, 8)]  # norms 0.1 (fits) and 10 (clipped to 1)
    for i, d in enumerate(deltas):
        strategy.merge(model, update(d, base, client=f"c-{i}"))
    # the same draws in the same order: delta noise, then the count noise
    rng = np.random.default_rng(11)
    sigma_b = max(k / 20, z)  # the default: K / 20 is 0.1, too little for z = 0.5
    z_delta = (z ** -2 - (2 * sigma_b) ** -2) ** -0.5
    noise = rng.standard_normal(3, dtype=np.float32) * np.float32(z_delta * clip)
    expected = (f32(0.1, 0, 0) + f32(0, 0.6, 0.8) + noise) / 2
    np.testing.assert_allclose(model.weights, expected, rtol=1e-5, atol=1e-6)
    fraction = (1 + rng.normal(0.0, sigma_b)) / k
    assert strategy.clip == pytest.approx(math.exp(-0.2 * (fraction - 0.5)))


def test_privacy_spent_is_within_the_classic_rdp_bound() -> None:
    # RDP of the Gaussian mechanism: alpha / (2 z^2) per step; T steps, then the classic
    # conversion eps = min_alpha T alpha / (2 z^2) + log(1/delta) / (alpha - 1): for z = 10,
    # T = 100, delta = 1e-5 that is 5.30 at alpha = 1 + sqrt(2 log(1e5)). The accountant's
    # conversion is tighter, never looser.
    alphas = np.linspace(1.01, 200, 200_000)
    classic = float(np.min(100 * alphas / 200 + math.log(1e5) / (alphas - 1)))
    assert classic == pytest.approx(5.30, abs=0.01)
    epsilon = privacy_spent(10.0, 100, 1e-5)
    assert 0.8 * classic < epsilon <= classic
    assert privacy_spent(10.0, 0, 1e-5) == 0.0
    assert privacy_spent(10.0, 400, 1e-5) > epsilon  # composition only adds


def test_state_round_trip_resumes_the_buffer_and_the_clip() -> None:
    params = {"k": 3, "clip_norm": 1.0, "noise_multiplier": 0.5, "noise_seed": 3}
    first = create_strategy("dp", params)
    base = np.zeros(2, dtype=np.float32)
    model = ModelState(weights=base.copy())
    for i in range(4):  # one flush, one update buffered
        first.merge(model, update(f32(0.5, 0.5 * i), base, client=f"c-{i}"))
    second = create_strategy("dp", params)
    second.load_state(checkpoint(first.state()))
    assert second.clip == first.clip and second.flushes == 1 and second.count == 1
    np.testing.assert_array_equal(second._sum, first._sum)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ParamError, match="noise_multiplier"):
        create_strategy("dp", {"k": 10, "noise_multiplier": 2.0, "count_noise": 0.5})
    with pytest.raises(ParamError, match="clip_norm must be > 0"):
        create_strategy("dp", {"clip_norm": 0})


async def test_status_reports_the_privacy_spent(make_config, serve, http) -> None:
    """Served over HTTP, `dp` reports epsilon in status: 0 before its first noisy step, then the
    accountant's figure for one Gaussian mechanism of the configured multiplier."""
    from support.protocol_client import ProtocolClient

    from webnn.server.app import create_app

    params = {"k": 2, "noise_multiplier": 0.8, "clip_norm": 1.0, "noise_seed": 1}
    running = await serve(create_app(make_config(strategy="dp", strategy_params=params)))
    client = ProtocolClient(http, running.url)
    await client.join()
    report = (await client.get("api/v1/status")).body["strategy"]["report"]
    assert report["epsilon"] == 0.0 and report["noisySteps"] == 0 and report["clipNorm"] == 1.0
    rng = np.random.default_rng(0)
    for _ in range(2):
        answer = await client.train_once(rng, scale=0.001)
        assert answer is not None and answer.status == 200, answer.body
    report = (await client.get("api/v1/status")).body["strategy"]["report"]
    assert report["noisySteps"] == 1
    assert report["epsilon"] == pytest.approx(privacy_spent(0.8, 1, 1e-5))
    assert report["clipNorm"] != 1.0  # adapted after the step
