"""What every layer kind provides: shape inference, weights, TF.js config, import from TF.js.

A layer kind is a small class registered under its spec ``type``. It is built from a normalised
config (camelCase spec fields with the schema's defaults filled in) and answers, for an input shape
without the batch dimension:

- `infer(shape)`: the output shape and any problems (a problem names the spec field at fault, or
  None for the layer as a whole); output None means later layers cannot be checked;
- `weights(shape)`: the layer's weight tensors in TF.js creation order, with their samplers;
- `tfjs_config()`: the camelCase TF.js config (what ``layer.getConfig()`` returns, without name,
  trainable and input shape), which `casing.pythonic` turns into the saved form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from webnn.spec import schema
from webnn.spec.initializers import Initializer, Sampler

Shape = tuple[int, ...]
"""A shape without the batch dimension."""


@dataclass(frozen=True)
class WeightDef:
    """One weight of a layer: short name (``kernel``), shape, sampler, and the spec field that
    chose its initialiser (for error paths)."""

    name: str
    shape: Shape
    init: Sampler
    field: str
    trainable: bool = True


@dataclass
class Inference:
    """Result of shape inference: `output` (None when it cannot be computed) and problems as
    ``(field or None, message)``."""

    output: Shape | None
    problems: list[tuple[str | None, str]] = field(default_factory=list)


def describe(shape: Shape) -> str:
    """A shape with its batch dimension, as Keras prints it: ``(None, 26, 26, 8)``."""
    return "(" + ", ".join(["None", *(str(d) for d in shape)]) + ")"


def rank_problem(kind: str, shape: Shape, wanted: str, hint: str = "") -> str:
    """``conv2d needs 4-D input (batch, height, width, channels); it gets 2-D input (None, 64)``."""
    text = f"{kind} needs {wanted}; it gets {len(shape) + 1}-D input {describe(shape)}"
    return f"{text}; {hint}" if hint else text


def conv_length(length: int, size: int, padding: str, stride: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window (TF.js `convOutputLength`):
    ``ceil(length / stride)`` for same padding, ``ceil((length - dilated + 1) / stride)`` for valid,
    where ``dilated = size + (size - 1) (dilation - 1)``."""
    dilated = size + (size - 1) * (dilation - 1)
    out = length if padding == "same" else length - dilated + 1
    return (out + stride - 1) // stride


def as_list(value: int | list[int], n: int) -> list[int]:
    """``3`` -> ``[3, 3]`` for n=2; lists are returned as lists of ints."""
    return [int(value)] * n if isinstance(value, int | float) else [int(v) for v in value]


class LayerKind:
    """Base of all layer kinds. Subclasses set the class attributes and override the methods."""

    type: ClassVar[str]
    """Spec ``type``, e.g. ``dense``."""
    class_name: ClassVar[str]
    """TF.js class name, e.g. ``Dense``."""
    prefix: ClassVar[str]
    """Default layer-name prefix (``dense`` -> ``dense_1``, ``dense_2``...)."""
    schema_def: ClassVar[str]
    """The ``$defs`` entry of schema.json that describes this kind's fields."""
    tfjs_ignored: ClassVar[dict[str, tuple[Any, ...] | None]] = {}
    """TF.js config keys this kind drops on import: allowed values, or None for any value."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = self.normalise(config)

    @classmethod
    def normalise(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Fill in defaults from the schema and make values canonical (sizes as lists,
        initialisers as objects)."""
        out = {**schema.defaults(cls.schema_def), **config}
        for key, value in out.items():
            if key.endswith("Initializer"):
                out[key] = Initializer.from_spec(value).to_spec()
        return out

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def trainable(self) -> bool:
        return bool(self.config.get("trainable", True))

    def initializer(self, key: str) -> Initializer:
        return Initializer.from_spec(self.config[key])

    def infer(self, shape: Shape) -> Inference:
        return Inference(shape)

    def weights(self, shape: Shape) -> list[WeightDef]:
        return []

    def tfjs_config(self) -> dict[str, Any]:
        return {}
