"""Starting runs from given weights: bench/scaling_sim.py ``--init-weights`` (the simulated run
starts from the file's weights, fresh optimisers) and bench/scaling.py ``--init-weights`` (the
spec's initial weights, which the server starts the run from, become the file's), with clear
errors for a file of the wrong size or content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent



@pytest.fixture(scope="module")
def sim(load_script):
    return load_script("bench_scaling_sim_init", ROOT / "bench" / "scaling_sim.py")


@pytest.fixture(scope="module")
def scaling(load_script):
    return load_script("bench_scaling_init", ROOT / "bench" / "scaling.py")


def _tiny_data(sim):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return sim.Data(x, y, x[:64], y[:64])


def test_a_simulated_run_starts_from_the_given_weights(sim) -> None:
    data = _tiny_data(sim)
    mlp = sim.Mlp((6, 8, 2))
    cfg = sim.Config.parse("average|adam lr=0.05 batch=16 steps=2")
    start = np.zeros(sum(int(np.prod(s)) for s in mlp.shapes), np.float32)
    seen: list[np.ndarray] = []
    sim.simulate(cfg, 1, 3, data, mlp, 2.0, 1,
                 on_merge=lambda t, u, w: seen.append(w.copy()), init_weights=start)
    fresh: list[np.ndarray] = []
    sim.simulate(cfg, 1, 3, data, mlp, 2.0, 1, on_merge=lambda t, u, w: fresh.append(w.copy()))
    # the same seed's first task from zeros differs from the one from the seeded initialisation,
    # and the given array is not changed by the run
    assert not np.allclose(seen[0], fresh[0])
    assert not start.any()
    weights: list[np.ndarray] = []
    sim.simulate(cfg, 1, 3, data, mlp, 2.0, 40, on_merge=lambda t, u, w: weights.append(w.copy()))
    again = sim.simulate(cfg, 1, 4, data, mlp, 2.0, 2, init_weights=weights[-1])
    assert again["history"][0] == [0.0, 0, round(mlp.accuracy(weights[-1], data.xv, data.yv), 5)]


def test_simulated_init_weights_of_another_size_are_refused(sim) -> None:
    data = _tiny_data(sim)
    mlp = sim.Mlp((6, 8, 2))
    with pytest.raises(ValueError, match="init weights: 3 values, the model has 74"):
        sim.simulate(sim.Config.parse("average|adam"), 1, 1, data, mlp, 2.0, 1,
                     init_weights=np.zeros(3, np.float32))


def test_the_simulator_reads_a_saved_checkpoint_and_names_a_bad_one(sim, tmp_path) -> None:
    good = tmp_path / "w.npy"
    np.save(good, np.arange(5, dtype=np.float32))
    assert sim.load_weights(str(good), 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(SystemExit, match=r"w.npy: float32 array of shape \(5,\), the model "
                                         r"needs 7 float weights"):
        sim.load_weights(str(good), 7)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([1.0, np.nan], np.float32))
    with pytest.raises(SystemExit, match="bad.npy: holds non-finite values"):
        sim.load_weights(str(bad), 2)
    with pytest.raises(SystemExit, match="missing.npy: cannot read"):
        sim.load_weights(str(tmp_path / "missing.npy"), 2)


def test_the_benchmark_spec_starts_from_the_given_weights(scaling, tmp_path) -> None:
    text = scaling.workloads({"corpus": "shakespeare"})["text"]
    size = 50537
    weights = np.random.default_rng(7).normal(size=size).astype(np.float32)
    npy, raw = tmp_path / "w.npy", tmp_path / "weights.bin"
    np.save(npy, weights)
    raw.write_bytes(weights.astype("<f4").tobytes())
    setting = scaling.Setting.parse("average lr=0.014 batch=64")
    for path in (npy, raw):
        spec = scaling._spec_with(text.spec, setting, str(path))
        assert spec.training.batch_size == 64
        # the server's coordinator takes its version 0 from initial_weights(seed)
        for seed in (1, 2):
            assert np.array_equal(spec.compiled.initial_weights(seed), weights)
    plain = scaling._spec_with(text.spec, setting)
    assert not np.array_equal(plain.compiled.initial_weights(1), weights)


def test_benchmark_init_weights_of_the_wrong_size_are_refused(scaling, tmp_path) -> None:
    text = scaling.workloads({"corpus": "shakespeare"})["text"]
    setting = scaling.Setting.parse("average")
    short = tmp_path / "short.bin"
    short.write_bytes(np.zeros(10, "<f4").tobytes())
    with pytest.raises(SystemExit, match=r"short.bin: float32 array of shape \(10,\); the spec "
                                         r"has 50537 float weights"):
        scaling._spec_with(text.spec, setting, str(short))
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\0" * 6)
    with pytest.raises(SystemExit, match="odd.bin: cannot read weights .6 bytes is not a whole"):
        scaling._spec_with(text.spec, setting, str(odd))
