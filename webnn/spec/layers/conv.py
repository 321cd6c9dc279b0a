"""Convolutions: conv2d ``(batch, h, w, c)`` and conv1d ``(batch, steps, c)``, channels last.

Kernel shape ``(*kernelSize, in_channels, filters)``; output length per spatial axis from
`conv_length`. TF.js cannot combine strides > 1 with a dilation rate > 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

from webnn.spec.layers.base import (
    Inference,
    LayerKind,
    Shape,
    WeightDef,
    as_list,
    conv_length,
    describe,
    rank_problem,
)
from webnn.spec.layers.core import REGULARIZERS, null_keys


class _Conv(LayerKind):
    rank: ClassVar[int]
    input_form: ClassVar[str]
    hint: ClassVar[str]
    tfjs_ignored = null_keys(*REGULARIZERS)

    @classmethod
    def normalise(cls, config: dict[str, Any]) -> dict[str, Any]:
        out = super().normalise(config)
        for key in ("kernelSize", "strides", "dilationRate"):
            out[key] = as_list(out[key], cls.rank)
        return out

    def infer(self, shape: Shape) -> Inference:
        c = self.config
        if len(shape) != self.rank + 1:
            return Inference(None, [(None, rank_problem(self.type, shape, self.input_form,
                                                        self.hint))])
        if max(c["strides"]) > 1 and max(c["dilationRate"]) > 1:
            return Inference(None, [("strides", "TF.js cannot combine strides > 1 with "
                                                "dilationRate > 1")])
        spatial = shape[: self.rank]
        dilated = [k + (k - 1) * (d - 1) for k, d in zip(c["kernelSize"], c["dilationRate"],
                                                           strict=True)]
        if c["padding"] == "valid" and any(k > n for k, n in zip(dilated, spatial, strict=True)):
            size = "x".join(map(str, dilated))
            return Inference(None, [("kernelSize", (
                f"kernel {size}{' (dilated)' if dilated != c['kernelSize'] else ''} is larger than "
                f"the input {describe(shape)} with padding 'valid'; use a smaller kernel or "
                f"padding 'same'"))])
        out = tuple(conv_length(n, k, c["padding"], s, d) for n, k, s, d in
                    zip(spatial, c["kernelSize"], c["strides"], c["dilationRate"], strict=True))
        return Inference((*out, c["filters"]))

    def weights(self, shape: Shape) -> list[WeightDef]:
        c = self.config
        kernel = (*c["kernelSize"], shape[-1], c["filters"])
        out = [WeightDef("kernel", kernel, self.initializer("kernelInitializer"),
                         "kernelInitializer")]
        if c["useBias"]:
            out.append(WeightDef("bias", (c["filters"],), self.initializer("biasInitializer"),
                                 "biasInitializer"))
        return out

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        config = {"filters": c["filters"],
                  "kernelInitializer": self.initializer("kernelInitializer").tfjs_config(),
                  "kernelRegularizer": None, "kernelConstraint": None,
                  "kernelSize": c["kernelSize"], "strides": c["strides"], "padding": c["padding"]}
        if "dataFormat" in c:
            config["dataFormat"] = c["dataFormat"]
        return {**config, "dilationRate": c["dilationRate"], "activation": c["activation"],
                "useBias": c["useBias"],
                "biasInitializer": self.initializer("biasInitializer").tfjs_config(),
                "biasRegularizer": None, "activityRegularizer": None, "biasConstraint": None}


class Conv2D(_Conv):
    type, class_name, prefix, schema_def = "conv2d", "Conv2D", "conv2d", "conv2d"
    rank = 2
    input_form = "4-D input (batch, height, width, channels)"
    hint = 'reshape first, e.g. {"type": "reshape", "targetShape": [height, width, channels]}'


class Conv1D(_Conv):
    type, class_name, prefix, schema_def = "conv1d", "Conv1D", "conv1d", "conv1d"
    rank = 1
    input_form = "3-D input (batch, steps, channels)"
    hint = 'reshape first, e.g. {"type": "reshape", "targetShape": [steps, channels]}'
    tfjs_ignored = {**_Conv.tfjs_ignored, "dataFormat": ("channelsLast", None)}
