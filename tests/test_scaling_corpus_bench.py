"""The scaling benchmarks on the frozen corpus (no worker processes): bench/scaling.py's corpus
options and SHA-256, task-scaling keys in a setting reaching the server's configuration, the
stop-after-target bookkeeping; bench/scaling_sim.py's windows are the data module's, and its
one-hot-by-index gradient is the dense one."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"



@pytest.fixture(scope="module")
def scaling(load_script):
    return load_script("bench_scaling_corpus", ROOT / "bench" / "scaling.py")


@pytest.fixture(scope="module")
def sim(load_script):
    return load_script("bench_scaling_sim_corpus", ROOT / "bench" / "scaling_sim.py")


def test_the_text_workload_reads_the_bundled_corpus_or_a_given_file(scaling, tmp_path: Path
                                                                    ) -> None:
    options, digest = scaling.corpus_options(None)
    assert options == {"corpus": "shakespeare"} and digest == SHAKESPEARE_SHA256
    text = scaling.workloads(options)["text"]
    assert text.data_options == {"corpus": "shakespeare", "seq_len": "12",
                                 "validation_limit": "2048"}
    packed = tmp_path / "book.txt.gz"
    packed.write_bytes(gzip.compress(b"To be, or not to be: that is the question.\n" * 50))
    options, digest = scaling.corpus_options(packed)
    assert options == {"path": str(packed)}
    assert digest == hashlib.sha256(gzip.decompress(packed.read_bytes())).hexdigest()


def test_task_scaling_keys_go_to_the_server_configuration(scaling) -> None:
    from webnn.server.config import ServeConfig

    setting = scaling.Setting.parse("fedbuff_live server_lr=0.5 lr=0.01 steps=10 "
                                    "lr_scaling=sqrt local_steps_exponent=0.25")
    assert setting.params == {"server_lr": "0.5"}
    assert setting.serve == {"lr_scaling": "sqrt", "local_steps_exponent": 0.25}
    assert setting.label() == ("fedbuff_live server_lr=0.5 lr_scaling=sqrt "
                               "local_steps_exponent=0.25 lr=0.01 steps=10")
    options, _ = scaling.corpus_options(None)
    config = ServeConfig(
        spec=scaling._spec_with(str(ROOT / "bench" / "specs" / "text_mlp.json"), setting),
        data=str(ROOT / "data_modules" / "text.py"), data_options={**options, "seq_len": "12"},
        strategy=setting.strategy, strategy_params=setting.params, **setting.serve)
    assert config.lr_scaling == "sqrt" and config.local_steps_exponent == 0.25


def test_first_validation_at_the_target(scaling) -> None:
    history = [{"elapsed": 1.0, "valAccuracy": 0.2}, {"elapsed": 2.0, "valAccuracy": None},
               {"elapsed": 3.5, "valAccuracy": 0.35}, {"elapsed": 4.0, "valAccuracy": 0.4}]
    assert scaling._first_at(history, 0.35) == 3.5
    assert scaling._first_at(history, 0.5) is None


def test_the_simulator_trains_on_the_benchmark_windows(sim, load_script) -> None:
    text = load_script("text_module_for_sim_test", ROOT / "data_modules" / "text.py")
    data = sim.load_text_data()
    real = text.load(corpus="shakespeare", seq_len=12, validation_limit=2048)
    assert data.corpus_sha256 == SHAKESPEARE_SHA256 and data.inputs == 12 * 97
    assert len(data.y) == real.num_train and len(data.yv) == 2048
    index = np.array([0, 17, real.num_train - 1])
    windows = real.train_examples(index)
    columns = data.examples(index)  # column 97 j + c for character c at position j
    np.testing.assert_array_equal(columns - np.arange(12) * 97, windows.x)
    np.testing.assert_array_equal(data.y[index], windows.y)
    val = next(iter(real.validation_chunks(2048)))
    np.testing.assert_array_equal(data.xv - np.arange(12) * 97, val.x)
    np.testing.assert_array_equal(data.yv, val.y)


def test_one_hot_by_index_is_the_dense_product(sim) -> None:
    rng = np.random.default_rng(3)
    mlp = sim.Mlp((20, 8, 5))
    weights = mlp.init(rng)
    columns = np.stack([rng.choice(10, 2, replace=False) + offset
                        for offset in (0, 10)]).T  # 2 examples: one column of 0-9, one of 10-19
    columns = np.concatenate([columns, columns[:1]])  # the same example twice
    dense = np.zeros((3, 20), dtype=np.float32)
    for row, cols in enumerate(columns):
        dense[row, cols] = 1.0
    y = np.array([1, 4, 1])
    np.testing.assert_allclose(mlp.grad(weights, columns, y), mlp.grad(weights, dense, y),
                               rtol=1e-5, atol=1e-7)
    assert mlp.accuracy(weights, columns, y) == mlp.accuracy(weights, dense, y)


def test_a_client_config_parses_warm_up(sim) -> None:
    config = sim.Config.parse("webnn.merge.fedbuff_live:FedBuffLive server_lr=0.75|"
                              "adam lr=0.08 steps=5 warmup=10")
    assert (config.strategy, config.params) == ("webnn.merge.fedbuff_live:FedBuffLive",
                                                {"server_lr": "0.75"})
    assert (config.lr, config.local_steps, config.warmup) == (0.08, 5, 10.0)
    assert sim.Config.parse("average|adam lr=0.01").warmup == 0.0
