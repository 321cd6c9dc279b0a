"""The synthetic model of the load benchmark: a dense spec of about P parameters and a data module.

The network is ``inputShape [D]``, two dense hidden layers of width h (relu) and a softmax layer of
C classes, so the parameter count is

    P(h) = D*h + h  +  h*h + h  +  h*C + C  =  h^2 + (D + C + 2) h + C

and h is the smallest width with P(h) >= the requested count. The data module draws random float32
x in [0, 1) and int32 labels in 0..C-1 (seeded); batches are tiny (`BATCH_SIZE` examples, one local
step) so the update and weight bytes dominate every exchange, as they do for a real model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

INPUTS = 16
CLASSES = 10
BATCH_SIZE = 8
TRAIN_EXAMPLES = 4096
VALIDATION_EXAMPLES = 64


@dataclass(frozen=True)
class SyntheticModel:
    """Where the generated spec and data module lie, and the model's size."""

    spec_path: Path
    data_path: Path
    width: int
    params: int

    @property
    def nbytes(self) -> int:
        """Bytes of one float32 weight set (the size of a weights body and an update's tensor)."""
        return 4 * self.params


def param_count(width: int, inputs: int = INPUTS, classes: int = CLASSES) -> int:
    """P(h) of the module docstring."""
    return width * width + (inputs + classes + 2) * width + classes


def width_for(params: int, inputs: int = INPUTS, classes: int = CLASSES) -> int:
    """The smallest hidden width h >= 1 with P(h) >= `params` (the root of the quadratic,
    rounded up)."""
    if params < 1:
        raise ValueError(f"--params must be at least 1, got {params}")
    b = inputs + classes + 2
    width = max(1, math.ceil((-b + math.sqrt(b * b - 4 * (classes - params))) / 2))
    while width > 1 and param_count(width - 1, inputs, classes) >= params:
        width -= 1
    while param_count(width, inputs, classes) < params:
        width += 1
    return width


def spec_document(width: int, eval_seconds: float | None) -> dict:
    """The model spec (model_specs/*.json format) of the benchmark network."""
    return {
        "name": f"load_dense_{param_count(width)}",
        "description": "Synthetic dense network of the load benchmark (bench/load.py).",
        "inputShape": [INPUTS],
        "layers": [
            {"type": "dense", "units": width, "activation": "relu"},
            {"type": "dense", "units": width, "activation": "relu"},
            {"type": "dense", "units": CLASSES, "activation": "softmax"},
        ],
        "loss": "sparseCategoricalCrossentropy",
        "optimizer": {"type": "sgd", "learningRate": 0.01},
        "metrics": ["accuracy"],
        "training": {
            "batchSize": BATCH_SIZE,
            "localSteps": 1,
            "seed": 0,
            "validation": {"everyMerges": None, "everySeconds": eval_seconds,
                           "chunkSize": VALIDATION_EXAMPLES},
        },
    }


DATA_MODULE = f'''"""Random data for the load benchmark: x float32 in [0, 1) of shape ({INPUTS},),
y int32 in 0..{CLASSES - 1}. Written by bench/load_model.py."""

import numpy as np

from webnn.data import ArrayDataset


def load(seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    x = rng.random(({TRAIN_EXAMPLES + VALIDATION_EXAMPLES}, {INPUTS}), dtype=np.float32)
    y = rng.integers(0, {CLASSES}, {TRAIN_EXAMPLES + VALIDATION_EXAMPLES}).astype(np.int32)
    return ArrayDataset(x[:{TRAIN_EXAMPLES}], y[:{TRAIN_EXAMPLES}],
                        x[{TRAIN_EXAMPLES}:], y[{TRAIN_EXAMPLES}:])
'''


def write_model(directory: Path, params: int, eval_seconds: float | None) -> SyntheticModel:
    """Write ``spec.json`` and ``load_data.py`` into `directory` for a model of about `params`."""
    width = width_for(params)
    spec_path = directory / "spec.json"
    data_path = directory / "load_data.py"
    spec_path.write_text(json.dumps(spec_document(width, eval_seconds), indent=2))
    data_path.write_text(DATA_MODULE)
    return SyntheticModel(spec_path, data_path, width, param_count(width))
