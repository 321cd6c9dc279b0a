"""Batch normalisation over one axis (default the last, channels).

Weights, in TF.js creation order: gamma (if `scale`), beta (if `center`), then the non-trainable
moving_mean and moving_variance, each of shape ``(input_shape[axis],)``.
"""

from __future__ import annotations

from typing import Any

from webnn.spec.layers.base import Inference, LayerKind, Shape, WeightDef, describe
from webnn.spec.layers.core import null_keys

_WEIGHTS = (("gamma", "gammaInitializer", "scale"), ("beta", "betaInitializer", "center"),
            ("moving_mean", "movingMeanInitializer", None),
            ("moving_variance", "movingVarianceInitializer", None))


class BatchNormalization(LayerKind):
    type, class_name, prefix, schema_def = "batchNormalization", "BatchNormalization", \
        "batch_normalization", "batchNormalization"
    tfjs_ignored = {
        **null_keys("betaRegularizer", "gammaRegularizer", "betaConstraint", "gammaConstraint"),
        "fused": None, "renorm": (False, None), "renormClipping": (None,),
        "renormMomentum": None, "virtualBatchSize": (None,), "adjustment": (None,),
    }

    def _axis(self, shape: Shape) -> int | None:
        """The axis counted with the batch dimension (TF.js convention), or None if out of range."""
        axis = self.config["axis"]
        full = axis if axis >= 0 else len(shape) + 1 + axis
        return full if 1 <= full <= len(shape) else None

    def infer(self, shape: Shape) -> Inference:
        if self._axis(shape) is None:
            return Inference(None, [("axis", (
                f"axis {self.config['axis']} is not a feature axis of the input {describe(shape)} "
                f"(use 1..{len(shape)} or -1..-{len(shape)}; axis 0 is the batch)"))])
        return Inference(shape)

    def weights(self, shape: Shape) -> list[WeightDef]:
        axis = self._axis(shape)
        assert axis is not None
        dim = (shape[axis - 1],)
        c = self.config
        return [WeightDef(name, dim, self.initializer(key), key,
                          trainable=flag is not None and self.trainable)
                for name, key, flag in _WEIGHTS if flag is None or c[flag]]

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        return {"axis": c["axis"], "momentum": c["momentum"], "epsilon": c["epsilon"],
                "center": c["center"], "scale": c["scale"],
                **{key: self.initializer(key).tfjs_config() for _, key, _ in _WEIGHTS},
                "betaRegularizer": None, "gammaRegularizer": None, "betaConstraint": None,
                "gammaConstraint": None}
