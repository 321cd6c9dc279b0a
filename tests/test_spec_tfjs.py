"""TF.js is the reference: our shapes, parameter counts, weight manifest and topology against what
TensorFlow.js 4.22 (tests/tfjs_reference.mjs, one Node process for all cases) says."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from webnn.spec import CompiledModel, load_spec, validate_spec
from webnn.spec.layers import KINDS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "tfjs_reference.mjs"
SHIPPED = sorted((ROOT / "model_specs").glob("*.json"))


def spec(input_shape: list[int], *layers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"inputShape": input_shape, "layers": list(layers), "loss": "meanSquaredError", **extra}


EXTRA: dict[str, dict[str, Any]] = {
    "conv2d_options": spec(
        [12, 12, 3],
        {"type": "conv2d", "filters": 4, "kernelSize": 3, "padding": "same", "strides": 2},
        {"type": "conv2d", "filters": 5, "kernelSize": [3, 2], "dilationRate": 2, "useBias": False,
         "kernelInitializer": "heNormal"},
        {"type": "batchNormalization"},
        {"type": "averagePooling2d", "poolSize": 2, "strides": 1, "padding": "same"},
        {"type": "maxPooling2d", "poolSize": [1, 2]},
        {"type": "flatten"},
        {"type": "dense", "units": 3, "activation": "softmax"}),
    "conv2d_strides_valid": spec(
        [9, 7, 2],
        {"type": "conv2d", "filters": 3, "kernelSize": [4, 3], "strides": [2, 3],
         "activation": "elu"},
        {"type": "maxPooling2d", "poolSize": 2, "strides": 1, "padding": "same"},
        {"type": "averagePooling2d", "poolSize": [2, 1], "strides": [1, 1]},
        {"type": "globalAveragePooling2d"},
        {"type": "dense", "units": 2, "activation": "sigmoid"}),
    "global_max_2d": spec([6, 6, 1], {"type": "globalMaxPooling2d"}, {"type": "dense", "units": 1}),
    "conv1d_options": spec(
        [20, 3],
        {"type": "conv1d", "filters": 6, "kernelSize": 5, "padding": "same", "strides": 2},
        {"type": "maxPooling1d", "poolSize": 2},
        {"type": "conv1d", "filters": 4, "kernelSize": [2], "dilationRate": 2, "useBias": False},
        {"type": "averagePooling1d", "poolSize": 2, "strides": 1},
        {"type": "conv1d", "filters": 2, "kernelSize": 1, "activation": "relu"},
        {"type": "globalAveragePooling1d"},
        {"type": "dense", "units": 2}),
    "recurrent_stack": spec(
        [10],
        {"type": "embedding", "inputDim": 30, "outputDim": 8},
        {"type": "simpleRNN", "units": 6, "returnSequences": True},
        {"type": "gru", "units": 5, "returnSequences": True, "goBackwards": True},
        {"type": "lstm", "units": 4, "returnSequences": True, "recurrentActivation": "sigmoid"},
        {"type": "globalMaxPooling1d"},
        {"type": "dense", "units": 3, "activation": "softmax"}),
    "recurrent_options": spec(
        [7, 3],
        {"type": "lstm", "units": 5, "useBias": False, "returnSequences": True},
        {"type": "gru", "units": 3, "useBias": False, "returnSequences": True},
        {"type": "simpleRNN", "units": 2, "useBias": False, "activation": "relu"},
        {"type": "dense", "units": 1}),
    "embedding_mask": spec(
        [12],
        {"type": "embedding", "inputDim": 50, "outputDim": 4, "maskZero": True,
         "embeddingsInitializer": {"type": "randomNormal", "stddev": 0.1}},
        {"type": "lstm", "units": 3, "unitForgetBias": False},
        {"type": "dense", "units": 50, "activation": "softmax"}),
    "reshape_activation": spec(
        [64],
        {"type": "reshape", "targetShape": [8, 8, 1]},
        {"type": "conv2d", "filters": 2, "kernelSize": 3},
        {"type": "reshape", "targetShape": [-1, 2]},
        {"type": "simpleRNN", "units": 3},
        {"type": "activation", "activation": "tanh"},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 2, "name": "out"}),
    "frozen_layers": spec(
        [5],
        {"type": "dense", "units": 4, "trainable": False},
        {"type": "batchNormalization", "trainable": False},
        {"type": "batchNormalization", "center": False},
        {"type": "batchNormalization", "scale": False, "axis": 1},
        {"type": "dense", "units": 2, "name": "head"}),
    "batchnorm_axes": spec(
        [4, 5, 3],
        {"type": "batchNormalization", "axis": 1},
        {"type": "batchNormalization", "axis": -2, "momentum": 0.9, "epsilon": 0.01},
        {"type": "flatten"},
        {"type": "dense", "units": 1}),
    "dense_on_sequences": spec(
        [6, 4],
        {"type": "dense", "units": 5, "activation": "relu", "useBias": False},
        {"type": "flatten"},
        {"type": "dense", "units": 1, "kernelInitializer": {"type": "varianceScaling",
                                                             "scale": 2, "mode": "fanOut"}}),
    "initializer_kinds": spec(
        [3],
        {"type": "dense", "units": 3, "kernelInitializer": "identity",
         "biasInitializer": {"type": "constant", "value": 0.5}},
        {"type": "dense", "units": 4, "kernelInitializer": "orthogonal", "biasInitializer": "ones"},
        {"type": "dense", "units": 2, "kernelInitializer": "leCunUniform",
         "biasInitializer": {"type": "truncatedNormal", "mean": 1, "stddev": 0.2}},
        {"type": "dense", "units": 2, "kernelInitializer": {"type": "randomUniform", "minval": -1,
                                                             "maxval": 1}}),
}

BUILT: dict[str, dict[str, Any]] = {
    # models built with TF.js's own API and defaults: TF.js names, glorotNormal, unitForgetBias null
    "tfjs_mlp": {"inputShape": [6], "layers": [["dense", {"units": 5, "activation": "relu"}],
                                               ["batchNormalization", {}],
                                               ["dense", {"units": 3, "activation": "softmax"}]]},
    "tfjs_cnn": {"inputShape": [8, 8, 1], "layers": [["conv2d", {"filters": 2, "kernelSize": 3}],
                                                     ["maxPooling2d", {"poolSize": 2}],
                                                     ["flatten", {}], ["dense", {"units": 2}]]},
    "tfjs_rnn": {"inputShape": [5], "layers": [["embedding", {"inputDim": 9, "outputDim": 3}],
                                               ["lstm", {"units": 4, "returnSequences": True}],
                                               ["gru", {"units": 2}], ["dense", {"units": 9}]]},
}


REJECTED: dict[str, tuple[list[int], list[Any], dict[str, Any]]] = {
    # (input shape, TF.js layer to build, the same layer as a spec): TF.js refuses to build these
    "flatten_of_flat": ([64], ["flatten", {}], {"type": "flatten"}),
    "conv2d_on_2d": ([64], ["conv2d", {"filters": 2, "kernelSize": 3}],
                     {"type": "conv2d", "filters": 2, "kernelSize": 3}),
    "lstm_on_2d": ([64], ["lstm", {"units": 2}], {"type": "lstm", "units": 2}),
    "kernel_too_large": ([3, 3, 1], ["conv2d", {"filters": 1, "kernelSize": 5}],
                         {"type": "conv2d", "filters": 1, "kernelSize": 5}),
    "batchnorm_axis0": ([4], ["batchNormalization", {"axis": 0}],
                        {"type": "batchNormalization", "axis": 0}),
    "gru_reset_after": ([5, 2], ["gru", {"units": 3, "resetAfter": True}],
                        {"type": "gru", "units": 3, "resetAfter": True}),
}


def compiled_cases() -> dict[str, CompiledModel]:
    cases = {f"shipped:{p.stem}": load_spec(p).compiled for p in SHIPPED}
    cases.update({name: load_spec(doc).compiled for name, doc in EXTRA.items()})
    return cases


def run_reference(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    done = subprocess.run(["node", str(SCRIPT)], input=json.dumps({"cases": cases}),
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)["results"]}


def encode(buffer: np.ndarray) -> str:
    return base64.b64encode(buffer.astype("<f4").tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, CompiledModel], dict[str, dict[str, Any]]]:
    compiled = compiled_cases()
    cases: list[dict[str, Any]] = [
        {"id": name, "topology": model.topology, "weights": encode(model.initial_weights(7))}
        for name, model in compiled.items()]
    cases += [{"id": name, "build": build} for name, build in BUILT.items()]
    cases += [{"id": f"rejected:{name}", "build": {"inputShape": shape, "layers": [layer]}}
              for name, (shape, layer, _) in REJECTED.items()]
    cases.append({"id": "model_json:digits",
                  "topology": compiled["shipped:digits_mlp"].model_json()})
    return compiled, run_reference(cases)


def test_every_layer_kind_is_covered() -> None:
    used = {layer["type"] for doc in EXTRA.values() for layer in doc["layers"]}
    used |= {layer["type"] for p in SHIPPED for layer in json.loads(p.read_text())["layers"]}
    assert used == set(KINDS)


@pytest.mark.parametrize("name", [f"shipped:{p.stem}" for p in SHIPPED] + list(EXTRA))
def test_shapes_params_and_manifest_match_tfjs(name: str, reference) -> None:
    compiled, results = reference
    ours, tfjs = compiled[name], results[name]
    assert "error" not in tfjs, tfjs.get("error")
    assert [(e["name"], tuple(e["shape"])) for e in tfjs["manifest"]] == \
        [(s.name, s.shape) for s in ours.layout.specs]
    assert all(e["dtype"] == "float32" for e in tfjs["manifest"])
    trainable = [e["trainable"] for e in tfjs["manifest"]]
    n_trainable = sum(trainable)
    assert trainable == [True] * n_trainable + [False] * (len(trainable) - n_trainable)
    assert sum(np.prod(s.shape, dtype=int) for s in ours.layout.specs[:n_trainable]) == \
        ours.trainable_params == tfjs["trainable_params"]
    assert [(layer["name"], layer["class_name"], tuple(layer["output_shape"]), layer["params"])
            for layer in tfjs["layers"]] == \
        [(s.name, s.class_name, s.output_shape, s.params) for s in ours.layers]
    assert ours.total_params == tfjs["total_params"] == ours.layout.size
    assert tuple(tfjs["output_shape"]) == ours.output_shape


@pytest.mark.parametrize("name", [f"shipped:{p.stem}" for p in SHIPPED] + list(EXTRA))
def test_topology_is_what_tfjs_serialises(name: str, reference) -> None:
    """TF.js rebuilt from our topology writes back exactly our topology: same classes, same
    snake_case keys and values, nothing missing, nothing extra."""
    compiled, results = reference
    assert results[name]["topology"] == compiled[name].topology


@pytest.mark.parametrize("name", [f"shipped:{p.stem}" for p in SHIPPED] + list(EXTRA))
def test_initial_weights_round_trip_through_tfjs(name: str, reference) -> None:
    """setWeights from our flat buffer, getWeights back: the same bytes in the same order."""
    compiled, results = reference
    back = decode(results[name]["weights"])
    np.testing.assert_array_equal(back, compiled[name].initial_weights(7))


def test_model_json_loads_in_tfjs(reference) -> None:
    compiled, results = reference
    assert results["model_json:digits"]["topology"] == compiled["shipped:digits_mlp"].topology


@pytest.mark.parametrize("name", list(BUILT))
def test_tfjs_saved_model_is_accepted_with_its_weights(name: str, reference, tmp_path) -> None:
    """A model.json + weights.bin as TF.js writes them loads as a spec; its weights become the
    initial weights, and our compiled layout equals the TF.js manifest."""
    _, results = reference
    tfjs = results[name]
    weights = decode(tfjs["weights"])
    manifest = [{"name": e["name"], "shape": e["shape"], "dtype": "float32"}
                for e in tfjs["manifest"]]
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "layers-model", "modelTopology": tfjs["topology"],
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": manifest}]}))
    (tmp_path / "group1-shard1of1.bin").write_bytes(weights.astype("<f4").tobytes())
    loaded = load_spec(tmp_path / "model.json").compiled
    assert [(s.name, list(s.shape)) for s in loaded.layout.specs] == \
        [(e["name"], e["shape"]) for e in tfjs["manifest"]]
    assert [layer.output_shape for layer in loaded.layers] == \
        [tuple(layer["output_shape"]) for layer in tfjs["layers"]]
    np.testing.assert_array_equal(loaded.initial_weights(0), weights)
    np.testing.assert_array_equal(loaded.initial_weights(1), weights)


@pytest.mark.parametrize("name", list(EXTRA))
def test_topology_written_by_tfjs_imports_to_the_same_model(name: str, reference) -> None:
    compiled, results = reference
    again = load_spec({"modelTopology": results[name]["topology"]}).compiled
    assert again.layout == compiled[name].layout
    assert again.topology == compiled[name].topology


@pytest.mark.parametrize("name", list(REJECTED))
def test_what_tfjs_refuses_is_a_problem(name: str, reference) -> None:
    _, results = reference
    shape, _, layer = REJECTED[name]
    assert "error" in results[f"rejected:{name}"]
    problems = validate_spec(spec(shape, layer))
    assert problems and all(p.path.startswith("$.layers[0]") for p in problems), problems
