"""bench/scaling_sim.py's benchmark model and timing: the embedding MLP's gradient against finite
differences and its size against the spec's weights (bench/specs/text_mlp.json), and the
evaluator model (a validation is seen when it ends, on the version it started with)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("bench_scaling_sim_model",
                                                  ROOT / "bench" / "scaling_sim.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scaling_sim_model"] = module
    spec.loader.exec_module(module)
    return module


def _loss(model, flat: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    _, h = model._inputs(flat, x)
    k1, b1, k2, b2 = model.dense.unflat(model._split(flat)[1])
    z = np.maximum(h @ k1 + b1, 0) @ k2 + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def test_the_embedding_gradient_is_the_loss_derivative(sim) -> None:
    model = sim.EmbedMlp(seq_len=3, vocab=5, dim=2, hidden=(4,))
    rng = np.random.default_rng(0)
    flat = model.init(rng).astype(np.float64)
    x = rng.integers(0, 5, (6, 3)) + np.arange(3) * 5  # one-hot columns: vocab j + c
    y = rng.integers(0, 5, 6)
    grad = model.grad(flat.astype(np.float32), x, y)
    step = 1e-5
    numeric = np.array([(_loss(model, flat + d, x, y) - _loss(model, flat - d, x, y)) / (2 * step)
                        for d in np.eye(len(flat)) * step])
    assert np.abs(grad - numeric).max() < 1e-6
    assert np.abs(grad[:10]).max() > 0  # the embedding rows seen get a gradient


def test_the_embedding_model_has_the_benchmark_spec_weights(sim) -> None:
    from webnn.spec import load_spec

    raw = json.loads((ROOT / "bench" / "specs" / "text_mlp.json").read_text())
    raw.pop("$schema", None)
    spec = load_spec(raw)
    model = sim.EmbedMlp(hidden=(256,))
    flat = model.init(np.random.default_rng(1))
    assert flat.size == spec.compiled.initial_weights(1).size == 50537
    assert np.abs(flat[:97 * 8]).max() <= 0.05  # TF.js's embedding initialiser, U(-0.05, 0.05)


def test_validations_are_seen_when_the_evaluator_ends(sim) -> None:
    """Clients of equal speed, a task of 1 s (no jitter), a validation of 2.5 s: the evaluator
    sees version 0 at 2.5 s, then the version of 2 s at 5 s, and so on; with no evaluator time
    every merge is seen at once."""
    data = sim.Data(np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]),
                    np.zeros((2, 3), np.float32), np.array([0, 1]))
    mlp = sim.Mlp((3, 4, 2))
    cfg = sim.Config.parse("average|sgd lr=0.1 steps=1 batch=2")
    run = sim.simulate(cfg, 1, 1, data, mlp, 2.0, 100,
                       timing=sim.Timing(task_seconds=1.0, jitter=0.0, eval_seconds=2.5,
                                         until=9.0))
    times = [t for t, _, _ in run["history"]]
    assert times == [2.5, 5.0, 7.5]
    assert [ups for _, ups, _ in run["history"]] == [0, 2, 4]  # the merges done when it started
    instant = sim.simulate(cfg, 1, 1, data, mlp, 2.0, 100,
                           timing=sim.Timing(task_seconds=1.0, jitter=0.0, until=4.5))
    assert [ups for _, ups, _ in instant["history"]] == [0, 1, 2, 3, 4]


def test_per_example_gradient_norms_are_those_of_single_example_gradients(sim) -> None:
    model = sim.EmbedMlp(seq_len=4, vocab=3, dim=2, hidden=(5,))
    rng = np.random.default_rng(2)
    flat = model.init(rng)
    x = rng.integers(0, 3, (7, 4)) + np.arange(4) * 3  # repeated characters within a window
    y = rng.integers(0, 3, 7)
    single = [float((model.grad(flat, x[i:i + 1], y[i:i + 1]).astype(np.float64) ** 2).sum())
              for i in range(7)]
    np.testing.assert_allclose(model.example_sq_norms(flat, x, y), single, rtol=1e-4)
