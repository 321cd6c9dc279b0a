"""FedAsync (Xie, Koyejo, Gupta 2019, "Asynchronous Federated Optimization", arXiv:1903.03934).

Every returned weight set is mixed into the model as it arrives:

    x_t = (1 - a_t) x_{t-1} + a_t x_new,    a_t = alpha * s(staleness)

with ``s`` one of the staleness functions of `webnn.merge.staleness` (constant, polynomial, hinge).
Steps follow WebNN's rule ``t_n = max(t_{n-1}, t_p)``. Every merge makes a new version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, Update, check_same_shape
from webnn.merge.errors import ParamError
from webnn.merge.params import Param
from webnn.merge.staleness import make_staleness_fn, staleness_params
from webnn.merge.webnn_rules import merged_steps


def mix_into(model: np.ndarray, update: np.ndarray, weight: float) -> None:
    """``model = (1 - weight) model + weight update`` in place; `update` is used as scratch.

    Computed as ``model + weight (update - model)`` in the update's buffer, so the model is written
    once and no temporary the size of the model is allocated. ``weight = 1`` copies the update
    exactly, ``weight = 0`` leaves the model unchanged.
    """
    check_same_shape(model, update)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixing weight must be in [0, 1], got {weight}")
    if weight == 1.0:
        np.copyto(model, update)
        return
    if weight == 0.0:
        return
    np.subtract(update, model, out=update)
    update *= np.float32(weight)
    model += update


class FedAsync(Strategy):
    """x_t = (1 - a_t) x_{t-1} + a_t x_new with a_t = alpha * s(staleness)."""

    name = "fedasync"
    description = ("FedAsync (Xie et al. 2019): x_t = (1 - a_t) x_{t-1} + a_t x_new, "
                   "a_t = alpha * s(staleness); t_n = max(t_{n-1}, t_p).")
    params = (
        Param("alpha", float, 0.6, "mixing weight of a fresh update", minimum=0, maximum=1),
        *staleness_params(),
    )
    alpha: float
    staleness_fn: str
    a: float | None
    b: float | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.alpha <= 0:
            raise ParamError("alpha", f"strategy 'fedasync': alpha must be > 0, got {self.alpha}")
        self.weighting = make_staleness_fn(self.staleness_fn, self.a, self.b)

    def mixing_weight(self, staleness: int) -> float:
        """a_t = alpha * s(staleness)."""
        return self.alpha * self.weighting(staleness)

    def effective_params(self) -> dict[str, Any]:
        """`a` and `b` as the staleness function uses them (its defaults filled in)."""
        return {**super().effective_params(), "a": self.weighting.a, "b": self.weighting.b}

    def merge(self, model: ModelState, update: Update) -> bool:
        mix_into(model.weights, update.weights, self.mixing_weight(update.staleness))
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True
