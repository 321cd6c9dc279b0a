"""The shipped data modules: digits (real scikit-learn data), mnist (IDX/npz files), text."""

from __future__ import annotations

import gzip
import struct
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from webnn.data import DataModuleError, check_dataset, import_data_module, load_data_module
from webnn.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "data_modules" / "digits.py")
MNIST = str(ROOT / "data_modules" / "mnist.py")
TEXT = str(ROOT / "data_modules" / "text.py")


# digits --------------------------------------------------------------------------------------

def test_digits_loads_the_real_data() -> None:
    data = load_data_module(DIGITS, {})
    assert data.num_train + data.num_validation == 1797
    assert data.num_validation == pytest.approx(0.2 * 1797, abs=10)
    assert data.example_shape == (64,) and data.x_dtype == np.float32
    assert data.y_shape == () and data.y_dtype == np.int32
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert set(np.unique(data.y_val)) == set(range(10))
    # stratified: every class is split in the same proportion (to rounding)
    counts_train = np.bincount(data.y_train, minlength=10)
    counts_val = np.bincount(data.y_val, minlength=10)
    np.testing.assert_allclose(counts_val / (counts_train + counts_val), 0.2, atol=0.01)


def test_digits_split_is_fixed_and_configurable() -> None:
    a, b = load_data_module(DIGITS, {}), load_data_module(DIGITS, {})
    np.testing.assert_array_equal(a.x_val, b.x_val)
    small = load_data_module(DIGITS, {"validation_fraction": "0.1"})
    assert small.num_validation == pytest.approx(180, abs=5)
    other = load_data_module(DIGITS, {"split_seed": "1"})
    assert not np.array_equal(other.y_val, a.y_val)
    # no example is in both parts: compare rows as bytes
    train_rows = {row.tobytes() for row in a.x_train}
    overlap = sum(row.tobytes() in train_rows for row in a.x_val)
    assert overlap <= 5  # the data set itself holds a few duplicate images


def test_digits_rejects_a_bad_fraction() -> None:
    with pytest.raises(DataModuleError, match="validation_fraction must be in \\(0, 1\\), got 1.5"):
        load_data_module(DIGITS, {"validation_fraction": "1.5"})


def test_digits_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(DataModuleError, match="needs scikit-learn, which is not installed: "
                                              "pip install webnn\\[data\\]"):
        load_data_module(DIGITS, {})


# mnist ---------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": (np.arange(n_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": (np.arange(n_test) * 3 % 10).astype(np.uint8)}


NAMES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def write_idx(directory: Path, arrays: dict[str, np.ndarray], gz: bool = False) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


def assert_mnist(data, arrays: dict[str, np.ndarray]) -> None:
    assert data.example_shape == (28, 28, 1) and data.x_dtype == np.float32
    assert data.y_dtype == np.int32
    np.testing.assert_allclose(data.x_train[..., 0], arrays["x_train"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_val, arrays["y_test"])
    assert data.x_val.min() >= 0.0 and data.x_val.max() <= 1.0


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path: Path, gz: bool) -> None:
    arrays = fake_mnist()
    write_idx(tmp_path / "mnist", arrays, gz=gz)
    assert_mnist(load_data_module(MNIST, {"path": str(tmp_path / "mnist")}), arrays)


def test_mnist_from_npz_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = fake_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv("WEBNN_MNIST_PATH", str(tmp_path / "mnist.npz"))
    data = load_data_module(MNIST, {"validation_limit": "2"})
    assert data.num_validation == 2
    np.testing.assert_array_equal(data.y_val, arrays["y_test"][:2])


def test_mnist_dotted_file_names(tmp_path: Path) -> None:
    arrays = fake_mnist()
    write_idx(tmp_path, arrays)
    for name in NAMES.values():
        (tmp_path / name).rename(tmp_path / name.replace("-idx", ".idx"))
    assert_mnist(load_data_module(MNIST, {"path": str(tmp_path)}), arrays)


def test_mnist_absent_files_are_listed(tmp_path: Path) -> None:
    write_idx(tmp_path, fake_mnist())
    (tmp_path / NAMES["y_test"]).unlink()
    (tmp_path / NAMES["x_test"]).unlink()
    with pytest.raises(DataModuleError, match=f"MNIST files not found in {tmp_path}: "
                                              "t10k-images-idx3-ubyte\\[.gz\\], "
                                              "t10k-labels-idx1-ubyte\\[.gz\\]"):
        load_data_module(MNIST, {"path": str(tmp_path)})


def test_mnist_without_a_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WEBNN_MNIST_PATH", raising=False)
    with pytest.raises(DataModuleError, match="no MNIST path: pass --data-option path="):
        load_data_module(MNIST, {})
    with pytest.raises(DataModuleError, match="is neither a directory nor an .npz file"):
        load_data_module(MNIST, {"path": str(tmp_path / "missing")})
    with pytest.raises(DataModuleError, match="MNIST file not found: .*missing.npz"):
        load_data_module(MNIST, {"path": str(tmp_path / "missing.npz")})


def test_mnist_truncated_or_foreign_files(tmp_path: Path) -> None:
    write_idx(tmp_path, fake_mnist())
    labels = tmp_path / NAMES["y_train"]
    labels.write_bytes(labels.read_bytes()[:-2])
    with pytest.raises(DataModuleError, match="shape \\(6,\\) needs 14 bytes, the file has 12"):
        load_data_module(MNIST, {"path": str(tmp_path)})
    labels.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataModuleError, match="is not an IDX file \\(bad magic number 504b0304\\)"):
        load_data_module(MNIST, {"path": str(tmp_path)})


