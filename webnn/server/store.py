"""The state directory: atomic checkpoints of weights, counters, history and strategy state.

Layout::

    state_dir/CURRENT                      one line: "checkpoints/00000042"
    state_dir/checkpoints/00000042/        one complete checkpoint
        weights.bin                        current weights, TF.js weights.bin layout
        model.json                         TF.js model.json (topology + manifest), for export
        state.json                         counters, history, data position, evaluation state, ...
        strategy.npz                       the merge strategy's state arrays
    state_dir/final/                       the final model (model.json + weights.bin) at the end

A checkpoint is written into a temporary directory (every file fsynced), renamed into place, and
only then is CURRENT replaced (temporary file, fsync, rename, fsync of the directory). A crash at
any point leaves CURRENT naming one complete checkpoint; two checkpoints are never mixed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from webnn.weights import WeightLayout

KEEP_CHECKPOINTS = 2


class StateError(ValueError):
    """The state directory cannot be used (unreadable, or written for another model)."""


def layout_fingerprint(layout: WeightLayout) -> str:
    """SHA-256 of the weight manifest (names, shapes, dtypes in order)."""
    text = json.dumps(layout.manifest(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Checkpoint:
    """What a checkpoint holds; `state` is JSON-serialisable."""

    weights: np.ndarray
    state: dict
    model_json: dict
    strategy_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` via a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Store:
    """Checkpoints in `root` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"

    def current_dir(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        target = self.root / pointer.read_text().strip()
        if not target.is_dir():
            raise StateError(f"{pointer} names {target}, which does not exist")
        return target

    def save(self, checkpoint: Checkpoint, layout: WeightLayout) -> Path:
        """Write `checkpoint` as a new directory and switch CURRENT to it; returns the directory."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        existing = sorted(p.name for p in self.checkpoints.iterdir() if p.name.isdigit())
        number = int(existing[-1]) + 1 if existing else 1
        name = f"{number:08d}"
        tmp = self.checkpoints / f".tmp-{name}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_synced(tmp / "weights.bin", layout.to_bytes(checkpoint.weights))
        _write_synced(tmp / "model.json", json.dumps(checkpoint.model_json).encode())
        _write_synced(tmp / "state.json", json.dumps(checkpoint.state, indent=1).encode())
        arrays = io.BytesIO()
        np.savez(arrays, **checkpoint.strategy_arrays)  # type: ignore[arg-type]  # names -> arrays
        _write_synced(tmp / "strategy.npz", arrays.getvalue())
        _fsync_dir(tmp)
        final = self.checkpoints / name
        os.replace(tmp, final)
        _fsync_dir(self.checkpoints)
        write_file_atomic(self.root / "CURRENT", f"checkpoints/{name}\n".encode())
        for old in existing[:-(KEEP_CHECKPOINTS - 1) or None]:
            shutil.rmtree(self.checkpoints / old, ignore_errors=True)
        return final

    def load(self, layout: WeightLayout) -> Checkpoint | None:
        """The current checkpoint, or None for a fresh state dir.

        Raises `StateError` when the checkpoint was written for a different weight layout.
        """
        directory = self.current_dir()
        if directory is None:
            return None
        try:
            state = json.loads((directory / "state.json").read_text())
            model_json = json.loads((directory / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StateError(f"cannot read checkpoint {directory}: {error}") from None
        expected = layout_fingerprint(layout)
        if state.get("fingerprint") != expected:
            raise StateError(self._mismatch(directory, state, layout))
        weights = layout.from_bytes((directory / "weights.bin").read_bytes())
        with np.load(directory / "strategy.npz") as npz:
            arrays = {key: npz[key] for key in npz.files}
        return Checkpoint(weights=weights, state=state, model_json=model_json,
                          strategy_arrays=arrays)

    @staticmethod
    def _mismatch(directory: Path, state: dict, layout: WeightLayout) -> str:
        stored = WeightLayout.from_manifest(state.get("manifest", []))
        detail = ""
        for index, (old, new) in enumerate(zip(stored.specs, layout.specs, strict=False)):
            if old != new:
                detail = (f"; first difference at weight {index}: state has {old.name} "
                          f"{list(old.shape)}, spec has {new.name} {list(new.shape)}")
                break
        else:
            if len(stored) != len(layout):
                detail = f"; state has {len(stored)} weights, spec has {len(layout)}"
        return (f"state dir {directory.parent.parent} holds a model with a different weight layout "
                f"({len(stored)} tensors, {stored.size} floats) than the spec "
                f"({len(layout)} tensors, {layout.size} floats){detail}. Use another state dir "
                f"or the original spec.")
