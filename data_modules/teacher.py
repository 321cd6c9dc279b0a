"""A synthetic classification task with a known noise floor: a fixed random "teacher" network
labels Gaussian inputs, and a fraction of the training labels is flipped.

Everything is drawn from `seed` with numpy's ``default_rng``, so the same options give the same
arrays on every machine:

- teacher: one hidden layer of centred ReLUs, ``h_j = relu(x w1_j) - |w1_j| / sqrt(2 pi)`` (a
  ReLU of N(0, |w1_j|^2) less its mean, so no class is favoured by the ReLUs' common offset),
  logits ``h W2 + b2`` with ``W1 ~ N(0, 1/inputs)`` of shape (inputs, teacher_hidden), ``W2 ~
  N(0, 1/teacher_hidden)`` of shape (teacher_hidden, classes) (stream ``[seed, 0]``); ``b2``
  balances the classes: starting at 0, ``b2 -= BALANCE_STEP log(classes f_c)`` for
  `BALANCE_ROUNDS` rounds, f_c the share of class c among `BALANCE_EXAMPLES` inputs of stream
  ``[seed, 1]`` (floored at 1e-3), so every class holds about ``1 / classes`` of the examples;
- the clean label of x is the teacher's argmax (ties: the lowest class);
- x ~ N(0, I_inputs), float32: training inputs from stream ``[seed, 2]``, validation inputs from
  ``[seed, 3]`` (disjoint draws);
- training labels: each clean label is replaced, with probability `label_noise`, by one of the
  other ``classes - 1`` classes uniformly (stream ``[seed, 4]``); validation labels are clean
  (``validation_labels="clean"``, the default) or flipped the same way from stream ``[seed, 5]``
  (``"noisy"``).

The noise floor: the Bayes-optimal classifier of the noisy training labels is the teacher itself
(flipping moves ``label_noise`` of the mass off the clean class and spreads it evenly over the
``classes - 1`` others, which stay below ``1 - label_noise`` while ``label_noise < 1 - 1 /
classes``), so its accuracy is ``1 - label_noise`` on noisy labels and 1 on clean ones; no model
does better in expectation. Flipped labels keep every example's loss gradient large where the
mean gradient is small, so the gradient noise scale (McCandlish et al. 2018) grows as a model
nears the teacher: the point of the task (docs/scaling.md).

x: float32, shape (inputs,); y: int32 class 0..classes-1. `ArrayDataset`: iid, dirichlet and
shards partitions work. With `train_examples` larger than a run's examples (batch size x steps x
clients), no client sees an example twice.

Options: ``inputs`` (64), ``classes`` (10), ``teacher_hidden`` (16), ``label_noise`` (0.3, in
[0, 1 - 1/classes)), ``train_examples`` (524288), ``validation_examples`` (4096), ``seed`` (0),
``validation_labels`` (``clean`` or ``noisy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webnn.data import ArrayDataset, DataModuleError

BALANCE_ROUNDS = 200
"""Rounds of the teacher's output-bias balancing."""
BALANCE_STEP = 0.1
"""Step of the balancing (damped: the shares move in jumps as argmax boundaries cross)."""
BALANCE_EXAMPLES = 65536
"""Inputs the balancing counts classes on."""
CHUNK = 65536
"""Inputs labelled per teacher pass (bounds the memory of the hidden layer)."""
VALIDATION_LABELS = ("clean", "noisy")


@dataclass(frozen=True)
class Teacher:
    """The labelling network: ``argmax((relu(x w1) - offset) w2 + b2)``, ``offset_j =
    |w1_j| / sqrt(2 pi)``, the mean of ``relu(x w1_j)`` for x ~ N(0, I)."""

    w1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def offset(self) -> np.ndarray:
        return np.linalg.norm(self.w1, axis=0) / np.sqrt(2.0 * np.pi)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return (np.maximum(x @ self.w1, 0.0) - self.offset) @ self.w2 + self.b2

    def labels(self, x: np.ndarray) -> np.ndarray:
        """Clean labels of `x` (rows), int32, labelled `CHUNK` rows at a time."""
        out = np.empty(len(x), dtype=np.int32)
        for begin in range(0, len(x), CHUNK):
            out[begin:begin + CHUNK] = self.logits(
                x[begin:begin + CHUNK].astype(np.float64)).argmax(axis=1)
        return out


