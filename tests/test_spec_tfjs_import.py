"""A TF.js (or Keras-converted) model.json as a spec: training settings, weights, and problems
that point into the original document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from webnn.spec import load_spec, validate_spec

ROOT = Path(__file__).resolve().parent.parent


def digits_json() -> dict[str, Any]:
    return load_spec(ROOT / "model_specs" / "digits_mlp.json").compiled.model_json()


def layer_config(doc: dict[str, Any], i: int) -> dict[str, Any]:
    return doc["modelTopology"]["config"]["layers"][i]["config"]


def keras_model_json() -> dict[str, Any]:
    """What the tensorflowjs converter writes for a Keras 2 Sequential model."""
    return {
        "format": "layers-model", "generatedBy": "keras v2.15.0",
        "modelTopology": {
            "keras_version": "2.15.0", "backend": "tensorflow",
            "model_config": {"class_name": "Sequential", "config": {"name": "sequential",
                                                                    "layers": [
                {"class_name": "InputLayer", "config": {
                    "batch_input_shape": [None, 6], "dtype": "float32", "sparse": False,
                    "ragged": False, "name": "embedding_input"}},
                {"class_name": "Embedding", "config": {
                    "name": "embedding", "trainable": True, "dtype": "float32",
                    "batch_input_shape": [None, 6], "input_dim": 11, "output_dim": 3,
                    "embeddings_initializer": {"module": "keras.initializers",
                                               "class_name": "RandomUniform",
                                               "config": {"minval": -0.05, "maxval": 0.05,
                                                          "seed": None}},
                    "embeddings_regularizer": None, "activity_regularizer": None,
                    "embeddings_constraint": None, "mask_zero": False, "input_length": 6}},
                {"class_name": "LSTM", "config": {
                    "name": "lstm", "trainable": True, "dtype": "float32",
                    "return_sequences": False, "return_state": False, "go_backwards": False,
                    "stateful": False, "unroll": False, "time_major": False, "units": 4,
                    "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
                    "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                    "recurrent_initializer": {"class_name": "Orthogonal",
                                              "config": {"gain": 1.0, "seed": None}},
                    "bias_initializer": {"class_name": "Zeros", "config": {}},
                    "unit_forget_bias": True, "kernel_regularizer": None,
                    "recurrent_regularizer": None, "bias_regularizer": None,
                    "activity_regularizer": None, "kernel_constraint": None,
                    "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
                    "recurrent_dropout": 0.0, "implementation": 2}},
                {"class_name": "Dense", "config": {
                    "name": "dense", "trainable": True, "dtype": "float32", "units": 11,
                    "activation": "softmax", "use_bias": True,
                    "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                    "bias_initializer": {"class_name": "Zeros", "config": {}},
                    "kernel_regularizer": None, "bias_regularizer": None,
                    "activity_regularizer": None, "kernel_constraint": None,
                    "bias_constraint": None}}]}},
            "training_config": {"loss": "sparse_categorical_crossentropy",
                                "metrics": [["accuracy"]],
                                "optimizer_config": {"class_name": "RMSprop",
                                                     "config": {"learning_rate": 0.002}}}},
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": [
            {"name": "embedding/embeddings", "shape": [11, 3], "dtype": "float32"},
            {"name": "lstm/lstm_cell/kernel", "shape": [3, 16], "dtype": "float32"},
            {"name": "lstm/lstm_cell/recurrent_kernel", "shape": [4, 16], "dtype": "float32"},
            {"name": "lstm/lstm_cell/bias", "shape": [16], "dtype": "float32"},
            {"name": "dense/kernel", "shape": [4, 11], "dtype": "float32"},
            {"name": "dense/bias", "shape": [11], "dtype": "float32"}]}],
    }


def test_keras_converted_model_with_weights(tmp_path: Path) -> None:
    doc = keras_model_json()
    sizes = [int(np.prod(w["shape"])) for w in doc["weightsManifest"][0]["weights"]]
    values = np.arange(sum(sizes), dtype=np.float32) / 1000
    (tmp_path / "model.json").write_text(json.dumps(doc))
    (tmp_path / "group1-shard1of1.bin").write_bytes(values.astype("<f4").tobytes())
    spec = load_spec(tmp_path / "model.json")
    assert spec.name == "sequential" and spec.input_shape == (6,) and spec.input_dtype == "int32"
    assert (spec.loss, spec.optimizer, spec.learning_rate) == ("sparseCategoricalCrossentropy",
                                                               "rmsprop", 0.002)
    assert [layer["name"] for layer in spec.layers] == ["embedding", "lstm", "dense"]
    assert spec.layers[1]["recurrentActivation"] == "sigmoid"
    assert spec.compiled.layout.names == ("embedding/embeddings", "lstm/kernel",
                                          "lstm/recurrent_kernel", "lstm/bias", "dense/kernel",
                                          "dense/bias")
    np.testing.assert_array_equal(spec.compiled.initial_weights(3), values)


def test_webnn_block_overrides_training_config() -> None:
    doc = digits_json()
    doc["trainingConfig"] = {"loss": "categorical_crossentropy", "metrics": ["acc"],
                             "optimizer_config": {"class_name": "SGD",
                                                  "config": {"learning_rate": 0.1,
                                                             "momentum": 0.9}}}
    spec = load_spec(doc)
    assert (spec.loss, spec.optimizer, spec.learning_rate, spec.metrics) == (
        "categoricalCrossentropy", "momentum", 0.1, ["accuracy"])
    doc["webnn"] = {"name": "imported", "loss": "sparseCategoricalCrossentropy",
                    "training": {"batchSize": 16, "localSteps": 3}}
    spec = load_spec(doc)
    assert (spec.name, spec.loss, spec.optimizer) == ("imported", "sparseCategoricalCrossentropy",
                                                      "momentum")
    assert (spec.training.batch_size, spec.training.local_steps) == (16, 3)


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


LAYERS = ["modelTopology", "config", "layers"]

BAD: list[tuple[str, list[Any], Any, str, str]] = [
    ("unsupported layer class", [*LAYERS, 1, "class_name"], "Conv3D",
     "$.modelTopology.config.layers[1].class_name",
     "webnn does not support the TF.js layer class 'Conv3D' (did you mean 'Conv2D' or 'Conv1D'?)"),
    ("not sequential", ["modelTopology", "class_name"], "Functional",
     "$.modelTopology.class_name", "webnn supports Sequential models only"),
    ("bad units", [*LAYERS, 0, "config", "units"], 0,
     "$.modelTopology.config.layers[0].config.units", "must be a positive integer, got 0"),
    ("unknown activation", [*LAYERS, 2, "config", "activation"], "softmaks",
     "$.modelTopology.config.layers[2].config.activation",
     "unknown activation 'softmaks' (did you mean 'softmax'?)"),
    ("bad initializer parameter", [*LAYERS, 0, "config", "kernel_initializer", "config", "mode"],
     "fan_middle", "$.modelTopology.config.layers[0].config.kernel_initializer.config.mode",
     "unknown mode 'fanMiddle'"),
    ("regularizer", [*LAYERS, 0, "config", "kernel_regularizer"],
     {"class_name": "L1L2", "config": {"l1": 0, "l2": 0.01}},
     "$.modelTopology.config.layers[0].config.kernel_regularizer",
     "webnn does not support kernel_regularizer"),
    ("unknown option", [*LAYERS, 0, "config", "fancy"], 1,
     "$.modelTopology.config.layers[0].config.fancy", "webnn does not support the option 'fancy'"),
    ("no input shape", [*LAYERS, 0, "config", "batch_input_shape"], None,
     "$.modelTopology.config.layers[0].config.batch_input_shape", "missing: the first layer"),
    ("variable input shape", [*LAYERS, 0, "config", "batch_input_shape"], [None, None],
     "$.modelTopology.config.layers[0].config.batch_input_shape[1]",
     "webnn needs a fixed input shape"),
    ("bad webnn block", ["webnn"], {"loss": "mse", "training": {"localSteps": 0}},
     "$.webnn.loss", "unknown loss 'mse'"),
    ("bad webnn training", ["webnn"], {"training": {"localSteps": 0}},
     "$.webnn.training.localSteps", "must be a positive integer, got 0"),
    ("manifest shape", ["weightsManifest", 0, "weights", 0, "shape"], [64, 65],
     "$.weightsManifest[0].weights[0].shape",
     "dense_1/kernel has shape [64, 65]; the model's dense_1/kernel has [64, 64]"),
    ("manifest dtype", ["weightsManifest", 0, "weights", 1, "dtype"], "float16",
     "$.weightsManifest[0].weights[1].dtype", "webnn reads float32 weights only"),
    ("manifest renamed weight", ["weightsManifest", 0, "weights", 3, "name"], "dense_9/bias",
     "$.weightsManifest", "lists no weight for the model's dense_2/bias [10]"),
]


@pytest.mark.parametrize(("where", "value", "path", "reason"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_problems_point_into_model_json(where: list[Any], value: Any, path: str,
                                       reason: str) -> None:
    doc = _set(digits_json(), where, value)
    before = copy.deepcopy(doc)
    problems = validate_spec(doc)
    assert doc == before
    assert any(p.path == path and reason in p.message for p in problems), problems


def test_manifest_extra_entry_is_named() -> None:
    doc = digits_json()
    doc["weightsManifest"][0]["weights"].append({"name": "x/y", "shape": [1], "dtype": "float32"})
    assert [(p.path, p.message) for p in validate_spec(doc)] == [
        ("$.weightsManifest[0].weights[4]", "weight 'x/y' is not part of the model")]


def test_weight_file_problems(tmp_path: Path) -> None:
    doc = digits_json()
    (tmp_path / "model.json").write_text(json.dumps(doc))
    (problem,) = validate_spec(tmp_path / "model.json")
    assert problem.path == "$.weightsManifest[0].paths[0]"
    assert "cannot read weight file" in problem.message
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    (problem,) = validate_spec(tmp_path / "model.json")
    assert (problem.path, problem.message) == (
        "$.weightsManifest[0].paths",
        "the weight files hold 8 bytes; the manifest's tensors need 19240 bytes")


def test_sharded_weights_in_two_groups(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "model_specs" / "digits_mlp.json")
    weights = spec.compiled.initial_weights(2)
    doc = spec.compiled.model_json()
    entries = doc["weightsManifest"][0]["weights"]
    raw = spec.compiled.layout.to_bytes(weights).tobytes()
    split = 4 * (64 * 64 + 64)
    doc["weightsManifest"] = [
        {"paths": ["b1", "b2"], "weights": entries[:2]},
        {"paths": ["c"], "weights": entries[2:][::-1]},  # another order within the group
    ]
    (tmp_path / "b1").write_bytes(raw[:100])
    (tmp_path / "b2").write_bytes(raw[100:split])
    views = spec.compiled.layout.views(weights)
    (tmp_path / "c").write_bytes(views["dense_2/bias"].tobytes()
                                 + views["dense_2/kernel"].tobytes())
    (tmp_path / "model.json").write_text(json.dumps(doc))
    np.testing.assert_array_equal(load_spec(tmp_path / "model.json").compiled.initial_weights(0),
                                  weights)


def test_bare_topology_is_accepted() -> None:
    topology = digits_json()["modelTopology"]
    spec = load_spec(topology)
    assert spec.compiled.topology == topology
    assert spec.name == "digits_mlp"
