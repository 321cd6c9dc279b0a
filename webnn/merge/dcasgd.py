"""Delay-compensated asynchronous SGD on deltas (DC-ASGD: Zheng et al. 2017, "Asynchronous
Stochastic Gradient Descent with Delay Compensation", ICML, arXiv:1609.08326).

A client returns ``x_i`` trained from the version ``base_i``; its delta ``d_i = x_i - base_i`` was
computed at ``base_i`` while the model has since moved to ``x``. DC-ASGD corrects a stale gradient
``g`` with the first-order Taylor term, the Hessian approximated by ``lambda g (.) g``:

    g(x) ~ g(base) + lambda * g (.) g (.) (x - base)

For a delta ``d = -eta g`` the same correction, with ``lambda`` absorbing the client's learning
rate, is

    d_c = d - lambda * d (.) d (.) (x - base)          ((.): element-wise product)

and the model moves by the server learning rate times the compensated delta, every update a new
version (asynchronous SGD: deltas are summed, not mixed, so N clients make N times the progress
per second while staleness is tolerable):

    x <- x + server_lr * d_c

``lambda = 0`` is plain asynchronous SGD on deltas (FedBuff with K = 1 and ``normalize="count"``
with a constant staleness weight). Steps follow WebNN's rule ``t_n = max(t_{n-1}, t_p)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, Update
from webnn.merge.errors import ParamError
from webnn.merge.fedbuff import base_delta_check
from webnn.merge.params import Param
from webnn.merge.webnn_rules import merged_steps

CHUNK = 1 << 16
"""Values per chunk of the delay correction."""
DEFAULT_LAMBDA = 0.04
"""The variance-control parameter: the value ``lambda_0 = 0.04`` of Zheng et al.'s experiments."""


def compensated_delta(weights: np.ndarray, base: np.ndarray, model: np.ndarray,
                      lam: float) -> np.ndarray:
    """``d - lam * d * d * (model - base)`` with ``d = weights - base``, computed in `weights`
    (the correction a chunk at a time, so no model-sized temporary)."""
    np.subtract(weights, base, out=weights)
    if lam:
        scratch = np.empty(min(CHUNK, weights.size), dtype=np.float32)
        for start in range(0, weights.size, CHUNK):
            stop = min(start + CHUNK, weights.size)
            drift, d = scratch[: stop - start], weights[start:stop]
            np.subtract(model[start:stop], base[start:stop], out=drift)
            drift *= d
            drift *= d
            drift *= np.float32(lam)
            d -= drift
    return weights


class DcAsgd(Strategy):
    """x += server_lr * (d - lambda d*d*(x - base)), d = x_i - base_i; every update a version."""

    name = "dcasgd"
    description = ("DC-ASGD (Zheng et al. 2017) on deltas: d = x_i - base_i, "
                   "x += server_lr * (d - lambda * d*d*(x - base_i)); lambda = 0 is async SGD.")
    params = (
        Param("server_lr", float, 1.0, "server learning rate: the share of each delta applied",
              minimum=0),
        Param("lam", float, DEFAULT_LAMBDA, "delay-compensation strength lambda (0: none)",
              minimum=0),
    )
    needs_base_weights = True
    server_lr: float
    lam: float

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.server_lr <= 0:
            raise ParamError("server_lr",
                             f"strategy 'dcasgd': server_lr must be > 0, got {self.server_lr}")

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        delta = compensated_delta(update.weights, base, model.weights, self.lam)
        delta *= np.float32(self.server_lr)
        model.weights += delta
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True