def make_teacher(inputs: int, classes: int, hidden: int, seed: int) -> Teacher:
    """The seed's teacher, its output bias balanced over the classes (module docstring)."""
    rng = np.random.default_rng([seed, 0])
    w1 = rng.normal(0.0, 1.0 / np.sqrt(inputs), (inputs, hidden))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, classes))
    unbalanced = Teacher(w1, w2, np.zeros(classes))
    base = unbalanced.logits(
        np.random.default_rng([seed, 1]).standard_normal((BALANCE_EXAMPLES, inputs)))
    b2 = np.zeros(classes)
    for _ in range(BALANCE_ROUNDS):
        share = np.bincount((base + b2).argmax(axis=1), minlength=classes) / BALANCE_EXAMPLES
        b2 -= BALANCE_STEP * np.log(np.maximum(share, 1e-3) * classes)
    return Teacher(w1, w2, b2)


def flip(labels: np.ndarray, rate: float, classes: int, rng: np.random.Generator) -> np.ndarray:
    """`labels` with each one replaced, with probability `rate`, by one of the other classes
    uniformly: ``(y + k) mod classes`` with k uniform in 1..classes-1."""
    flipped = rng.random(len(labels)) < rate
    shift = rng.integers(1, classes, len(labels))
    return np.where(flipped, (labels + shift) % classes, labels).astype(np.int32)


def gaussian_inputs(count: int, inputs: int, rng: np.random.Generator) -> np.ndarray:
    """`count` rows of N(0, I_inputs), float32, drawn `CHUNK` rows at a time."""
    out = np.empty((count, inputs), dtype=np.float32)
    for begin in range(0, count, CHUNK):
        end = min(count, begin + CHUNK)
        out[begin:end] = rng.standard_normal((end - begin, inputs), dtype=np.float32)
    return out


def load(inputs: int = 64, classes: int = 10, teacher_hidden: int = 16,
         label_noise: float = 0.3, train_examples: int = 524288,
         validation_examples: int = 4096, seed: int = 0,
         validation_labels: str = "clean") -> ArrayDataset:
    for name, value, low in (("inputs", inputs, 1), ("classes", classes, 2),
                             ("teacher_hidden", teacher_hidden, 1),
                             ("train_examples", train_examples, 1),
                             ("validation_examples", validation_examples, 1)):
        if value < low:
            raise DataModuleError(f"option {name} must be at least {low}, got {value}")
    if not 0.0 <= label_noise < 1.0 - 1.0 / classes:
        raise DataModuleError(f"option label_noise must be in [0, {1.0 - 1.0 / classes:g}) for "
                              f"{classes} classes (at or above it the clean class is no longer "
                              f"the most likely label), got {label_noise}")
    if validation_labels not in VALIDATION_LABELS:
        raise DataModuleError(f"option validation_labels must be one of {VALIDATION_LABELS}, "
                              f"got {validation_labels!r}")
    teacher = make_teacher(inputs, classes, teacher_hidden, seed)
    x_train = gaussian_inputs(train_examples, inputs, np.random.default_rng([seed, 2]))
    x_val = gaussian_inputs(validation_examples, inputs, np.random.default_rng([seed, 3]))
    y_train = flip(teacher.labels(x_train), label_noise, classes,
                   np.random.default_rng([seed, 4]))
    y_val = teacher.labels(x_val)
    if validation_labels == "noisy":
        y_val = flip(y_val, label_noise, classes, np.random.default_rng([seed, 5]))
    return ArrayDataset(x_train, y_train, x_val, y_val)


def bayes_accuracy(label_noise: float, validation_labels: str = "clean") -> float:
    """The best expected validation accuracy (the teacher's): 1 on clean labels,
    ``1 - label_noise`` on noisy ones."""
    return 1.0 if validation_labels == "clean" else 1.0 - label_noise
