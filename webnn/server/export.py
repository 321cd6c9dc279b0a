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
from webnn.server.wire import dumps
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
    # strict JSON: a non-finite figure in the metadata is null, never NaN/Infinity
    write_file_atomic(target, dumps(document).encode())
    return [out_dir / "weights.bin", target]


def export_tfjs(spec: Any, weights: np.ndarray, out_dir: Path,
                metadata: dict | None = None) -> list[Path]:
    """Write `spec`'s topology with `weights` as a TF.js artifact in `out_dir`. `metadata` (the
    run's end: see `final_metadata`) goes to ``userDefinedMetadata.webnn`` of the model.json,
    where TF.js keeps it (`model.getUserDefinedMetadata()`)."""
    layout = spec.compiled.layout
    layout.check(weights)
    document = model_json(spec)
    if metadata is not None:
        document["userDefinedMetadata"] = {"webnn": metadata}
    return write_artifact(document, layout, weights, out_dir)


def final_metadata(history: list[dict], *, end_reason: str | None, version: int, steps: int,
                   merges: int) -> dict:
    """The ``webnn`` block of a final export: how the run ended and what its weights are worth.

    ``{"final": true, "endReason", "version", "steps", "merges", "evaluated", "validated",
    "valLoss", "valAccuracy", "lastValidated"}``: `evaluated` says whether these very weights
    (this `version`) were evaluated, `validated` whether that evaluation reached its quorum;
    `lastValidated` is the newest validated evaluation (``{"version", "valLoss",
    "valAccuracy"}``, null if none), the run's result when the final one is missing.
    """
    own = next((h for h in reversed(history)
                if h.get("version") == version and h.get("evaluated", True)), None)
    last = next((h for h in reversed(history)
                 if h.get("validated") and h.get("evaluated", True)), None)
    return {
        "final": True, "endReason": end_reason, "version": version, "steps": steps,
        "merges": merges, "evaluated": own is not None,
        "validated": bool(own is not None and own.get("validated")),
        "valLoss": None if own is None else own.get("valLoss"),
        "valAccuracy": None if own is None else own.get("valAccuracy"),
        "lastValidated": None if last is None else {
            "version": last["version"], "valLoss": last.get("valLoss"),
            "valAccuracy": last.get("valAccuracy")},
    }


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
