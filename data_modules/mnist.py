"""MNIST from local files: the four standard IDX files (optionally gzipped) or one ``.npz``.

x: float32, shape (28, 28, 1), pixel intensities scaled from 0..255 to [0, 1]; y: int32 class 0..9.
Training data is the 60,000 training images, validation the 10,000 test images.

Options:
- ``path``: a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``; the
  ``train-images.idx3-ubyte`` spelling is accepted too), or an ``.npz`` file with arrays
  ``x_train``, ``y_train``, ``x_test``, ``y_test`` (as Keras' ``mnist.npz``). Default: the
  environment variable ``WEBNN_MNIST_PATH``.
- ``validation_limit``: use only the first N test images for validation (0, the default: all).

Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from webnn.data import ArrayDataset, DataModuleError

ENV_VAR = "WEBNN_MNIST_PATH"
PARTS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
IMAGE_SHAPE = (28, 28)
CLASSES = 10
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def load(path: str | None = None, validation_limit: int = 0) -> ArrayDataset:
    source = path or os.environ.get(ENV_VAR)
    if not source:
        raise DataModuleError(f"no MNIST path: pass --data-option path=DIR_OR_NPZ or set {ENV_VAR} "
                              "(a directory with the four IDX files, or an .npz)")
    if validation_limit < 0:
        raise DataModuleError(f"option validation_limit must be >= 0, got {validation_limit}")
    location = Path(source).expanduser()
    arrays = read_npz(location) if location.suffix == ".npz" else read_idx_dir(location)
    x_train, y_train = _images(arrays["x_train"], "x_train"), _labels(arrays["y_train"], "y_train")
    x_test, y_test = _images(arrays["x_test"], "x_test"), _labels(arrays["y_test"], "y_test")
    if validation_limit:
        x_test, y_test = x_test[:validation_limit], y_test[:validation_limit]
    return ArrayDataset(x_train, y_train, x_test, y_test)


def read_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    """The four IDX arrays of `directory`; a clear error lists the file names looked for."""
    if not directory.is_dir():
        raise DataModuleError(f"MNIST path {directory} is neither a directory nor an .npz file")
    arrays, missing = {}, []
    for key, stem in PARTS.items():
        candidates = [directory / f"{name}{gz}" for name in (stem, _dotted(stem))
                      for gz in ("", ".gz")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            missing.append(f"{stem}[.gz]")
            continue
        arrays[key] = read_idx(found)
    if missing:
        raise DataModuleError(f"MNIST files not found in {directory.resolve()}: "
                              f"{', '.join(missing)}")
    return arrays


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped if the name ends in .gz).

    Layout: magic bytes 0, 0, type, ndim; ndim big-endian uint32 sizes; the data, big-endian.
    Raises `DataModuleError` naming the file and the expected and found byte counts.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataModuleError(f"cannot read {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataModuleError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataModuleError(f"{path}: header needs {header} bytes, the file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataModuleError(f"{path}: shape {shape} needs {expected} bytes, the file has "
                              f"{len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataModuleError(f"MNIST file not found: {path.resolve()}")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in PARTS if k not in npz.files]
        if missing:
            raise DataModuleError(f"{path} lacks arrays {', '.join(missing)} (it holds "
                                  f"{', '.join(npz.files) or 'none'})")
        return {k: npz[k] for k in PARTS}


def _images(array: np.ndarray, name: str) -> np.ndarray:
    """(N, 28, 28[, 1]) uint8 0..255 (or floats in [0, 1]) -> float32 (N, 28, 28, 1) in [0, 1]."""
    if array.shape[1:] not in (IMAGE_SHAPE, (*IMAGE_SHAPE, 1)):
        raise DataModuleError(f"MNIST {name} has shape {array.shape}; expected (N, 28, 28)")
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / np.float32(255)
    elif array.dtype.kind == "f":
        scaled = array.astype(np.float32)
        if scaled.size and (scaled.min() < 0 or scaled.max() > 1):
            raise DataModuleError(f"MNIST {name} holds floats outside [0, 1]")
    else:
        raise DataModuleError(f"MNIST {name} has dtype {array.dtype}; expected uint8")
    return scaled.reshape(len(array), *IMAGE_SHAPE, 1)


def _labels(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataModuleError(f"MNIST {name} is {array.dtype} of shape {array.shape}; expected "
                              "integer labels of shape (N,)")
    if array.size and (array.min() < 0 or array.max() >= CLASSES):
        raise DataModuleError(f"MNIST {name} holds labels outside 0..{CLASSES - 1}")
    return array.astype(np.int32)


def _dotted(stem: str) -> str:
    """``train-images-idx3-ubyte`` -> ``train-images.idx3-ubyte`` (a common spelling)."""
    head, _, tail = stem.rpartition("-idx")
    return f"{head}.idx{tail}"
