"""data_modules/teacher.py: the synthetic teacher task is a pure function of its options (same
seed, same arrays), has the documented shapes and dtypes, balanced classes, the asked rate of
flipped training labels (never onto the clean class), clean or noisy validation labels, and
loads through the data-module interface against bench/specs/teacher_mlp.json."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from webnn.data import DataModuleError, check_dataset, load_data_module
from webnn.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"train_examples": 20000, "validation_examples": 3000}


@pytest.fixture(scope="module")
def teacher():
    spec = importlib.util.spec_from_file_location("teacher_module_under_test",
                                                  ROOT / "data_modules" / "teacher.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["teacher_module_under_test"] = module
    spec.loader.exec_module(module)
    return module


def test_the_same_seed_gives_the_same_arrays(teacher) -> None:
    a, b = teacher.load(**SMALL), teacher.load(**SMALL)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    other = teacher.load(seed=1, **SMALL)
    assert not np.array_equal(a.x_train, other.x_train)
    assert not np.array_equal(a.y_val, other.y_val)
    # a longer training set starts with the shorter one's examples (chunked draws)
    longer = teacher.load(train_examples=70000, validation_examples=3000)
    np.testing.assert_array_equal(longer.x_train[:20000], a.x_train)


def test_shapes_dtypes_and_balanced_classes(teacher) -> None:
    ds = teacher.load(inputs=12, classes=5, **SMALL)
    assert ds.x_train.shape == (20000, 12) and ds.x_val.shape == (3000, 12)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.y_val.dtype == np.int32 and ds.y_train.shape == (20000,)
    assert ds.y_train.min() >= 0 and ds.y_train.max() < 5
    share = np.bincount(ds.y_val, minlength=5) / 3000
    assert share.min() > 0.5 / 5 and share.max() < 1.5 / 5
    # inputs are standard normal
    assert abs(float(ds.x_train.mean())) < 0.01 and abs(float(ds.x_train.std()) - 1) < 0.01


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_training_labels_are_flipped_at_the_asked_rate(teacher, rate: float) -> None:
    ds = teacher.load(label_noise=rate, teacher_hidden=16, **SMALL)
    net = teacher.make_teacher(64, 10, 16, 0)
    clean = net.labels(ds.x_train)
    flipped = clean != ds.y_train
    tolerance = 4 * math.sqrt(max(rate * (1 - rate), 1e-12) / 20000)
    assert abs(float(flipped.mean()) - rate) <= tolerance
    if rate:  # a flipped label is any other class, evenly
        moved = (ds.y_train[flipped] - clean[flipped]) % 10
        assert moved.min() >= 1
        counts = np.bincount(moved, minlength=10)[1:]
        assert counts.min() > 0.7 * counts.mean()
    # validation labels are the teacher's (clean): the Bayes-optimal accuracy there is 1
    np.testing.assert_array_equal(ds.y_val, net.labels(ds.x_val))
    assert teacher.bayes_accuracy(rate) == 1.0
    assert teacher.bayes_accuracy(rate, "noisy") == pytest.approx(1 - rate)


def test_noisy_validation_labels(teacher) -> None:
    ds = teacher.load(validation_labels="noisy", **SMALL)
    clean = teacher.make_teacher(64, 10, 16, 0).labels(ds.x_val)
    assert abs(float((ds.y_val != clean).mean()) - 0.3) < 4 * math.sqrt(0.21 / 3000)


def test_bad_options_are_refused_by_name(teacher) -> None:
    for options, words in (({"label_noise": 0.9}, "label_noise must be in"),
                           ({"label_noise": -0.1}, "label_noise"),
                           ({"classes": 1}, "classes must be at least 2"),
                           ({"train_examples": 0}, "train_examples must be at least 1"),
                           ({"validation_labels": "dirty"}, "validation_labels must be one of")):
        with pytest.raises(DataModuleError, match=words):
            teacher.load(**options)


def test_it_loads_as_a_data_module_for_the_benchmark_spec() -> None:
    ds = load_data_module(str(ROOT / "data_modules" / "teacher.py"),
                          {"train_examples": "5000", "label_noise": "0.25",
                           "teacher_hidden": "16"})
    assert ds.num_train == 5000 and ds.example_shape == (64,)
    spec = load_spec(str(ROOT / "bench" / "specs" / "teacher_mlp.json"))
    assert check_dataset(ds, spec) == []
    with pytest.raises(DataModuleError, match="no_such"):
        load_data_module(str(ROOT / "data_modules" / "teacher.py"), {"no_such": "1"})
