"""The records `webnn.spec` hands out: `ModelSpec`, `TrainingConfig`, `CompiledModel`,
`LayerSummary`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webnn import __version__
from webnn.spec.initializers import Sampler
from webnn.weights import WeightLayout


@dataclass(frozen=True)
class LayerSummary:
    """One layer as `model.summary()` shows it; `output_shape` has None for the batch."""

    name: str
    class_name: str
    output_shape: tuple[int | None, ...]
    params: int
    type: str = ""
    trainable_params: int = 0


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings of a spec (the ``training`` block); defaults apply to missing fields.

    Validation runs every `validation_every_merges` merges and/or every
    `validation_every_seconds` seconds (None: not on that trigger), in chunks of
    `validation_chunk_size` examples. `seed` seeds the initial weights and the batch order.
    """

    batch_size: int = 32
    local_steps: int = 10
    validation_every_merges: int | None = 20
    validation_every_seconds: float | None = None
    validation_chunk_size: int = 256
    seed: int = 0


@dataclass(frozen=True)
class WeightInit:
    """How one weight (manifest order) is initialised: its sampler and its creation index, which
    keys its random stream so adding a layer at the end does not change earlier weights."""

    index: int
    sampler: Sampler


@dataclass
class CompiledModel:
    """A spec compiled for TF.js: topology, weight layout, per-layer summary and initial weights.

    `topology` is the ``modelTopology`` of a TF.js ``model.json`` (Sequential, snake_case keys) that
    ``tf.models.modelFromJSON({modelTopology})`` accepts; `layout` lists the weights in TF.js
    ``model.weights`` order (trainable weights by layer, then non-trainable ones by layer).
    """

    name: str
    topology: dict[str, Any]
    layout: WeightLayout
    layers: list[LayerSummary]
    input_shape: tuple[int, ...]
    output_shape: tuple[int | None, ...]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    inits: tuple[WeightInit, ...] = field(default=(), repr=False)
    loaded_weights: np.ndarray | None = field(default=None, repr=False)
    """Weights that came with a TF.js ``model.json``; `initial_weights` returns a copy."""

    def initial_weights(self, seed: int) -> np.ndarray:
        """A flat float32 buffer (manifest order) drawn from each layer's initialisers.

        Weight ``i`` (creation order) uses ``default_rng(SeedSequence(seed, spawn_key=(i,)))``, so
        the same seed gives a bit-identical buffer. Loaded weights, if any, are returned instead.
        """
        if self.loaded_weights is not None:
            return self.loaded_weights.copy()
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        buffer = self.layout.zeros()
        views = self.layout.views(buffer)
        for spec, init in zip(self.layout.specs, self.inits, strict=True):
            rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(init.index,)))
            views[spec.name][...] = init.sampler.sample(spec.shape, rng)
        return buffer

    def summary(self) -> str:
        """A Keras-like ``model.summary()`` table."""
        from webnn.spec.summary import summary_table

        return summary_table(self)

    def model_json(self, weights_path: str = "weights.bin") -> dict[str, Any]:
        """A TF.js ``model.json`` (``tf.loadLayersModel`` format), all weights in one file."""
        return {
            "format": "layers-model",
            "generatedBy": f"webnn {__version__}",
            "convertedBy": None,
            "modelTopology": copy.deepcopy(self.topology),
            "weightsManifest": self.layout.manifest_json(weights_path),
        }


@dataclass(frozen=True)
class ProjectInfo:
    """Who runs the training and why (the spec's optional ``project`` block), for the volunteer
    page: `name` (default: the model's name), `operator` (person or organisation), `contact` (an
    http(s) or mailto URL, or ""), `description` (default: the spec's ``description``)."""

    name: str
    operator: str
    contact: str = ""
    description: str = ""

    def public(self) -> dict[str, str | None]:
        """The wire form: ``{"name", "operator", "contact", "description"}`` (null when empty)."""
        return {"name": self.name, "operator": self.operator, "contact": self.contact or None,
                "description": self.description or None}


@dataclass
class ModelSpec:
    """A loaded, validated model spec.

    `layers` are the normalised layer configs (camelCase, defaults filled in, stable names);
    `input_dtype` is the dtype of batches' x (``int32`` for index inputs such as an embedding's).
    """

    name: str
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]]
    loss: str
    optimizer: str
    learning_rate: float
    metrics: list[str]
    training: TrainingConfig
    compiled: CompiledModel
    source: dict[str, Any]
    input_dtype: str = "float32"
    description: str = ""
    project: ProjectInfo | None = None

    def project_public(self) -> dict[str, str | None]:
        """What the volunteer page shows about the project (the model and status answers'
        ``project``): the spec's ``project`` block, or the model's name and description with
        no operator or contact when the spec has none."""
        if self.project is not None:
            return self.project.public()
        return {"name": self.name, "operator": None, "contact": None,
                "description": self.description.strip() or None}
