"""`wnn export`: a run's checkpoint as a TF.js artifact that TF.js itself loads, with the weights
the server held; a state dir without a checkpoint is a clear error."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.serve_cli import (
    DIGITS_DATA,
    DIGITS_SPEC,
    ROOT,
    WNN,
    ServeProcess,
    start_serve,
    train,
)

CLIENT_DIR = ROOT / "client_js"

# Loads model.json + weights.bin with TF.js (tf.io.fromMemory) and prints every weight tensor
# (name, shape, values) and the output shape of a prediction, as JSON.
LOADER = """
const { createRequire } = require('node:module');
const fs = require('node:fs');
const path = require('node:path');
const [clientDir, artifactDir] = process.argv.slice(2);
const tf = createRequire(path.join(clientDir, 'package.json'))('@tensorflow/tfjs');
(async () => {
  const modelJson = JSON.parse(fs.readFileSync(path.join(artifactDir, 'model.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(artifactDir, modelJson.weightsManifest[0].paths[0]));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
  const inputShape = model.inputs[0].shape.map((d) => (d === null ? 2 : d));
  const output = model.predict(tf.zeros(inputShape));
  const weights = model.weights.map((w) => ({
    name: w.originalName, shape: w.shape, values: Array.from(w.read().dataSync()) }));
  process.stdout.write(JSON.stringify({ weights, outputShape: output.shape }));
})().catch((err) => { console.error(err); process.exit(1); });
"""


@pytest.mark.e2e
async def test_export_loads_in_tfjs_with_the_served_weights(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    if shutil.which("node") is None or not (CLIENT_DIR / "node_modules").is_dir():
        pytest.skip("needs node and client_js/node_modules (npm ci)")
    state, out = tmp_path / "state", tmp_path / "export"
    served = start_serve(str(DIGITS_SPEC), "--data", str(DIGITS_DATA), "--state-dir", str(state))
    processes.append(served)
    _, served_weights = await train(served.url, updates=3)
    assert served.stop(signal.SIGTERM) == 0

    done = subprocess.run([str(WNN), "export", str(state), str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "model.json").is_file() and (out / "weights.bin").is_file()

    loader = tmp_path / "load.cjs"
    loader.write_text(LOADER)
    loaded = subprocess.run(["node", str(loader), str(CLIENT_DIR), str(out)], capture_output=True,
                            text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    result = json.loads(loaded.stdout)
    manifest = json.loads((out / "model.json").read_text())["weightsManifest"][0]["weights"]
    assert [w["shape"] for w in result["weights"]] == [m["shape"] for m in manifest]
    flat = np.concatenate([np.asarray(w["values"], dtype=np.float32) for w in result["weights"]])
    np.testing.assert_array_equal(flat, served_weights)
    assert result["outputShape"][0] == 2


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_export_without_a_checkpoint_is_a_clear_error(tmp_path: Path, make: str) -> None:
    state = tmp_path / "state"
    if make == "empty":
        state.mkdir()
    done = subprocess.run([str(WNN), "export", str(state), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    expected = "holds no checkpoint" if make == "empty" else "no such state directory"
    assert expected in done.stderr, done.stderr
    assert not (tmp_path / "out" / "model.json").exists()
