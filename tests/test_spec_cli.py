"""``wnn validate``: the summary for a valid spec (exit 0), every problem with its path (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from webnn.spec import load_spec
from webnn.spec.commands import validate

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str):
    return CliRunner().invoke(validate, list(args))


def test_valid_spec_prints_summary_and_settings() -> None:
    result = run(str(ROOT / "model_specs" / "digits_mlp.json"))
    assert result.exit_code == 0, result.output
    assert load_spec(ROOT / "model_specs" / "digits_mlp.json").compiled.summary() in result.output
    assert "Input: [64] float32" in result.output
    assert ("Loss: sparseCategoricalCrossentropy; optimizer: adam (learning rate 0.01); "
            "metrics: accuracy") in result.output
    assert "Training: batch size 32, 5 local steps per task, seed 0" in result.output
    assert "Validation: every 10 merges and every 5 s, chunks of 256" in result.output
    assert result.output.rstrip().endswith("digits_mlp.json: valid")


def test_every_shipped_spec_validates() -> None:
    for path in sorted((ROOT / "model_specs").glob("*.json")):
        result = run(str(path))
        assert result.exit_code == 0, result.output
        assert "Total params:" in result.output


def test_bad_spec_lists_every_problem(tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({
        "inputShape": [8, 8, 1],
        "layers": [{"type": "dense", "units": 10, "activation": "rleu"},
                   {"type": "conv2d", "filters": 0, "kernelSize": 3}],
        "loss": "sparse_categorical_crossentropy"}))
    result = run(str(spec))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"{spec}: 4 problems"
    assert lines[1:] == [
        "  $.layers[0].activation: unknown activation 'rleu' (did you mean 'relu'?)",
        "  $.layers[1].filters: must be a positive integer, got 0",
        "  $.loss: unknown loss 'sparse_categorical_crossentropy' (did you mean "
        "'sparseCategoricalCrossentropy'?)",
        "  $.layers[0]: dense needs 2-D input (batch, features) or 3-D input (batch, steps, "
        "features); it gets 4-D input (None, 8, 8, 1); add {\"type\": \"flatten\"} before it",
    ]


def test_shape_problem_alone(tmp_path: Path) -> None:
    spec = tmp_path / "shape.json"
    spec.write_text(json.dumps({"inputShape": [64], "loss": "meanSquaredError", "layers": [
        {"type": "reshape", "targetShape": [7, 9]}]}))
    result = run(str(spec))
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{spec}: 1 problem",
        "  $.layers[0].targetShape: target shape [7, 9] holds 63 elements but the input "
        "(None, 64) holds 64 per example"]


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    result = run(str(tmp_path / "missing.json"))
    assert result.exit_code == 1
    assert f"$: file not found: {tmp_path / 'missing.json'}" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = run(str(broken))
    assert result.exit_code == 1 and "not valid JSON" in result.output


def test_tfjs_model_json(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "model_specs" / "mnist_cnn.json")
    (tmp_path / "model.json").write_text(json.dumps(spec.compiled.model_json()))
    (tmp_path / "weights.bin").write_bytes(
        spec.compiled.layout.to_bytes(spec.compiled.initial_weights(0)))
    result = run(str(tmp_path / "model.json"))
    assert result.exit_code == 0, result.output
    assert "Total params: 5,258" in result.output
