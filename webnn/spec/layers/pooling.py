"""Pooling: max/average over windows (1-D and 2-D) and global pooling over all positions.

Window pooling: ``strides`` defaults to ``poolSize``; output length per axis from `conv_length`.
Global pooling reduces every spatial axis: ``(None, h, w, c)`` -> ``(None, c)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from webnn.spec.layers.base import (
    Inference,
    LayerKind,
    Shape,
    as_list,
    conv_length,
    describe,
    rank_problem,
)

_FORMS = {1: "3-D input (batch, steps, channels)", 2: "4-D input (batch, height, width, channels)"}


class _Pooling(LayerKind):
    rank: ClassVar[int]

    @classmethod
    def normalise(cls, config: dict[str, Any]) -> dict[str, Any]:
        out = super().normalise(config)
        out["poolSize"] = as_list(out["poolSize"], cls.rank)
        out["strides"] = as_list(out["strides"] if out["strides"] is not None else out["poolSize"],
                                 cls.rank)
        return out

    def infer(self, shape: Shape) -> Inference:
        c = self.config
        if len(shape) != self.rank + 1:
            return Inference(None, [(None, rank_problem(self.type, shape, _FORMS[self.rank]))])
        spatial = shape[: self.rank]
        if c["padding"] == "valid" and any(p > n for p, n in zip(c["poolSize"], spatial,
                                                                  strict=True)):
            return Inference(None, [("poolSize", (
                f"pool {'x'.join(map(str, c['poolSize']))} is larger than the input "
                f"{describe(shape)} with padding 'valid'; use a smaller pool or padding 'same'"))])
        out = tuple(conv_length(n, p, c["padding"], s) for n, p, s in
                    zip(spatial, c["poolSize"], c["strides"], strict=True))
        return Inference((*out, shape[-1]))

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        config = {"poolSize": c["poolSize"], "padding": c["padding"], "strides": c["strides"]}
        if self.rank == 2:
            config["dataFormat"] = c["dataFormat"]
        return config


class MaxPooling2D(_Pooling):
    type, class_name, prefix, schema_def = "maxPooling2d", "MaxPooling2D", "max_pooling2d", \
        "pooling2d"
    rank = 2


class AveragePooling2D(_Pooling):
    type, class_name, prefix, schema_def = "averagePooling2d", "AveragePooling2D", \
        "average_pooling2d", "pooling2d"
    rank = 2


class MaxPooling1D(_Pooling):
    type, class_name, prefix, schema_def = "maxPooling1d", "MaxPooling1D", "max_pooling1d", \
        "pooling1d"
    rank = 1


class AveragePooling1D(_Pooling):
    type, class_name, prefix, schema_def = "averagePooling1d", "AveragePooling1D", \
        "average_pooling1d", "pooling1d"
    rank = 1


class _GlobalPooling(LayerKind):
    rank: ClassVar[int]

    def infer(self, shape: Shape) -> Inference:
        if len(shape) != self.rank + 1:
            return Inference(None, [(None, rank_problem(self.type, shape, _FORMS[self.rank]))])
        return Inference((shape[-1],))

    def tfjs_config(self) -> dict[str, Any]:
        return {"dataFormat": self.config["dataFormat"]} if self.rank == 2 else {}


class GlobalAveragePooling2D(_GlobalPooling):
    type, class_name, prefix, schema_def = "globalAveragePooling2d", "GlobalAveragePooling2D", \
        "global_average_pooling2d", "globalPooling2d"
    rank = 2


class GlobalMaxPooling2D(_GlobalPooling):
    type, class_name, prefix, schema_def = "globalMaxPooling2d", "GlobalMaxPooling2D", \
        "global_max_pooling2d", "globalPooling2d"
    rank = 2


class GlobalAveragePooling1D(_GlobalPooling):
    type, class_name, prefix, schema_def = "globalAveragePooling1d", "GlobalAveragePooling1D", \
        "global_average_pooling1d", "plainLayer"
    rank = 1


class GlobalMaxPooling1D(_GlobalPooling):
    type, class_name, prefix, schema_def = "globalMaxPooling1d", "GlobalMaxPooling1D", \
        "global_max_pooling1d", "plainLayer"
    rank = 1
