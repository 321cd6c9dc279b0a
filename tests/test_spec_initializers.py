"""Initial weights: TF.js initialiser semantics and defaults per layer, checked statistically, and
bit-identical reproducibility for a seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from webnn.spec import load_spec
from webnn.spec.initializers import Initializer, UnitForgetBias, compute_fans

TRUNCATED_STD = 0.8796256610342398
"""Standard deviation of a standard normal truncated at +-2."""


def sample(kind: str | dict, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return Initializer.from_spec(kind).sample(shape, np.random.default_rng(seed))


def model(*layers: dict, input_shape: list[int] | None = None):
    return load_spec({"inputShape": input_shape or [20], "layers": list(layers),
                      "loss": "meanSquaredError"}).compiled


def test_fans_follow_tfjs() -> None:
    assert compute_fans((30, 40)) == (30, 40)
    assert compute_fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)  # receptive field x channels
    assert compute_fans((5, 4, 6)) == (5 * 4, 5 * 6)
    assert compute_fans((64,)) == (8.0, 8.0)


def test_glorot_uniform_limits() -> None:
    values = sample("glorotUniform", (200, 300))
    limit = math.sqrt(6 / (200 + 300))
    assert values.dtype == np.float32
    assert np.abs(values).max() <= limit
    assert np.abs(values).max() > 0.99 * limit
    assert values.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)
    assert abs(values.mean()) < 0.01 * limit


def test_he_normal_std_on_a_conv_kernel() -> None:
    values = sample("heNormal", (3, 3, 16, 32))
    sigma = math.sqrt(2 / (3 * 3 * 16))  # fan_in = receptive field x input channels
    assert np.abs(values).max() <= 2 * sigma * (1 + 1e-6)  # truncated at two standard deviations
    assert values.std() == pytest.approx(TRUNCATED_STD * sigma, rel=0.03)


@pytest.mark.parametrize(("kind", "scale_of"), [
    ("glorotNormal", lambda fi, fo: 2 / (fi + fo)),
    ("leCunNormal", lambda fi, fo: 1 / fi),
    ("lecunNormal", lambda fi, fo: 1 / fi),
    ({"type": "varianceScaling", "scale": 3, "mode": "fanOut"}, lambda fi, fo: 3 / fo),
    ({"type": "varianceScaling", "scale": 2, "mode": "fanAvg"}, lambda fi, fo: 4 / (fi + fo)),
])
def test_normal_variance_scaling(kind, scale_of) -> None:
    values = sample(kind, (150, 250))
    assert values.std() == pytest.approx(TRUNCATED_STD * math.sqrt(scale_of(150, 250)), rel=0.03)


@pytest.mark.parametrize(("kind", "var"), [
    ("heUniform", 2 / 150), ("leCunUniform", 1 / 150),
    ({"type": "varianceScaling", "scale": 0.5, "mode": "fanOut", "distribution": "uniform"},
     0.5 / 250),
])
def test_uniform_variance_scaling(kind, var) -> None:
    values = sample(kind, (150, 250))
    limit = math.sqrt(3 * var)
    assert np.abs(values).max() <= limit
    assert values.std() == pytest.approx(math.sqrt(var), rel=0.02)


@pytest.mark.parametrize("shape", [(40, 40), (16, 64), (64, 16), (3, 3, 4, 8)])
def test_orthogonal(shape: tuple[int, ...]) -> None:
    values = sample({"type": "orthogonal", "gain": 2.0}, shape).astype(np.float64)
    matrix = values.reshape(-1, shape[-1]) / 2.0
    rows, cols = matrix.shape
    product = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
    np.testing.assert_allclose(product, np.eye(min(rows, cols)), atol=1e-5)


def test_simple_initializers() -> None:
    assert not sample("zeros", (3, 4)).any()
    np.testing.assert_array_equal(sample("ones", (5,)), np.ones(5, np.float32))
    np.testing.assert_array_equal(sample({"type": "constant", "value": 0.25}, (2, 2)),
                                  np.full((2, 2), 0.25, np.float32))
    np.testing.assert_array_equal(sample({"type": "identity", "gain": 3}, (4, 4)),
                                  3 * np.eye(4, dtype=np.float32))


def test_random_initializers() -> None:
    uniform = sample({"type": "randomUniform", "minval": 1, "maxval": 3}, (100_000,))
    assert uniform.min() >= 1 and uniform.max() <= 3
    assert uniform.mean() == pytest.approx(2, abs=0.01)
    default = sample("randomUniform", (10_000,))
    assert np.abs(default).max() <= 0.05
    normal = sample({"type": "randomNormal", "mean": 1, "stddev": 0.5}, (100_000,))
    assert normal.mean() == pytest.approx(1, abs=0.01)
    assert normal.std() == pytest.approx(0.5, rel=0.02)
    assert np.abs(normal - 1).max() > 1.0  # not truncated
    truncated = sample({"type": "truncatedNormal", "mean": 1, "stddev": 0.5}, (100_000,))
    assert np.abs(truncated - 1).max() <= 1.0 + 1e-6
    assert truncated.std() == pytest.approx(TRUNCATED_STD * 0.5, rel=0.02)


def test_unit_forget_bias() -> None:
    sampler = UnitForgetBias(Initializer.from_spec("zeros"), 5)
    values = sampler.sample((20,), np.random.default_rng())
    np.testing.assert_array_equal(values, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])


def test_layer_defaults() -> None:
    """Dense/conv kernels glorotUniform, biases zeros, embeddings U(-0.05, 0.05), recurrent kernels
    orthogonal, LSTM forget-gate bias ones, batch-norm gamma/beta/moving statistics 1/0/0/1."""
    compiled = model({"type": "embedding", "inputDim": 500, "outputDim": 30},
                     {"type": "lstm", "units": 16, "returnSequences": True},
                     {"type": "gru", "units": 8},
                     {"type": "batchNormalization"},
                     {"type": "dense", "units": 300})
    w = compiled.layout.views(compiled.initial_weights(0))
    assert np.abs(w["embedding_1/embeddings"]).max() <= 0.05
    assert w["embedding_1/embeddings"].std() == pytest.approx(0.1 / math.sqrt(12), rel=0.05)
    recurrent = w["lstm_1/recurrent_kernel"].astype(np.float64)  # (16, 64): orthonormal rows
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(16), atol=1e-5)
    np.testing.assert_array_equal(w["lstm_1/bias"], np.r_[np.zeros(16), np.ones(16),
                                                          np.zeros(32)])
    assert not w["gru_1/bias"].any()
    limit = math.sqrt(6 / (8 + 300))
    assert np.abs(w["dense_1/kernel"]).max() <= limit
    assert w["dense_1/kernel"].std() == pytest.approx(limit / math.sqrt(3), rel=0.05)
    assert not w["dense_1/bias"].any()
    np.testing.assert_array_equal(w["batch_normalization_1/gamma"], np.ones(8))
    np.testing.assert_array_equal(w["batch_normalization_1/beta"], np.zeros(8))
    np.testing.assert_array_equal(w["batch_normalization_1/moving_mean"], np.zeros(8))
    np.testing.assert_array_equal(w["batch_normalization_1/moving_variance"], np.ones(8))


def test_conv_kernel_default_uses_receptive_field() -> None:
    compiled = model({"type": "conv2d", "filters": 32, "kernelSize": 5}, input_shape=[12, 12, 6])
    kernel = compiled.layout.views(compiled.initial_weights(1))["conv2d_1/kernel"]
    limit = math.sqrt(6 / (25 * 6 + 25 * 32))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.98 * limit


def test_same_seed_gives_bit_identical_buffer() -> None:
    compiled = load_spec({"inputShape": [10], "layers": [
        {"type": "dense", "units": 32, "kernelInitializer": "heNormal"},
        {"type": "reshape", "targetShape": [4, 8]},
        {"type": "lstm", "units": 8}], "loss": "meanSquaredError"}).compiled
    first, second = compiled.initial_weights(42), compiled.initial_weights(42)
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != compiled.initial_weights(43).tobytes()
    again = load_spec({"inputShape": [10], "layers": [
        {"type": "dense", "units": 32, "kernelInitializer": "heNormal"},
        {"type": "reshape", "targetShape": [4, 8]},
        {"type": "lstm", "units": 8}], "loss": "meanSquaredError"}).compiled
    assert again.initial_weights(42).tobytes() == first.tobytes()


def test_adding_a_layer_keeps_earlier_weights() -> None:
    small = model({"type": "dense", "units": 8})
    large = model({"type": "dense", "units": 8}, {"type": "dense", "units": 3})
    a = small.layout.views(small.initial_weights(5))
    b = large.layout.views(large.initial_weights(5))
    np.testing.assert_array_equal(a["dense_1/kernel"], b["dense_1/kernel"])


def test_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        model({"type": "dense", "units": 2}).initial_weights(-1)
