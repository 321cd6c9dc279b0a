"""Embedding: integer indices in ``[0, inputDim)`` -> vectors of `outputDim`.

Output shape is the input shape plus ``(outputDim,)``; one weight ``embeddings (inputDim,
outputDim)``. TF.js casts the input to int32, so the model's input layer stays float32 while
batches may carry int32 indices (``inputDtype``).
"""

from __future__ import annotations

from typing import Any

from webnn.spec.layers.base import Inference, LayerKind, Shape, WeightDef
from webnn.spec.layers.core import null_keys


class Embedding(LayerKind):
    type, class_name, prefix, schema_def = "embedding", "Embedding", "embedding", "embedding"
    tfjs_ignored = {**null_keys("embeddingsRegularizer", "activityRegularizer",
                                "embeddingsConstraint"), "inputLength": None}

    @classmethod
    def normalise(cls, config: dict[str, Any]) -> dict[str, Any]:
        out = super().normalise(config)
        out["maskZero"] = bool(out["maskZero"])
        return out

    def infer(self, shape: Shape) -> Inference:
        return Inference((*shape, self.config["outputDim"]))

    def weights(self, shape: Shape) -> list[WeightDef]:
        c = self.config
        return [WeightDef("embeddings", (c["inputDim"], c["outputDim"]),
                          self.initializer("embeddingsInitializer"), "embeddingsInitializer")]

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        return {"inputDim": c["inputDim"], "outputDim": c["outputDim"],
                "embeddingsInitializer": self.initializer("embeddingsInitializer").tfjs_config(),
                "embeddingsRegularizer": None, "activityRegularizer": None,
                "embeddingsConstraint": None, "maskZero": c["maskZero"], "inputLength": None}
