"""The 8x8 handwritten digits bundled with scikit-learn: 1797 images of 10 classes.

x: float32, shape (64,), pixel intensities scaled from 0..16 to [0, 1]; y: int32 class 0..9.
Split: stratified and seeded, `validation_fraction` of each class goes to validation (rounded).

Options: ``validation_fraction`` (default 0.2), ``split_seed`` (default 0).
Needs scikit-learn: ``pip install webnn[data]``.
"""

from __future__ import annotations

import numpy as np

from webnn.data import ArrayDataset, DataModuleError

PIXEL_MAX = 16.0
"""Largest pixel value of the scikit-learn digits."""


def load(validation_fraction: float = 0.2, split_seed: int = 0) -> ArrayDataset:
    if not 0.0 < validation_fraction < 1.0:
        raise DataModuleError(f"option validation_fraction must be in (0, 1), got "
                              f"{validation_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataModuleError("the digits data module needs scikit-learn, which is not installed: "
                              "pip install webnn[data]") from exc
    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(PIXEL_MAX)).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int32)
    train, val = stratified_split(y, validation_fraction, split_seed)
    return ArrayDataset(x[train], y[train], x[val], y[val])


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): round(fraction * n_c) random examples of each class c go to
    validation; both index sets are shuffled with the same seeded generator."""
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(fraction * len(members)))
        val_parts.append(members[:cut])
        train_parts.append(members[cut:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(val_parts))
