"""The teacher workload in the scaling benchmark and its simulator: bench/scaling.py's
``teacher`` workload serves bench/specs/teacher_mlp.json with data_modules/teacher.py; the
simulator's dense MLP (`Mlp`) has the spec's weights, its per-example gradient norms (the noise
scale's) are those of single-example gradients, its loss is the cross-entropy whose gradient it
computes; ``--data teacher`` with ``--data-option`` runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent



@pytest.fixture(scope="module")
def sim(load_script):
    return load_script("bench_scaling_sim_teacher", ROOT / "bench" / "scaling_sim.py")


@pytest.fixture(scope="module")
def scaling(load_script):
    return load_script("bench_scaling_teacher", ROOT / "bench" / "scaling.py")


def test_the_dense_model_has_the_spec_weights(sim) -> None:
    from webnn.spec import load_spec

    spec = load_spec(str(ROOT / "bench" / "specs" / "teacher_mlp.json"))
    model = sim.Mlp((64, 256, 256, 10))
    assert model.init(np.random.default_rng(0)).size == spec.compiled.layout.size == 85002


def test_dense_per_example_norms_and_loss(sim) -> None:
    model = sim.Mlp((4, 6, 5, 3))
    rng = np.random.default_rng(3)
    flat = model.init(rng)
    x = rng.standard_normal((7, 4)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    single = [float((model.grad(flat, x[i:i + 1], y[i:i + 1]).astype(np.float64) ** 2).sum())
              for i in range(7)]
    np.testing.assert_allclose(model.example_sq_norms(flat, x, y), single, rtol=1e-4)
    wide = flat.astype(np.float64)
    grad = model.grad(flat, x, y)
    step = 1e-4
    for k in rng.choice(len(flat), 12, replace=False):
        d = np.zeros_like(wide)
        d[k] = step
        numeric = (model.loss(wide + d, x, y) - model.loss(wide - d, x, y)) / (2 * step)
        assert abs(numeric - grad[k]) < 1e-4


def test_data_options_parse_to_numbers(sim) -> None:
    assert sim.parse_options(["label_noise=0.3", "inputs=8", "validation_labels=noisy"]) == {
        "label_noise": 0.3, "inputs": 8, "validation_labels": "noisy"}
    with pytest.raises(ValueError, match="'label_noise' is not key=value"):
        sim.parse_options(["label_noise"])


def test_the_simulator_runs_the_teacher_workload(sim, capsys) -> None:
    options = ["--data-option", "train_examples=4096", "--data-option", "validation_examples=512",
               "--data-option", "inputs=8", "--data-option", "teacher_hidden=4"]
    assert sim.main(["--data", "teacher", *options, "--hidden", "16", "--clients", "1", "2",
                     "--seeds", "1", "--target", "0.5", "--max-updates", "200",
                     "--config", "average|adam lr=0.01 batch=32 steps=2"]) == 0
    out = capsys.readouterr().out
    assert "n= 1" in out and "n= 2" in out
    data = sim.load_teacher_data(train_examples=4096, validation_examples=512, inputs=8)
    assert data.x.shape == (4096, 8) and data.inputs == 8 and data.xv.shape == (512, 8)
    with pytest.raises(SystemExit):
        sim.main(["--data", "text", "--data-option", "inputs=8", "--config", "average"])


def test_the_benchmark_workload_serves_the_teacher_task(scaling) -> None:
    from webnn.data import check_dataset, load_data_module

    table = scaling.workloads({"corpus": "shakespeare"})
    work = table["teacher"]
    assert work.data.endswith("data_modules/teacher.py")
    assert work.data_options == scaling.TEACHER_OPTIONS
    assert 0.1 < work.target < 1.0
    one = scaling._spec_with(work.spec, work.setting(1))
    many = scaling._spec_with(work.spec, work.setting(8))
    assert one.training.batch_size == work.setting(1).batch_size
    assert many.training.local_steps == work.setting(8).local_steps
    dataset = load_data_module(work.data, {**work.data_options, "train_examples": "2048"})
    assert check_dataset(dataset, one) == []
