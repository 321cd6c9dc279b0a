"""check_dataset: data against the model spec (input shape, labels vs output and loss, dtypes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from webnn.data import ArrayDataset, Batch, IterableDataset, check_dataset, load_data_module
from webnn.spec import load_spec


@dataclass
class Compiled:
    output_shape: tuple


@dataclass
class Training:
    batch_size: int = 4


@dataclass
class StandInSpec:
    """The four attributes check_dataset reads from a `webnn.spec.ModelSpec`."""

    input_shape: tuple
    loss: str
    compiled: Compiled
    training: Training = field(default_factory=Training)
    input_dtype: str | None = None  # read when present, as ModelSpec.input_dtype


def spec(input_shape: tuple = (4,), loss: str = "sparseCategoricalCrossentropy",
         output: tuple = (None, 3)) -> StandInSpec:
    return StandInSpec(input_shape, loss, Compiled(output))


def arrays(x_shape: tuple = (4,), y: np.ndarray | None = None, x_dtype=np.float32,
           n: int = 10) -> ArrayDataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, *x_shape)).astype(x_dtype)
    labels = np.arange(n, dtype=np.int32) % 3 if y is None else y
    return ArrayDataset(x[:8], labels[:8], x[8:], labels[8:])


def test_a_fitting_dataset_has_no_problems() -> None:
    assert check_dataset(arrays(), spec()) == []
    one_hot = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    assert check_dataset(arrays(y=one_hot), spec(loss="categoricalCrossentropy")) == []
    column = (np.arange(10, dtype=np.int32) % 3)[:, None]
    assert check_dataset(arrays(y=column), spec()) == []  # (N, 1) class indices
    regression = np.zeros((10, 3), np.float32)
    assert check_dataset(arrays(y=regression), spec(loss="meanSquaredError")) == []


def test_wrong_x_shape() -> None:
    assert check_dataset(arrays(x_shape=(5,)), spec()) == [
        "x: examples have shape (5,); the model's input shape is (4,) (spec inputShape)"]
    assert check_dataset(arrays(x_shape=(2, 2)), spec()) == [
        "x: examples have shape (2, 2); the model's input shape is (4,) (spec inputShape)"]
    assert check_dataset(arrays(x_shape=(7, 4)), spec(input_shape=(None, 4))) == []


def test_wrong_x_dtype() -> None:
    assert check_dataset(arrays(x_dtype=np.float64), spec()) == [
        "x: dtype float64; the model takes float32 (or int32 indices for embedding inputs): "
        "convert with x.astype(np.float32)"]


def test_x_dtype_against_the_spec_input_dtype() -> None:
    as_int = spec()
    as_int.input_dtype = "int32"
    assert check_dataset(arrays(), as_int) == [
        "x: dtype float32; the model's input dtype is int32 (spec inputDtype): convert with "
        "x.astype(np.int32)"]
    assert check_dataset(arrays(x_dtype=np.int32), as_int) == []


def test_labels_out_of_range() -> None:
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0, -1, 1], np.int32)
    assert check_dataset(arrays(y=labels), spec()) == [
        "y_train[3] = 3 is not a class of the output layer (0..2)",
        "y_val[0] = -1 is not a class of the output layer (0..2)"]
    many = np.full(10, 7, np.int32)
    assert check_dataset(arrays(y=many), spec())[0] == (
        "y_train[0] = 7 is not a class of the output layer (0..2) (8 examples in all)")


def test_sparse_loss_needs_int32_class_indices() -> None:
    as_int64 = np.arange(10, dtype=np.int64) % 3
    assert check_dataset(arrays(y=as_int64), spec()) == [
        "y: dtype int64; sparseCategoricalCrossentropy takes int32 class indices: convert with "
        "y.astype(np.int32)"]
    one_hot = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    assert check_dataset(arrays(y=one_hot), spec()) == [
        "y: labels have shape (3,); sparseCategoricalCrossentropy takes one class index per "
        "example, shape (), for the output shape (3,) (one-hot labels need "
        "categoricalCrossentropy)",
        "y: dtype float32; sparseCategoricalCrossentropy takes int32 class indices"]


def test_one_hot_width() -> None:
    narrow = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    assert check_dataset(arrays(y=narrow), spec(loss="categoricalCrossentropy")) == [
        "y: one-hot labels have width 2; the output layer has 3 units"]
    indices = np.arange(10, dtype=np.int32) % 3
    assert check_dataset(arrays(y=indices), spec(loss="categoricalCrossentropy")) == [
        "y: labels are class indices (shape ()), but categoricalCrossentropy takes one-hot labels "
        "of width 3: use sparseCategoricalCrossentropy or one-hot encode y",
        "y: dtype int32; categoricalCrossentropy takes float32 labels: convert with "
        "y.astype(np.float32)"]


def test_label_values_for_cross_entropy_and_regression_shapes() -> None:
    soft = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    soft[9, 0] = 1.5
    assert check_dataset(arrays(y=soft), spec(loss="categoricalCrossentropy")) == [
        "y_val[1] = 1.5 is outside [0, 1], the range of cross-entropy labels"]
    assert check_dataset(arrays(y=np.zeros((10, 2), np.float32)),
                         spec(loss="meanSquaredError")) == [
        "y: labels have shape (2,); meanSquaredError compares them with the model's output of "
        "shape (3,)"]


def test_non_finite_values() -> None:
    data = arrays()
    data.x_train[5, 2] = np.nan
    data.x_val[1, 0] = np.inf
    assert check_dataset(data, spec()) == ["x_train[5] holds NaN or infinity",
                                           "x_val[1] holds NaN or infinity"]


def test_negative_embedding_indices() -> None:
    data = arrays(x_dtype=np.int32)
    data.x_train[2, 0] = -4
    assert check_dataset(data, spec()) == [
        "x_train[2] holds a negative index (embedding inputs are indices >= 0)"]


def test_empty_validation_set() -> None:
    x = np.zeros((4, 4), np.float32)
    y = np.zeros(4, np.int32)
    data = ArrayDataset(x, y, x[:0], y[:0])
    assert check_dataset(data, spec()) == [
        "the validation set is empty: the server evaluates the model on it"]


def test_something_that_is_not_a_dataset() -> None:
    assert check_dataset((np.zeros(3), np.zeros(3)), spec()) == [
        "the dataset is a tuple; expected webnn.data.ArrayDataset or a subclass of "
        "webnn.data.IterableDataset"]


class Streamed(IterableDataset):
    """A streamed dataset whose batches can be made to disagree with what it declares."""

    def __init__(self, label: int = 1, x_width: int = 4, raise_in_train: bool = False) -> None:
        self.example_shape = (4,)
        self.x_dtype = np.dtype(np.float32)
        self.y_shape = ()
        self.y_dtype = np.dtype(np.int32)
        self.num_validation = 6
        self.label, self.x_width, self.raise_in_train = label, x_width, raise_in_train

    def _batch(self, n: int) -> Batch:
        return Batch(np.zeros((n, self.x_width), np.float32), np.full(n, self.label, np.int32))

    def train_batches(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        if self.raise_in_train:
            raise OSError("disk gone")
        while True:
            yield self._batch(batch_size)

    def validation_chunks(self, chunk_size: int) -> Iterator[Batch]:
        yield self._batch(min(chunk_size, 6))


def test_streamed_dataset_is_checked_through_its_first_batches() -> None:
    assert check_dataset(Streamed(), spec()) == []
    assert check_dataset(Streamed(label=5), spec()) == [
        "first training batch y[0] = 5 is not a class of the output layer (0..2) "
        "(4 examples in all)",
        "first validation chunk y[0] = 5 is not a class of the output layer (0..2) "
        "(4 examples in all)"]
    assert check_dataset(Streamed(x_width=3), spec())[0] == (
        "first training batch: x is float32 of shape (4, 3), but the dataset declares float32 "
        "examples of shape (4,)")
    assert check_dataset(Streamed(raise_in_train=True), spec()) == [
        "first training batch: reading it raised OSError: disk gone"]


def test_malformed_dataset_attributes() -> None:
    broken = Streamed()
    broken.example_shape = [4]
    broken.num_validation = -1
    assert check_dataset(broken, spec()) == [
        "dataset.example_shape must be a tuple of sizes, got [4]",
        "dataset.num_validation must be an integer >= 0, got -1"]


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy",
                                  "SparseCategoricalCrossentropy"])
def test_loss_name_spelling_does_not_matter(loss: str) -> None:
    assert check_dataset(arrays(y=np.full(10, 9, np.int32)), spec(loss=loss))[0].startswith(
        "y_train[0] = 9 is not a class")


# real specs ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def digits_spec_source() -> dict:
    return json.loads((ROOT / "model_specs" / "digits_mlp.json").read_text())


def test_digits_fit_the_shipped_digits_spec() -> None:
    digits = load_data_module(str(ROOT / "data_modules" / "digits.py"))
    assert check_dataset(digits, load_spec(ROOT / "model_specs" / "digits_mlp.json")) == []


def test_digits_against_specs_they_do_not_fit() -> None:
    digits = load_data_module(str(ROOT / "data_modules" / "digits.py"))
    source = digits_spec_source()
    source["inputShape"] = [63]
    assert check_dataset(digits, load_spec(source)) == [
        "x: examples have shape (64,); the model's input shape is (63,) (spec inputShape)"]
    source = digits_spec_source()
    source["layers"][-1]["units"] = 9
    problems = check_dataset(digits, load_spec(source))
    assert [p.split("[")[0] for p in problems] == ["y_train", "y_val"]
    assert all("is not a class of the output layer (0..8)" in p for p in problems)
    source = digits_spec_source()
    source["loss"] = "categoricalCrossentropy"
    assert check_dataset(digits, load_spec(source))[0].startswith(
        "y: labels are class indices (shape ()), but categoricalCrossentropy takes one-hot labels "
        "of width 10")
