"""Core layers: dense, flatten, reshape, dropout, activation."""

from __future__ import annotations

import math
from typing import Any

from webnn.spec.layers.base import Inference, LayerKind, Shape, WeightDef, describe, rank_problem

REGULARIZERS = ("kernelRegularizer", "biasRegularizer", "activityRegularizer",
                "kernelConstraint", "biasConstraint")
"""TF.js config keys webnn does not model; they must be null."""


def null_keys(*keys: str) -> dict[str, tuple[Any, ...] | None]:
    """`tfjs_ignored` entries for keys that must be null (regularisers, constraints)."""
    return {key: (None,) for key in keys}


class Dense(LayerKind):
    """``output = activation(input @ kernel + bias)`` on the last axis; kernel ``(in, units)``."""

    type, class_name, prefix, schema_def = "dense", "Dense", "dense", "dense"
    tfjs_ignored = null_keys(*REGULARIZERS)

    def infer(self, shape: Shape) -> Inference:
        out = (*shape[:-1], self.config["units"])
        if len(shape) > 2:
            return Inference(out, [(None, rank_problem(
                "dense", shape, "2-D input (batch, features) or 3-D input (batch, steps, features)",
                'add {"type": "flatten"} before it'))])
        return Inference(out)

    def weights(self, shape: Shape) -> list[WeightDef]:
        c, units = self.config, self.config["units"]
        out = [WeightDef("kernel", (shape[-1], units), self.initializer("kernelInitializer"),
                         "kernelInitializer")]
        if c["useBias"]:
            out.append(WeightDef("bias", (units,), self.initializer("biasInitializer"),
                                 "biasInitializer"))
        return out

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        return {"units": c["units"], "activation": c["activation"], "useBias": c["useBias"],
                "kernelInitializer": self.initializer("kernelInitializer").tfjs_config(),
                "biasInitializer": self.initializer("biasInitializer").tfjs_config(),
                **dict.fromkeys(REGULARIZERS)}


class Flatten(LayerKind):
    """Collapses every non-batch dimension into one: ``(None, a, b, c)`` -> ``(None, a*b*c)``."""

    type, class_name, prefix, schema_def = "flatten", "Flatten", "flatten", "plainLayer"
    tfjs_ignored = {"dataFormat": ("channelsLast", None)}

    def infer(self, shape: Shape) -> Inference:
        if len(shape) < 2:
            return Inference(shape, [(None, rank_problem(
                "flatten", shape, "input of at least 3-D (batch, ...)",
                "the input is already flat, remove this layer"))])
        return Inference((math.prod(shape),))


class Reshape(LayerKind):
    """Reshapes each example to `targetShape`; one entry may be -1 (inferred).

    The topology gets the resolved shape: TF.js infers a -1 only at run time (its symbolic output
    shape keeps it unknown, which a following flatten or dense layer cannot take).
    """

    type, class_name, prefix, schema_def = "reshape", "Reshape", "reshape", "reshape"
    resolved: tuple[int, ...] | None = None

    def infer(self, shape: Shape) -> Inference:
        target = list(self.config["targetShape"])
        size = math.prod(shape)
        unknown = [i for i, d in enumerate(target) if d == -1]
        if len(unknown) > 1:
            return Inference(None, [("targetShape", "may contain -1 only once")])
        known = math.prod(d for d in target if d != -1)
        if unknown:
            if size % known:
                return Inference(None, [("targetShape", (
                    f"cannot infer the -1 dimension: the input {describe(shape)} holds {size} "
                    f"elements per example, not a multiple of {known}"))])
            target[unknown[0]] = size // known
        elif known != size:
            return Inference(None, [("targetShape", (
                f"target shape {self.config['targetShape']} holds {known} elements but the input "
                f"{describe(shape)} holds {size} per example"))])
        self.resolved = tuple(target)
        return Inference(self.resolved)

    def tfjs_config(self) -> dict[str, Any]:
        target = self.resolved or self.config["targetShape"]
        return {"targetShape": [None if d == -1 else d for d in target]}


class Dropout(LayerKind):
    """Zeroes a fraction `rate` of the inputs while training; the shape is unchanged."""

    type, class_name, prefix, schema_def = "dropout", "Dropout", "dropout", "dropout"
    tfjs_ignored = {"noiseShape": (None,), "seed": None}

    def tfjs_config(self) -> dict[str, Any]:
        return {"rate": self.config["rate"], "noiseShape": None, "seed": None}


class Activation(LayerKind):
    """Applies `activation` element-wise."""

    type, class_name, prefix, schema_def = "activation", "Activation", "activation", \
        "activationLayer"

    def tfjs_config(self) -> dict[str, Any]:
        return {"activation": self.config["activation"]}
