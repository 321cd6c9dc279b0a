"""The LSTM candidate workload of bench/scaling.py (``text_lstm``, docs/scaling.md "Next
candidate: an LSTM text workload (probe)"): its spec loads with the benchmark's settings, reads
the same 12-character windows the text data module is asked for, and has the LSTM's weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scaling():
    path = ROOT / "bench" / "scaling.py"
    spec = importlib.util.spec_from_file_location("bench_scaling_lstm", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scaling_lstm"] = module
    spec.loader.exec_module(module)
    return module


def test_text_lstm_workload_reads_the_text_windows_through_an_lstm(scaling) -> None:
    workloads = scaling.workloads({"corpus": "shakespeare"})
    lstm, mlp = workloads["text_lstm"], workloads["text"]
    assert lstm.data == mlp.data and lstm.data_options == mlp.data_options
    spec = scaling._spec_with(lstm.spec, scaling.Setting.parse("average lr=0.01"))
    assert list(spec.input_shape) == [int(lstm.data_options["seq_len"])]
    assert [layer["type"] for layer in spec.layers] == ["embedding", "lstm", "dense"]
    # embedding 97 x 16, LSTM kernel 16 x 256, recurrent 64 x 256, bias 256, dense 64 x 97 + 97
    weights = 97 * 16 + 16 * 256 + 64 * 256 + 256 + 64 * 97 + 97
    assert spec.compiled.initial_weights(1).size == weights
    assert spec.training.batch_size == 32 and spec.training.local_steps == 10
