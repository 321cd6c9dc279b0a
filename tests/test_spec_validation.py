"""Spec validation: the schema accepts the shipped specs; bad specs give every problem, each with
the JSON path of the bad field and a plain reason; nothing is changed by validating."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from webnn.spec import Problem, SpecError, TrainingConfig, load_spec, validate_spec
from webnn.spec.layers import KINDS
from webnn.spec.schema import check, defaults, enum, schema

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "model_specs").glob("*.json"))


def base(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "t", "inputShape": [64],
        "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                   {"type": "dropout", "rate": 0.2},
                   {"type": "dense", "units": 10, "activation": "softmax"}],
        "loss": "sparseCategoricalCrossentropy",
    }
    doc.update(changes)
    return doc


def layers(input_shape: list[int], *layer_list: dict[str, Any]) -> dict[str, Any]:
    return base(inputShape=input_shape, layers=list(layer_list))


def without(key: str) -> dict[str, Any]:
    doc = base()
    del doc[key]
    return doc


DENSE = {"type": "dense", "units": 4}

# (id, spec, expected path, expected words in the reason, rejected by the bare JSON Schema too)
BAD: list[tuple[str, dict[str, Any], str, str, bool]] = [
    ("missing loss", without("loss"), "$.loss", "missing required field", True),
    ("absurd model size", layers([64], {"type": "dense", "units": 1_000_000_000}),
     "$.layers[0]", "reaches 65,000,000,000 parameters at this layer; webnn serves at most", False),
    ("missing layers", without("layers"), "$.layers", "missing required field", True),
    ("zero input size", base(inputShape=[64, 0]), "$.inputShape[1]",
     "must be a positive integer, got 0", True),
    ("input shape not a list", base(inputShape="64"), "$.inputShape",
     "must be a non-empty list of positive integers", True),
    ("empty layers", base(layers=[]), "$.layers", "must be a non-empty list of layers", True),
    ("layer not an object", base(layers=["dense"]), "$.layers[0]", "expected an object", True),
    ("unknown layer type", layers([64], {"type": "dens", "units": 3}), "$.layers[0].type",
     "unknown layer type 'dens' (did you mean 'dense'?)", True),
    ("layer without type", layers([64], {"units": 3}), "$.layers[0].type",
     "missing required field", True),
    ("negative units", layers([64], {"type": "dense", "units": -3}), "$.layers[0].units",
     "must be a positive integer, got -3", True),
    ("units as string", layers([64], {"type": "dense", "units": "10"}), "$.layers[0].units",
     'must be a positive integer, got "10" (a string)', True),
    ("units as float", layers([64], {"type": "dense", "units": 3.0}), "$.layers[0].units",
     "must be a positive integer, got 3.0", False),  # draft 2020-12 alone counts 3.0 as integer
    ("missing units", layers([64], {"type": "dense"}), "$.layers[0].units",
     "missing required field", True),
    ("unknown activation", layers([64], {"type": "dense", "units": 3, "activation": "rleu"}),
     "$.layers[0].activation", "unknown activation 'rleu' (did you mean 'relu'?)", True),
    ("misspelt field", layers([64], {"type": "dense", "unit": 3}), "$.layers[0].unit",
     "unknown field 'unit' (did you mean 'units'?)", True),
    ("inputShape on a layer", layers([64], {"type": "dense", "units": 3, "inputShape": [64]}),
     "$.layers[0].inputShape", "give inputShape at the top level", True),
    ("snake_case loss", base(loss="sparse_categorical_crossentropy"), "$.loss",
     "unknown loss 'sparse_categorical_crossentropy' (did you mean "
     "'sparseCategoricalCrossentropy'?)", True),
    ("unknown optimizer", base(optimizer={"type": "adm"}), "$.optimizer.type",
     "unknown optimizer 'adm'", True),
    ("zero learning rate", base(optimizer={"type": "sgd", "learningRate": 0}),
     "$.optimizer.learningRate", "must be a number > 0, got 0", True),
    ("unknown metric", base(metrics=["acuracy"]), "$.metrics[0]",
     "unknown metric 'acuracy' (did you mean 'accuracy'?)", True),
    ("repeated metric", base(metrics=["accuracy", "accuracy"]), "$.metrics",
     'lists "accuracy" more than once', True),
    ("zero batch size", base(training={"batchSize": 0}), "$.training.batchSize",
     "must be a positive integer, got 0", True),
    ("negative validation period", base(training={"validation": {"everySeconds": -5}}),
     "$.training.validation.everySeconds", "must be a number > 0, got -5", True),
    ("validation without trigger", base(training={"validation": {"chunkSize": 100}}),
     "$.training.validation", "give everyMerges and/or everySeconds", False),
    ("dropout rate 1.5", layers([64], {"type": "dropout", "rate": 1.5}, DENSE),
     "$.layers[0].rate", "must be a number in [0, 1), got 1.5", True),
    ("kernel size of 3 numbers", layers([8, 8, 1], {"type": "conv2d", "filters": 2,
                                                     "kernelSize": [3, 3, 3]}),
     "$.layers[0].kernelSize", "must be a positive integer or a list of 2 positive integers, "
                               "got [3, 3, 3]", True),
    ("zero in kernel size", layers([8, 8, 1], {"type": "conv2d", "filters": 2,
                                               "kernelSize": [0, 3]}),
     "$.layers[0].kernelSize[0]", "must be a positive integer, got 0", True),
    ("causal padding", layers([8, 8, 1], {"type": "conv2d", "filters": 2, "kernelSize": 3,
                                          "padding": "causal"}),
     "$.layers[0].padding", "unknown padding 'causal'", True),
    ("misspelt initializer", layers([64], {"type": "dense", "units": 3,
                                           "kernelInitializer": "glorotUnifrom"}),
     "$.layers[0].kernelInitializer",
     "unknown initializer 'glorotUnifrom' (did you mean 'glorotUniform'", True),
    ("constant without value", layers([64], {"type": "dense", "units": 3,
                                             "biasInitializer": {"type": "constant"}}),
     "$.layers[0].biasInitializer.value", "missing required field", True),
    ("bad variance scaling mode", layers([64], {"type": "dense", "units": 3, "kernelInitializer": {
        "type": "varianceScaling", "mode": "fan_in"}}),
     "$.layers[0].kernelInitializer.mode", "unknown mode 'fan_in' (did you mean 'fanIn'?)", True),
    ("GRU resetAfter", layers([5, 2], {"type": "gru", "units": 3, "resetAfter": True}),
     "$.layers[0].resetAfter", "must be false: TF.js GRU supports only resetAfter false", True),
    ("bad model name", base(name="my model"), "$.name", "must start with a letter or digit", True),
    ("misspelt top-level field", base(inputshape=[64]), "$.inputshape",
     "unknown field 'inputshape' (did you mean 'inputShape'?)", True),
    ("unknown input dtype", base(inputDtype="float64"), "$.inputDtype",
     "unknown input dtype 'float64'", True),
    # shapes that cannot connect: found by shape inference, not by the schema
    ("dense fed 4-D input", layers([8, 8, 1], DENSE), "$.layers[0]",
     "dense needs 2-D input (batch, features) or 3-D input (batch, steps, features); it gets 4-D "
     "input (None, 8, 8, 1); add {\"type\": \"flatten\"} before it", False),
    ("conv2d fed 2-D input", layers([64], {"type": "conv2d", "filters": 2, "kernelSize": 3}),
     "$.layers[0]", "conv2d needs 4-D input (batch, height, width, channels); it gets 2-D input "
                    "(None, 64)", False),
    ("conv1d fed 4-D input", layers([4, 4, 1], {"type": "conv1d", "filters": 2, "kernelSize": 3}),
     "$.layers[0]", "conv1d needs 3-D input (batch, steps, channels); it gets 4-D input", False),
    ("lstm fed 2-D input", layers([64], {"type": "lstm", "units": 3}), "$.layers[0]",
     "lstm needs 3-D input (batch, steps, features); it gets 2-D input (None, 64)", False),
    ("pooling fed 2-D input", layers([64], {"type": "maxPooling2d"}), "$.layers[0]",
     "maxPooling2d needs 4-D input", False),
    ("flatten of flat input", layers([64], {"type": "flatten"}, DENSE), "$.layers[0]",
     "flatten needs input of at least 3-D (batch, ...); it gets 2-D input (None, 64)", False),
    ("reshape element count", layers([64], {"type": "reshape", "targetShape": [6, 10]}),
     "$.layers[0].targetShape",
     "target shape [6, 10] holds 60 elements but the input (None, 64) holds 64", False),
    ("reshape -1 not a divisor", layers([64], {"type": "reshape", "targetShape": [-1, 5]}),
     "$.layers[0].targetShape", "cannot infer the -1 dimension", False),
    ("reshape two -1", layers([64], {"type": "reshape", "targetShape": [-1, -1]}),
     "$.layers[0].targetShape", "may contain -1 only once", False),
    ("kernel larger than input", layers([3, 3, 1], {"type": "conv2d", "filters": 2,
                                                    "kernelSize": 5}),
     "$.layers[0].kernelSize", "kernel 5x5 is larger than the input (None, 3, 3, 1) with padding "
                               "'valid'", False),
    ("dilated kernel larger than input", layers([20, 4], {"type": "conv1d", "filters": 2,
                                                          "kernelSize": 3, "dilationRate": 10}),
     "$.layers[0].kernelSize", "kernel 21 (dilated) is larger than the input (None, 20, 4)", False),
    ("pool larger than input", layers([3, 3, 1], {"type": "maxPooling2d", "poolSize": 4}),
     "$.layers[0].poolSize", "pool 4x4 is larger than the input (None, 3, 3, 1)", False),
    ("strides with dilation", layers([9, 9, 1], {"type": "conv2d", "filters": 1, "kernelSize": 3,
                                                 "strides": 2, "dilationRate": 2}),
     "$.layers[0].strides", "cannot combine strides > 1 with dilationRate > 1", False),
    ("batch-norm axis 0", layers([4], {"type": "batchNormalization", "axis": 0}),
     "$.layers[0].axis", "axis 0 is not a feature axis of the input (None, 4)", False),
    ("identity on a non-square kernel", layers([64], {"type": "dense", "units": 3,
                                                      "kernelInitializer": "identity"}),
     "$.layers[0].kernelInitializer", "identity needs a square 2-D weight; this weight has shape "
                                      "[64, 3]", False),
    ("orthogonal bias", layers([64], {"type": "dense", "units": 3,
                                      "biasInitializer": "orthogonal"}),
     "$.layers[0].biasInitializer", "orthogonal needs a weight of at least 2 dimensions", False),
    ("duplicate layer names", layers([64], {**DENSE, "name": "a"}, {**DENSE, "name": "a"}),
     "$.layers[1].name", "duplicate layer name 'a' (also used by $.layers[0])", False),
]


@pytest.mark.parametrize("spec_path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_specs_are_valid(spec_path: Path) -> None:
    doc = json.loads(spec_path.read_text())
    assert check(doc) == []
    assert list(Draft202012Validator(schema()).iter_errors(doc)) == []
    assert validate_spec(spec_path) == []
    assert load_spec(spec_path).name == spec_path.stem


def test_shipped_specs_expected_shape() -> None:
    assert {p.stem for p in SHIPPED} >= {"digits_mlp", "mnist_cnn", "text_lstm"}
    text = load_spec(ROOT / "model_specs" / "text_lstm.json")
    assert text.input_dtype == "int32" and text.input_shape == (40,)
    # the vocabulary shared with data_modules/text.py: 97 symbols in and out
    assert text.layers[0]["inputDim"] == 97 and text.compiled.output_shape == (None, 97)
    mnist = load_spec(ROOT / "model_specs" / "mnist_cnn.json")
    assert mnist.input_shape == (28, 28, 1) and mnist.compiled.output_shape == (None, 10)


def test_schema_is_draft_2020_12_and_valid() -> None:
    Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize(("doc", "path", "reason", "by_schema"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_spec_reports_path_and_reason(doc: dict[str, Any], path: str, reason: str,
                                          by_schema: bool) -> None:
    before = copy.deepcopy(doc)
    problems = validate_spec(doc)
    assert doc == before, "validation must not change the spec"
    matching = [p for p in problems if p.path == path]
    assert matching, f"no problem at {path}; got {problems}"
    assert any(reason in p.message for p in matching), matching
    with pytest.raises(SpecError) as raised:
        load_spec(doc)
    assert Problem(path, matching[0].message) in raised.value.problems
    assert path in str(raised.value)
    # the shipped JSON Schema alone (any draft 2020-12 validator) catches the structural cases
    assert bool(list(Draft202012Validator(schema()).iter_errors(doc))) == by_schema


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "inputShape": [8, 8, 0],
        "layers": [{"type": "conv2d", "filters": 4, "kernelSize": 3, "activation": "rleu"},
                   {"type": "maxPoolling2d"},
                   {"type": "dense", "units": -1}],
        "loss": "crossentropy",
        "optimizer": "adm",
        "training": {"batchSize": 0, "localSteps": "5"},
    }
    paths = {p.path for p in validate_spec(doc)}
    assert paths == {"$.inputShape[2]", "$.layers[0].activation", "$.layers[1].type",
                     "$.layers[2].units", "$.loss", "$.optimizer", "$.training.batchSize",
                     "$.training.localSteps"}


def test_shape_problems_before_a_schema_problem_are_reported_too() -> None:
    doc = layers([8, 8, 1], DENSE, {"type": "flatten"}, {"type": "dense", "units": 0})
    problems = validate_spec(doc)
    assert {p.path for p in problems} == {"$.layers[0]", "$.layers[2].units"}


def test_shape_checks_continue_after_a_layer_whose_output_is_known() -> None:
    # dense on 4-D input is refused, but its output shape is known, so the reshape is checked too
    doc = layers([8, 8, 1], DENSE, {"type": "reshape", "targetShape": [5, 5]})
    assert [p.path for p in validate_spec(doc)] == ["$.layers[0]", "$.layers[1].targetShape"]


def test_unknown_name_without_close_match_lists_the_options() -> None:
    (problem,) = validate_spec(base(optimizer="zzzzz"))
    assert problem.message.startswith("unknown optimizer 'zzzzz'; expected one of: sgd, momentum")


def test_file_problems(tmp_path: Path) -> None:
    assert validate_spec(tmp_path / "nope.json") == [
        Problem("$", f"file not found: {tmp_path / 'nope.json'}")]
    bad = tmp_path / "bad.json"
    bad.write_text('{"inputShape": [64],\n "layers": [}')
    (problem,) = validate_spec(bad)
    assert problem.path == "$" and "not valid JSON" in problem.message and "line 2" in \
        problem.message
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert "must be a JSON object" in validate_spec(listed)[0].message


def test_layer_types_in_schema_match_the_registry() -> None:
    assert set(enum("layerType")) == set(KINDS)
    for kind in KINDS.values():
        assert kind.schema_def in schema()["$defs"]


def test_schema_training_defaults_match_training_config() -> None:
    d = TrainingConfig()
    assert defaults("training") == {"batchSize": d.batch_size, "localSteps": d.local_steps,
                                    "seed": d.seed}
    chunk = schema()["$defs"]["training"]["properties"]["validation"]["properties"]["chunkSize"]
    assert chunk["default"] == d.validation_chunk_size