def test_mnist_npz_with_missing_arrays(tmp_path: Path) -> None:
    arrays = fake_mnist()
    del arrays["y_test"]
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(DataModuleError, match="lacks arrays y_test \\(it holds "):
        load_data_module(MNIST, {"path": str(tmp_path / "m.npz")})


# text ----------------------------------------------------------------------------------------

SAMPLE = "The quick brown fox jumps over the lazy dog.\nPack my box with five dozen jugs!\n" * 4


def text_module():
    return import_data_module(TEXT)[0]


def test_text_vocabulary_mapping() -> None:
    text = text_module()
    assert text.VOCABULARY_SIZE == 97 == len(text.vocabulary())
    encoded = text.encode("A a\n~\tß\r\n")
    np.testing.assert_array_equal(encoded, [35, 2, 67, 1, 96, 2, 0, 1])
    assert text.decode(text.encode("Hello, world!\n")) == "Hello, world!\n"


def test_text_windows_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text(SAMPLE)
    data = load_data_module(TEXT, {"path": str(path), "seq_len": "10",
                                   "validation_fraction": "0.25"})
    text = text_module()
    tokens = text.encode(SAMPLE)
    split = len(tokens) - len(tokens) // 4
    assert data.example_shape == (10,) and data.x_dtype == np.int32 and data.y_dtype == np.int32
    assert data.num_train == split - 10
    assert data.num_validation == len(tokens) - split - 10
    for batch in islice(data.train_batches(8, seed=1), 5):
        assert batch.x.shape == (8, 10) and batch.y.shape == (8,)
        for row, label in zip(batch.x, batch.y, strict=True):
            start = _find(tokens[:split], row)
            assert tokens[start + 10] == label  # y is the character after the window


def _find(tokens: np.ndarray, window: np.ndarray) -> int:
    view = np.lib.stride_tricks.sliding_window_view(tokens, len(window))
    hits = np.flatnonzero((view == window).all(axis=1))
    assert hits.size, "window not in the training text"
    return int(hits[0])


def test_text_validation_covers_the_held_out_text_once(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text(SAMPLE)
    data = load_data_module(TEXT, {"path": str(path), "seq_len": "10"})
    text = text_module()
    tokens = text.encode(SAMPLE)
    split = len(tokens) - len(tokens) // 10
    chunks = list(data.validation_chunks(7))
    x = np.concatenate([c.x for c in chunks])
    y = np.concatenate([c.y for c in chunks])
    assert len(y) == data.num_validation
    np.testing.assert_array_equal(y, tokens[split + 10:])
    np.testing.assert_array_equal(x[:, 0], tokens[split:len(tokens) - 10])
    limited = load_data_module(TEXT, {"path": str(path), "seq_len": "10",
                                      "validation_limit": "5"})
    assert sum(len(c) for c in limited.validation_chunks(3)) == 5


def test_text_batches_are_deterministic_and_resumable(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text(SAMPLE)
    data = load_data_module(TEXT, {"path": str(path), "seq_len": "12"})
    whole = list(islice(data.train_batches(16, seed=9), 6))
    resumed = list(islice(data.train_batches(16, seed=9, start=4), 2))
    for a, b in zip(whole[4:], resumed, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)


def test_text_errors(tmp_path: Path) -> None:
    with pytest.raises(DataModuleError, match="text file not found: .*nothing.txt"):
        load_data_module(TEXT, {"path": str(tmp_path / "nothing.txt")})
    with pytest.raises(DataModuleError, match="give exactly one of the options path"):
        load_data_module(TEXT, {})
    short = tmp_path / "short.txt"
    short.write_text("tiny text")
    with pytest.raises(DataModuleError, match="holds 9 characters; with seq_len 40 and "
                                              "validation_fraction 0.1 both parts need 41"):
        load_data_module(TEXT, {"path": str(short)})
    with pytest.raises(DataModuleError, match="option seq_len must be >= 1, got 0"):
        load_data_module(TEXT, {"path": str(short), "seq_len": "0"})


# agreement with the shipped specs ------------------------------------------------------------

def test_mnist_fits_the_shipped_cnn_spec(tmp_path: Path) -> None:
    write_idx(tmp_path, fake_mnist())
    data = load_data_module(MNIST, {"path": str(tmp_path)})
    assert check_dataset(data, load_spec(ROOT / "model_specs" / "mnist_cnn.json")) == []


def test_text_vocabulary_agrees_with_the_shipped_lstm_spec(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "model_specs" / "text_lstm.json")
    text = text_module()
    embedding = next(layer for layer in spec.source["layers"] if layer["type"] == "embedding")
    assert embedding["inputDim"] == text.VOCABULARY_SIZE
    assert spec.compiled.output_shape == (None, text.VOCABULARY_SIZE)
    path = tmp_path / "book.txt"
    path.write_text(SAMPLE * 3 + "naïve café ☕\ttab\r\n")
    data = load_data_module(TEXT, {"path": str(path), "seq_len": str(spec.input_shape[0])})
    assert check_dataset(data, spec) == []
