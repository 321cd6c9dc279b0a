"""Keras interop through the real `tensorflowjs` converters (the ``keras`` extra, `.venv-keras`).

A small Keras model built here goes through `wnn import-keras`, a `wnn serve` run (with and
without Node workers training it) and `wnn export --format keras`; weights are compared bit for
bit and predictions against TF.js itself. Skipped where tensorflowjs is not installed (the main
venv).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")  # see webnn.keras_interop.converters
pytest.importorskip("tensorflowjs", reason="needs the keras extra: pip install 'webnn[keras]'")
keras = pytest.importorskip("keras")

from support.processes import stop_process  # noqa: E402

from webnn.keras_interop import (  # noqa: E402
    KerasInteropError,
    UnsupportedModelError,
    export_keras,
    import_keras,
)
from webnn.spec import load_spec  # noqa: E402
from webnn.weights import WeightLayout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WNN = BIN / "wnn"
CLIENT_DIR = ROOT / "client_js"
DIGITS_DATA = ROOT / "data_modules" / "digits.py"

# Loads a TF.js artifact with tf.loadLayersModel (pure-JS cpu backend) and prints the model's
# predictions for the float32 rows in the given .bin file (64 values per row), as JSON.
PREDICT = """
const { createRequire } = require('node:module');
const fs = require('node:fs');
const path = require('node:path');
const [clientDir, artifactDir, inputPath] = process.argv.slice(2);
console.log = () => {};
console.warn = () => {};
const tf = createRequire(path.join(clientDir, 'package.json'))('@tensorflow/tfjs');
(async () => {
  await tf.setBackend('cpu');
  const modelJson = JSON.parse(fs.readFileSync(path.join(artifactDir, 'model.json'), 'utf8'));
  const chunks = modelJson.weightsManifest.flatMap((g) => g.paths)
    .map((p) => fs.readFileSync(path.join(artifactDir, p)));
  const bin = Buffer.concat(chunks);
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const weightSpecs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
  const raw = fs.readFileSync(inputPath);
  const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const y = model.predict(tf.tensor2d(x, [x.length / 64, 64]));
  process.stdout.write(JSON.stringify({ shape: y.shape, values: Array.from(y.dataSync()) }));
})().catch((err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); });
"""


def digits_model(seed: int = 3) -> Any:
    """A small pretrained-style Keras 3 model for scikit-learn's 8x8 digits (64 -> 10 classes),
    with batch normalisation so non-trainable weights (moving statistics) go through too."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(24, activation="relu", name="hidden"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Dropout(0.1, name="drop"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ], name="keras_digits")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Non-trivial moving statistics, so a mix-up of BN weights would show.
    norm = model.get_layer("norm")
    rng = np.random.default_rng(seed)
    norm.moving_mean.assign(rng.normal(size=24).astype(np.float32))
    norm.moving_variance.assign(rng.uniform(0.5, 2.0, size=24).astype(np.float32))
    return model


def keras_weights(model: Any) -> dict[str, np.ndarray]:
    """Weights by TF.js name (``layer/weight``)."""
    return {f"{layer.name}/{w.name}": np.asarray(w.numpy())
            for layer in model.layers for w in layer.weights}


def rows(n: int = 12, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64), dtype=np.float32)


