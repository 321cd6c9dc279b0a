"""Compilation: names, normalised layers, manifest order, summary text, model.json, settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from webnn.spec import TrainingConfig, load_spec
from webnn.weights import WeightLayout

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "model_specs" / "digits_mlp.json"

DIGITS_SUMMARY = """\
Model: "digits_mlp"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 dense_1 (Dense)             (None, 64)                4160
 dropout_1 (Dropout)         (None, 64)                0
 dense_2 (Dense)             (None, 10)                650
=================================================================
Total params: 4,810
Trainable params: 4,810
Non-trainable params: 0
_________________________________________________________________"""


def test_digits_summary_text() -> None:
    assert load_spec(DIGITS).compiled.summary() == DIGITS_SUMMARY


def test_summary_counts_non_trainable_and_widens_for_long_names() -> None:
    compiled = load_spec({"name": "bn", "inputShape": [6, 6, 3], "layers": [
        {"type": "batchNormalization", "name": "a_rather_long_batch_norm_layer_name"},
        {"type": "globalAveragePooling2d"}, {"type": "dense", "units": 2}],
        "loss": "meanSquaredError"}).compiled
    lines = compiled.summary().splitlines()
    assert lines[4].split() == ["a_rather_long_batch_norm_layer_name", "(BatchNormalization)",
                                "(None,", "6,", "6,", "3)", "12"]
    assert lines[5].split() == ["global_average_pooling2d_1", "(GlobalAveragePooling2D)",
                                "(None,", "3)", "0"]
    assert lines[-4:-1] == ["Total params: 20", "Trainable params: 14", "Non-trainable params: 6"]
    assert len({len(line) for line in (lines[1], lines[3], lines[-1])}) == 1


def test_names_count_per_kind_and_respect_user_names() -> None:
    spec = load_spec({"inputShape": [4], "layers": [
        {"type": "dense", "units": 3, "name": "dense_1"}, {"type": "dense", "units": 3},
        {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 2, "name": "head"}],
        "loss": "meanSquaredError"})
    assert [layer["name"] for layer in spec.layers] == ["dense_1", "dense_2", "dropout_1", "head"]
    assert spec.compiled.layout.names == ("dense_1/kernel", "dense_1/bias", "dense_2/kernel",
                                          "dense_2/bias", "head/kernel", "head/bias")


def test_manifest_order_puts_non_trainable_weights_last() -> None:
    compiled = load_spec({"inputShape": [4], "layers": [
        {"type": "dense", "units": 3}, {"type": "batchNormalization"},
        {"type": "dense", "units": 2, "trainable": False}, {"type": "dense", "units": 1}],
        "loss": "meanSquaredError"}).compiled
    assert compiled.layout.names == (
        "dense_1/kernel", "dense_1/bias", "batch_normalization_1/gamma",
        "batch_normalization_1/beta", "dense_3/kernel", "dense_3/bias",
        "batch_normalization_1/moving_mean", "batch_normalization_1/moving_variance",
        "dense_2/kernel", "dense_2/bias")
    assert (compiled.trainable_params, compiled.non_trainable_params) == (15 + 6 + 3, 6 + 8)


def test_normalised_layers_have_every_default() -> None:
    spec = load_spec({"inputShape": [5, 2], "layers": [
        {"type": "lstm", "units": 3, "kernelInitializer": "lecunNormal"},
        {"type": "dense", "units": 1}], "loss": "meanSquaredError"})
    lstm, dense = spec.layers
    assert lstm == {
        "type": "lstm", "name": "lstm_1", "units": 3, "activation": "tanh",
        "recurrentActivation": "hardSigmoid", "useBias": True,
        "kernelInitializer": {"type": "leCunNormal"},
        "recurrentInitializer": {"type": "orthogonal", "gain": 1.0},
        "biasInitializer": {"type": "zeros"}, "unitForgetBias": True, "dropout": 0,
        "recurrentDropout": 0, "returnSequences": False, "goBackwards": False}
    assert dense["kernelInitializer"] == {"type": "glorotUniform"}
    json.dumps(spec.layers)  # plain JSON values only


def test_topology_shape() -> None:
    topology = load_spec(DIGITS).compiled.topology
    assert topology["class_name"] == "Sequential"
    first, dropout, _ = topology["config"]["layers"]
    assert first["class_name"] == "Dense"
    assert first["config"]["batch_input_shape"] == [None, 64]
    assert first["config"]["kernel_initializer"] == {
        "class_name": "VarianceScaling",
        "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
    assert first["config"]["use_bias"] is True and first["config"]["activation"] == "relu"
    assert "batch_input_shape" not in dropout["config"]


def test_model_json_and_reload(tmp_path: Path) -> None:
    spec = load_spec(DIGITS)
    document = spec.compiled.model_json("weights.bin")
    assert document["format"] == "layers-model"
    assert document["modelTopology"] == spec.compiled.topology
    assert document["modelTopology"] is not spec.compiled.topology
    assert document["weightsManifest"] == spec.compiled.layout.manifest_json("weights.bin")
    weights = spec.compiled.initial_weights(11)
    (tmp_path / "model.json").write_text(json.dumps(document))
    (tmp_path / "weights.bin").write_bytes(spec.compiled.layout.to_bytes(weights))
    again = load_spec(tmp_path / "model.json")
    assert again.compiled.layout == spec.compiled.layout
    assert again.compiled.topology == spec.compiled.topology
    np.testing.assert_array_equal(again.compiled.initial_weights(0), weights)
    assert again.loss == "sparseCategoricalCrossentropy"  # from the softmax output
    # a dict source has no directory to read weights from, unless base_dir is given
    assert load_spec(document).compiled.loaded_weights is None
    loaded = load_spec(document, base_dir=tmp_path).compiled.initial_weights(0)
    np.testing.assert_array_equal(loaded, weights)


def test_training_settings_and_defaults() -> None:
    digits = load_spec(DIGITS)
    assert (digits.optimizer, digits.learning_rate, digits.metrics) == ("adam", 0.01,
                                                                        ["accuracy"])
    assert digits.training == TrainingConfig(batch_size=32, local_steps=5,
                                             validation_every_merges=10,
                                             validation_every_seconds=5.0,
                                             validation_chunk_size=256, seed=0)
    bare = load_spec({"inputShape": [3], "layers": [{"type": "dense", "units": 1}],
                      "loss": "meanSquaredError", "optimizer": "sgd"})
    assert (bare.name, bare.optimizer, bare.learning_rate, bare.metrics) == ("model", "sgd", 0.01,
                                                                             [])
    assert bare.training == TrainingConfig()
    assert bare.input_dtype == "float32"
    off = load_spec({"inputShape": [3], "layers": [{"type": "embedding", "inputDim": 5,
                                                    "outputDim": 2}, {"type": "flatten"}],
                     "loss": "binaryCrossentropy", "metrics": ["acc"],
                     "training": {"validation": {"everyMerges": None, "everySeconds": 10}}})
    assert off.input_dtype == "int32" and off.metrics == ["accuracy"]
    assert (off.training.validation_every_merges, off.training.validation_every_seconds) == \
        (None, 10.0)


def test_layout_is_a_weights_layout() -> None:
    compiled = load_spec(DIGITS).compiled
    assert isinstance(compiled.layout, WeightLayout)
    assert compiled.layout.size == compiled.total_params == 4810
    assert compiled.output_shape == (None, 10) and compiled.input_shape == (64,)
