"""Export a model as a TF.js layers-model artifact: ``model.json`` + ``weights.bin``.

`tf.loadLayersModel("file://.../model.json")` (or an http URL) loads the result. Files are written
atomically (temporary file, fsync, rename), weights first so a reader never sees a model.json whose
weights are missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from webnn.server.store import StateError, Store, write_file_atomic
from webnn.weights import WeightLayout


def model_json(spec: Any, weights_path: str = "weights.bin") -> dict:
    """The TF.js ``model.json`` of `spec` with all weights in `weights_path`."""
    document = spec.compiled.model_json(weights_path)
    document.setdefault("format", "layers-model")
    document.setdefault("generatedBy", "webnn")
    return document


def write_artifact(
    document: dict, layout: WeightLayout, weights: np.ndarray, out_dir: Path
) -> list[Path]:
    """Write `document` (a model.json) and `weights` into `out_dir`; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_file_atomic(out_dir / "weights.bin", layout.to_bytes(weights))
    target = out_dir / "model.json"
    write_file_atomic(target, json.dumps(document).encode())
    return [out_dir / "weights.bin", target]


def export_tfjs(spec: Any, weights: np.ndarray, out_dir: Path) -> list[Path]:
    """Write `spec`'s topology with `weights` as a TF.js artifact in `out_dir`."""
    layout = spec.compiled.layout
    layout.check(weights)
    return write_artifact(model_json(spec), layout, weights, out_dir)


def export_state_dir(state_dir: Path, out_dir: Path) -> list[Path]:
    """Export the current checkpoint of a state dir (no spec needed: the checkpoint holds it)."""
    store = Store(Path(state_dir))
    directory = store.current_dir()
    if directory is None:
        raise StateError(f"{state_dir} holds no checkpoint (no CURRENT file)")
    document = json.loads((directory / "model.json").read_text())
    layout = WeightLayout.from_manifest(document["weightsManifest"])
    weights = layout.from_bytes((directory / "weights.bin").read_bytes())
    document["weightsManifest"] = layout.manifest_json("weights.bin")
    return write_artifact(document, layout, weights, out_dir)