class Serve:
    """A `wnn serve` subprocess on a free loopback port; a thread keeps reading its output (its
    local workers log there too) so the pipe never fills."""

    def __init__(self, spec: Path, state: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [str(WNN), "serve", str(spec), "--data", str(DIGITS_DATA), "--port", "0",
             "--state-dir", str(state), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.url = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(r"volunteer page:\s+(\S+)", line)
            if found:
                self.url = found.group(1).rstrip("/") + "/"
                break
        assert self.url, "wnn serve printed no URL:\n" + "".join(self.lines)
        self.reader = threading.Thread(target=self.lines.extend, args=(self.process.stdout,),
                                       daemon=True)
        self.reader.start()

    def status(self) -> dict:
        with urllib.request.urlopen(self.url + "api/v1/status", timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> str:
        """SIGTERM (the server writes its final checkpoint), then its whole output."""
        stop_process(self.process, timeout=120)
        self.reader.join(timeout=30)
        return "".join(self.lines)


def wnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(WNN), *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)


def checkpoint_weights(state: Path) -> tuple[WeightLayout, np.ndarray]:
    directory = state / (state / "CURRENT").read_text().strip()
    document = json.loads((directory / "model.json").read_text())
    layout = WeightLayout.from_manifest(document["weightsManifest"])
    return layout, layout.from_bytes((directory / "weights.bin").read_bytes())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The model, and the same model saved as .keras (Keras 3) and .h5 (HDF5)."""
    directory = tmp_path_factory.mktemp("keras")
    model = digits_model()
    model.save(directory / "digits.keras")
    model.save(directory / "digits.h5")
    return {"model": model, "keras": directory / "digits.keras", "h5": directory / "digits.h5"}


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_import_carries_topology_settings_and_weights_bit_for_bit(
        saved: dict[str, Any], tmp_path: Path, kind: str) -> None:
    result = import_keras(saved[kind], tmp_path / "artifact")
    spec = load_spec(result.model_json)
    assert spec.name == "keras_digits"
    assert [layer.name for layer in spec.compiled.layers] == ["hidden", "norm", "drop", "out"]
    assert spec.loss == "sparseCategoricalCrossentropy"
    assert spec.optimizer == "adam" and spec.learning_rate == pytest.approx(0.01)
    initial = spec.compiled.layout.views(spec.compiled.initial_weights(0))
    expected = keras_weights(saved["model"])
    assert sorted(initial) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(initial[name], value, err_msg=name)
    assert {p.name for p in (tmp_path / "artifact").iterdir()} == {p.name for p in result.files}


def test_settings_override_the_keras_compile_settings(saved: dict[str, Any],
                                                     tmp_path: Path) -> None:
    # A learning rate alone keeps the Keras file's optimizer (adam here).
    result = import_keras(saved["h5"], tmp_path / "a", settings={
        "name": "pretrained", "optimizer": {"learningRate": 0.002},
        "training": {"batchSize": 16, "localSteps": 3}})
    spec = load_spec(result.model_json)
    assert (spec.name, spec.optimizer, spec.learning_rate) == ("pretrained", "adam", 0.002)
    assert (spec.training.batch_size, spec.training.local_steps) == (16, 3)
    with pytest.raises(UnsupportedModelError, match=r"\$\.webnn\.loss"):
        import_keras(saved["h5"], tmp_path / "b", settings={"loss": "nonsense"})
    assert not (tmp_path / "b").exists()


def test_round_trip_without_training_is_bit_exact(saved: dict[str, Any], tmp_path: Path) -> None:
    artifact, state = tmp_path / "artifact", tmp_path / "state"
    import_keras(saved["keras"], artifact)
    served = Serve(artifact / "model.json", state)
    output = served.stop()
    assert served.process.returncode == 0, output
    x = rows()
    expected = saved["model"].predict(x, verbose=0)
    for suffix in (".h5", ".keras"):
        out = tmp_path / f"exported{suffix}"
        result = export_keras(state, out)
        assert result.path == out and result.params == saved["model"].count_params()
        loaded = keras.models.load_model(out)
        got = keras_weights(loaded)
        for name, value in keras_weights(saved["model"]).items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{suffix}: {name}")
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_trained_model_exports_to_keras_predicting_like_tfjs(
        saved: dict[str, Any], tmp_path: Path) -> None:
    if shutil.which("node") is None or not (CLIENT_DIR / "node_modules").is_dir():
        pytest.skip("needs node and client_js/node_modules (npm ci)")
    artifact, state = tmp_path / "artifact", tmp_path / "state"
    done = wnn("import-keras", str(saved["h5"]), str(artifact), "--local-steps", "4")
    assert done.returncode == 0, done.stderr
    assert "hidden (Dense)" in done.stdout and "norm (BatchNormalization)" in done.stdout

    served = Serve(artifact / "model.json", state, "--local-workers", "2")
    try:
        deadline = time.monotonic() + 600  # guards against a hang only
        while served.status()["merges"] < 4:
            assert time.monotonic() < deadline, "no 4 merges within 600 s"
            assert served.process.poll() is None, served.stop()
            time.sleep(0.5)
    finally:
        output = served.stop()
    assert served.process.returncode == 0, output

    layout, trained = checkpoint_weights(state)
    initial = keras_weights(saved["model"])
    views = layout.views(trained)
    assert not np.array_equal(views["hidden/kernel"], initial["hidden/kernel"])  # it trained

    tfjs_dir, out = tmp_path / "tfjs", tmp_path / "trained.h5"
    for args in (("export", str(state), str(tfjs_dir)),
                 ("export", "--format", "keras", str(state), str(out))):
        done = wnn(*args)
        assert done.returncode == 0, done.stderr
    model = keras.models.load_model(out)
    for name, value in keras_weights(model).items():
        np.testing.assert_array_equal(value, views[name], err_msg=name)

    x = rows()
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    (tmp_path / "predict.cjs").write_text(PREDICT)
    ran = subprocess.run(["node", str(tmp_path / "predict.cjs"), str(CLIENT_DIR), str(tfjs_dir),
                          str(tmp_path / "x.bin")], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    tfjs = json.loads(ran.stdout)
    assert tfjs["shape"] == [len(x), 10]
    tfjs_predictions = np.asarray(tfjs["values"], dtype=np.float32).reshape(len(x), 10)
    np.testing.assert_allclose(model.predict(x, verbose=0), tfjs_predictions,
                               rtol=1e-5, atol=1e-6)


def test_layers_webnn_cannot_train_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(4, name="fine"),
        keras.layers.LayerNormalization(name="layer_norm"),
        keras.layers.Dense(4, kernel_regularizer="l2", name="regularised"),
        keras.layers.Dense(2, name="last"),
    ], name="mixed")
    source = tmp_path / "mixed.keras"
    model.save(source)
    out = tmp_path / "out"
    with pytest.raises(UnsupportedModelError) as caught:
        import_keras(source, out)
    named = {p.layer: p for p in caught.value.problems}
    assert set(named) == {"layer_norm", "regularised"}, caught.value
    assert named["layer_norm"].class_name == "LayerNormalization"
    assert "kernel_regularizer" in named["regularised"].message
    assert "layer 'layer_norm' (LayerNormalization)" in str(caught.value)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.keras"]  # no scratch left over


def test_a_layer_tfjs_cannot_build_is_named(tmp_path: Path) -> None:
    # Keras's default GRU (reset_after=True, cuDNN style) has no TF.js implementation.
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, name="recurrent"),
                              keras.layers.Dense(2, name="head")], name="gru")
    model.save(tmp_path / "gru.h5")
    with pytest.raises(UnsupportedModelError) as caught:
        import_keras(tmp_path / "gru.h5", tmp_path / "out")
    [problem] = caught.value.problems
    assert (problem.layer, problem.class_name) == ("recurrent", "GRU")
    assert "reset_after" in problem.message
    assert not (tmp_path / "out").exists()


def test_a_functional_model_is_refused_clearly(tmp_path: Path) -> None:
    inputs = keras.Input((8,))
    a = keras.layers.Dense(4, name="a")(inputs)
    b = keras.layers.Dense(4, name="b")(inputs)
    model = keras.Model(inputs, keras.layers.Concatenate(name="join")([a, b]), name="branches")
    source = tmp_path / "branches.h5"
    model.save(source)
    with pytest.raises(UnsupportedModelError, match="Sequential"):
        import_keras(source, tmp_path / "new" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branches.h5"]


def test_export_of_a_state_dir_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    with pytest.raises(KerasInteropError, match="no checkpoint"):
        export_keras(tmp_path / "state", tmp_path / "model.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
