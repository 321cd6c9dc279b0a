"""Model specs: JSON Schema, loading and validation, compilation to a TF.js layers-model topology,
shape inference, the weight manifest and seeded initial weights.

    spec = load_spec("model_specs/digits_mlp.json")
    print(spec.compiled.summary())
    weights = spec.compiled.initial_weights(spec.training.seed)   # flat float32, manifest order
"""

from webnn.spec.errors import Problem, SpecError
from webnn.spec.loader import load_spec, validate_spec
from webnn.spec.model import CompiledModel, LayerSummary, ModelSpec, ProjectInfo, TrainingConfig

__all__ = [
    "CompiledModel",
    "LayerSummary",
    "ModelSpec",
    "Problem",
    "ProjectInfo",
    "SpecError",
    "TrainingConfig",
    "load_spec",
    "validate_spec",
]
