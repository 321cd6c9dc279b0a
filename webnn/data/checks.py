"""Checking a dataset against a model spec before training starts.

`check_dataset(dataset, spec)` returns a list of problems (empty when the data fits the model).
It reads only ``spec.input_shape``, ``spec.loss``, ``spec.compiled.output_shape`` (batch axis
first, None), ``spec.training.batch_size`` and, when the spec has it, ``spec.input_dtype``. It
checks, in order:

1. the dataset's interface (attributes of the right kinds);
2. declared shapes and dtypes: x's example shape against the input shape (a None dimension in the
   spec matches anything); x float32 or int32 (the spec's input dtype when it has one); labels
   against the loss and the output shape: int32 class indices of shape ``()`` (or ``(1,)``) for
   sparse losses, float32 of the output shape otherwise (one-hot of the output width for
   ``categoricalCrossentropy``);
3. values: no NaN or infinity in float arrays, class indices within the output layer's classes,
   labels in [0, 1] for categorical and binary cross-entropy, no negative int32 inputs. An
   `ArrayDataset` is scanned whole (in chunks); any other dataset through its first training batch
   and first validation chunk of ``batch_size`` examples, whose shapes and dtypes must match what it
   declares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from webnn.data.base import WIRE_DTYPES, ArrayDataset, Batch, IterableDataset

SPARSE_LOSSES = frozenset({"sparsecategoricalcrossentropy"})
ONE_HOT_LOSSES = frozenset({"categoricalcrossentropy"})
UNIT_RANGE_LOSSES = frozenset({"categoricalcrossentropy", "binarycrossentropy"})

_SCAN_ROWS = 1 << 14  # rows per chunk when scanning arrays, to bound scratch memory


def check_dataset(dataset: Any, spec: Any) -> list[str]:
    """Problems of `dataset` for the model of `spec` (see the module docstring); [] if it fits."""
    problems = interface_problems(dataset)
    if problems:
        return problems
    input_shape = tuple(spec.input_shape)
    output_shape = tuple(spec.compiled.output_shape)[1:]
    loss = str(spec.loss)
    input_dtype = getattr(spec, "input_dtype", None)
    problems = (_x_problems(dataset, input_shape, input_dtype)
                + _y_problems(dataset, output_shape, loss))
    if dataset.num_validation == 0:
        problems.append("the validation set is empty: the server evaluates the model on it")
    if problems:
        return problems  # values are only worth scanning once the shapes and dtypes fit
    checker = _ValueChecker(output_shape, _loss_key(loss))
    if isinstance(dataset, ArrayDataset):
        for name in ("x_train", "x_val", "y_train", "y_val"):
            problems += checker.check(name, getattr(dataset, name))
        return problems
    return _sample_problems(dataset, checker, int(spec.training.batch_size))


def interface_problems(dataset: Any) -> list[str]:
    """What is missing or malformed in `dataset` as an `IterableDataset`."""
    if not isinstance(dataset, IterableDataset):
        return [f"the dataset is {_kind(dataset)}; expected webnn.data.ArrayDataset or a subclass "
                "of webnn.data.IterableDataset"]
    problems = []
    for name in ("example_shape", "y_shape"):
        value = getattr(dataset, name, None)
        if not (isinstance(value, tuple)
                and all(isinstance(d, int | np.integer) and d >= 0 for d in value)):
            problems.append(f"dataset.{name} must be a tuple of sizes, got {value!r}")
    for name in ("x_dtype", "y_dtype"):
        try:
            np.dtype(getattr(dataset, name))
        except (TypeError, AttributeError):
            problems.append(f"dataset.{name} must be a numpy dtype, got "
                            f"{getattr(dataset, name, None)!r}")
    for name, allow_none in (("num_validation", False), ("num_train", True)):
        value = getattr(dataset, name, None)
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            problems.append(f"dataset.{name} must be an integer >= 0, got {value!r}")
    return problems


def _x_problems(dataset: IterableDataset, input_shape: tuple,
                input_dtype: str | None) -> list[str]:
    problems = []
    example_shape = tuple(dataset.example_shape)
    if not _shape_matches(example_shape, input_shape):
        problems.append(f"x: examples have shape {example_shape}; the model's input shape is "
                        f"{input_shape} (spec inputShape)")
    x_dtype = np.dtype(dataset.x_dtype)
    if input_dtype is not None and x_dtype in WIRE_DTYPES and x_dtype != np.dtype(input_dtype):
        problems.append(f"x: dtype {x_dtype}; the model's input dtype is {input_dtype} "
                        f"(spec inputDtype): convert with x.astype(np.{input_dtype})")
    elif x_dtype not in WIRE_DTYPES:
        problems.append(f"x: dtype {x_dtype}; the model takes float32 (or int32 indices for "
                        "embedding inputs): convert with x.astype(np.float32)")
    return problems


def _y_problems(dataset: IterableDataset, output_shape: tuple, loss: str) -> list[str]:
    y_shape, y_dtype = tuple(dataset.y_shape), np.dtype(dataset.y_dtype)
    key = _loss_key(loss)
    if key in SPARSE_LOSSES:
        problems = []
        classes_shape = output_shape[:-1]
        if y_shape not in (classes_shape, (*classes_shape, 1)):
            hint = (" (one-hot labels need categoricalCrossentropy)"
                    if y_shape == output_shape else "")
            problems.append(f"y: labels have shape {y_shape}; {loss} takes one class index per "
                            f"example, shape {classes_shape}, for the output shape "
                            f"{output_shape}{hint}")
        if y_dtype != np.int32:
            convert = ": convert with y.astype(np.int32)" if y_dtype.kind in "iub" else ""
            problems.append(f"y: dtype {y_dtype}; {loss} takes int32 class indices{convert}")
        return problems
    problems = []
    if y_shape != output_shape:
        if key in ONE_HOT_LOSSES and y_shape in (output_shape[:-1], (*output_shape[:-1], 1)):
            problems.append(f"y: labels are class indices (shape {y_shape}), but {loss} takes "
                            f"one-hot labels of width {output_shape[-1]}: use "
                            "sparseCategoricalCrossentropy or one-hot encode y")
        elif key in ONE_HOT_LOSSES and len(y_shape) == len(output_shape):
            problems.append(f"y: one-hot labels have width {y_shape[-1]}; the output layer has "
                            f"{output_shape[-1]} units")
        else:
            problems.append(f"y: labels have shape {y_shape}; {loss} compares them with the "
                            f"model's output of shape {output_shape}")
    if y_dtype != np.float32:
        problems.append(f"y: dtype {y_dtype}; {loss} takes float32 labels: convert with "
                        "y.astype(np.float32)")
    return problems


class _ValueChecker:
    """Scans arrays for bad values, reporting the first offending example and how many there are."""

    def __init__(self, output_shape: tuple, loss_key: str) -> None:
        self.classes = output_shape[-1] if output_shape else None
        self.sparse = loss_key in SPARSE_LOSSES
        self.unit_range = loss_key in UNIT_RANGE_LOSSES

    def check(self, name: str, array: np.ndarray) -> list[str]:
        is_label = name.startswith("y") or name.endswith(" y")
        problems = []
        if array.dtype.kind == "f":
            problems += _scan(name, array, lambda a: ~np.isfinite(a), "holds NaN or infinity")
        if not is_label and array.dtype.kind in "iu":
            problems += _scan(name, array, lambda a: a < 0,
                              "holds a negative index (embedding inputs are indices >= 0)")
        if is_label and self.sparse and self.classes is not None:
            last = self.classes - 1
            problems += _scan(name, array, lambda a: (a < 0) | (a > last),
                              f"is not a class of the output layer (0..{last})", show_value=True)
        if is_label and self.unit_range and not problems:
            problems += _scan(name, array, lambda a: (a < 0) | (a > 1),
                              "is outside [0, 1], the range of cross-entropy labels",
                              show_value=True)
        return problems


def _scan(name: str, array: np.ndarray, is_bad: Any, what: str,
          show_value: bool = False) -> list[str]:
    """One problem naming the first example of `array` where `is_bad` holds, and the count."""
    first: int | None = None
    value: Any = None
    count = 0
    for begin in range(0, len(array), _SCAN_ROWS):
        part = np.asarray(array[begin:begin + _SCAN_ROWS])
        bad = is_bad(part).reshape(len(part), -1).any(axis=1)
        hits = np.flatnonzero(bad)
        if hits.size and first is None:
            first = begin + int(hits[0])
            row = part[hits[0]].reshape(-1)
            value = row[is_bad(row)][0] if row.size else None
        count += int(hits.size)
    if first is None:
        return []
    shown = f" = {value.item()!r}" if show_value and value is not None else ""
    more = f" ({count} examples in all)" if count > 1 else ""
    return [f"{name}[{first}]{shown} {what}{more}"]


def _sample_problems(dataset: IterableDataset, checker: _ValueChecker,
                     batch_size: int) -> list[str]:
    """Checks the first training batch and the first validation chunk of a streamed dataset."""
    problems = []
    samples = (("first training batch", lambda: dataset.train_batches(batch_size, 0), batch_size),
               ("first validation chunk", lambda: dataset.validation_chunks(batch_size), None))
    for label, make, expected_len in samples:
        try:
            batch = next(iter(make()), None)
        except Exception as exc:  # user code: report, don't crash the check
            problems.append(f"{label}: reading it raised {type(exc).__name__}: {exc}")
            continue
        if batch is None:
            problems.append(f"{label}: the iterator yielded nothing")
            continue
        found = _batch_problems(label, batch, dataset, expected_len)
        if not found:
            found = checker.check(f"{label} x", batch.x) + checker.check(f"{label} y", batch.y)
        problems += found
    return problems


def _batch_problems(label: str, batch: Any, dataset: IterableDataset,
                    expected_len: int | None) -> list[str]:
    if not isinstance(batch, Batch):
        return [f"{label}: got {_kind(batch)}, expected webnn.data.Batch(x, y)"]
    problems = []
    declared = (("x", tuple(dataset.example_shape), np.dtype(dataset.x_dtype)),
                ("y", tuple(dataset.y_shape), np.dtype(dataset.y_dtype)))
    for name, shape, dtype in declared:
        array = getattr(batch, name)
        if not isinstance(array, np.ndarray):
            problems.append(f"{label}: {name} is {_kind(array)}, expected a numpy array")
            continue
        if tuple(array.shape[1:]) != shape or array.dtype != dtype:
            problems.append(f"{label}: {name} is {array.dtype} of shape {array.shape}, but the "
                            f"dataset declares {dtype} examples of shape {shape}")
    if not problems and len(batch.x) != len(batch.y):
        problems.append(f"{label}: x has {len(batch.x)} examples but y has {len(batch.y)}")
    if not problems and expected_len is not None and len(batch.x) != expected_len:
        problems.append(f"{label}: holds {len(batch.x)} examples; asked for {expected_len}")
    return problems


def _shape_matches(actual: tuple, expected: tuple) -> bool:
    return len(actual) == len(expected) and all(
        e is None or int(a) == int(e) for a, e in zip(actual, expected, strict=True))


def _loss_key(loss: str) -> str:
    return loss.replace("_", "").lower()


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"
