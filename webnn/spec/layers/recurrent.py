"""Recurrent layers on ``(batch, steps, features)``: simpleRNN, gru, lstm.

With ``g`` gates (1 simpleRNN, 3 gru (z, r, h), 4 lstm (i, f, c, o)) the weights are
kernel ``(features, g units)``, recurrent_kernel ``(units, g units)``, bias ``(g units,)``.
Output ``(batch, units)``, or ``(batch, steps, units)`` with `returnSequences`.
With `unitForgetBias` (default true, as in Keras) the LSTM forget-gate bias starts at ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

from webnn.spec.initializers import Sampler, UnitForgetBias
from webnn.spec.layers.base import Inference, LayerKind, Shape, WeightDef, rank_problem
from webnn.spec.layers.core import null_keys

_RNN_NULLS = ("kernelRegularizer", "recurrentRegularizer", "biasRegularizer",
              "activityRegularizer", "kernelConstraint", "recurrentConstraint", "biasConstraint")


class _Recurrent(LayerKind):
    gates: ClassVar[int]
    tfjs_ignored = {**null_keys(*_RNN_NULLS), "implementation": None,
                    "returnState": (False, None), "stateful": (False, None),
                    "unroll": (False, None), "timeMajor": (False, None),
                    "zeroOutputForMask": None}

    def infer(self, shape: Shape) -> Inference:
        if len(shape) != 2:
            return Inference(None, [(None, rank_problem(
                self.type, shape, "3-D input (batch, steps, features)",
                'reshape first, e.g. {"type": "reshape", "targetShape": [steps, features]}, '
                "or use an embedding layer"))])
        units = self.config["units"]
        return Inference((shape[0], units) if self.config["returnSequences"] else (units,))

    def bias_sampler(self) -> Sampler:
        return self.initializer("biasInitializer")

    def weights(self, shape: Shape) -> list[WeightDef]:
        units, width = self.config["units"], self.gates * self.config["units"]
        out = [WeightDef("kernel", (shape[-1], width), self.initializer("kernelInitializer"),
                         "kernelInitializer"),
               WeightDef("recurrent_kernel", (units, width),
                         self.initializer("recurrentInitializer"), "recurrentInitializer")]
        if self.config["useBias"]:
            out.append(WeightDef("bias", (width,), self.bias_sampler(), "biasInitializer"))
        return out

    def extra_config(self) -> dict[str, Any]:
        return {}

    def tfjs_config(self) -> dict[str, Any]:
        c = self.config
        return {
            "units": c["units"], "activation": c["activation"], **self.extra_config(),
            "useBias": c["useBias"],
            **{key: self.initializer(key).tfjs_config()
               for key in ("kernelInitializer", "recurrentInitializer", "biasInitializer")},
            **dict.fromkeys(_RNN_NULLS),
            "dropout": c["dropout"], "recurrentDropout": c["recurrentDropout"],
            "returnSequences": c["returnSequences"], "returnState": False,
            "goBackwards": c["goBackwards"], "stateful": False, "unroll": False,
        }


class SimpleRNN(_Recurrent):
    type, class_name, prefix, schema_def = "simpleRNN", "SimpleRNN", "simple_rnn", "simpleRNN"
    gates = 1


class GRU(_Recurrent):
    type, class_name, prefix, schema_def = "gru", "GRU", "gru", "gru"
    gates = 3

    def extra_config(self) -> dict[str, Any]:
        return {"recurrentActivation": self.config["recurrentActivation"],
                "implementation": None, "resetAfter": False}


class LSTM(_Recurrent):
    type, class_name, prefix, schema_def = "lstm", "LSTM", "lstm", "lstm"
    gates = 4

    def bias_sampler(self) -> Sampler:
        inner = self.initializer("biasInitializer")
        return UnitForgetBias(inner, self.config["units"]) if self.config["unitForgetBias"] \
            else inner

    def extra_config(self) -> dict[str, Any]:
        return {"recurrentActivation": self.config["recurrentActivation"],
                "unitForgetBias": self.config["unitForgetBias"], "implementation": None}
