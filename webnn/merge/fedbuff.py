"""FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous Aggregation",
AISTATS, arXiv:2106.06639).

Each update contributes its delta from the version the client started from,
``d_i = x_i - base_i``, weighted by ``s_i = s(staleness_i)`` (default ``1 / sqrt(1 + staleness)``).
The deltas are summed into one accumulator; after K of them the model moves by

    x <- x + eta * (sum_i s_i d_i) / N,   N = K          (normalize="count", the default: the
                                                          paper's Algorithm 1)
                                          N = sum_i s_i  (normalize="weights")

With ``count`` staleness damps the step (two updates 3 versions stale with s = 1/sqrt(4) move the
model half as far as two fresh ones); with ``weights`` it only ranks the buffered updates against
each other, and a buffer of equally stale updates moves as far as a fresh one.

and the accumulator is cleared. Steps: ``t_n = max(t_{n-1}, max_i t_p,i)``. Clients keep training
while updates are buffered; `merge` returns False until the flush.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from webnn.merge.base import (
    ModelState,
    Partial,
    Strategy,
    StrategyState,
    Update,
    check_same_shape,
)
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.params import Param
from webnn.merge.staleness import make_staleness_fn, staleness_params
from webnn.merge.webnn_rules import merged_steps

NORMALIZATIONS: tuple[str, ...] = ("weights", "count")


def accumulate_delta(total: np.ndarray, weights: np.ndarray, base: np.ndarray,
                     weight: float) -> None:
    """``total += weight * (weights - base)`` in place; `weights` is used as scratch."""
    check_same_shape(total, weights)
    check_same_shape(total, base)
    np.subtract(weights, base, out=weights)
    weights *= np.float32(weight)
    total += weights


def apply_scaled(model: np.ndarray, total: np.ndarray, scale: float) -> None:
    """``model += scale * total`` in place; `total` is scaled in place (it is cleared next)."""
    check_same_shape(model, total)
    total *= np.float32(scale)
    model += total


def base_delta_check(update: Update, model: np.ndarray, strategy: str) -> np.ndarray:
    """The update's base weights, after checking they exist and match the model's size."""
    if update.base_weights is None:
        raise StrategyError(
            f"strategy {strategy!r} needs the weights of the version the client started from, but "
            f"the update from {update.client!r} (base version {update.base_version}) has none"
        )
    check_same_shape(model, update.weights)
    check_same_shape(model, update.base_weights)
    return update.base_weights


class FedBuff(Strategy):
    """Buffered asynchronous aggregation: x += eta * staleness-weighted mean of K deltas."""

    name = "fedbuff"
    description = ("FedBuff (Nguyen et al. 2022): buffer K deltas d_i = x_i - base_i, then "
                   "x += server_lr * sum(s_i d_i) / K, s_i = s(staleness_i) "
                   "(default 1/sqrt(1+staleness)); normalize=weights divides by sum(s_i).")
    params = (
        Param("k", int, 10, "updates buffered before the model moves", minimum=1),
        Param("server_lr", float, 1.0, "server learning rate eta", minimum=0),
        *staleness_params(),
        Param("normalize", str, "count", "divide the weighted sum by K as in the paper's "
              "Algorithm 1 (count) or by the total weight (weights)", choices=NORMALIZATIONS),
    )
    needs_base_weights = True
    combinable = True
    k: int
    server_lr: float
    staleness_fn: str
    a: float | None
    b: float | None
    normalize: str

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.server_lr <= 0:
            raise ParamError("server_lr",
                             f"strategy 'fedbuff': server_lr must be > 0, got {self.server_lr}")
        self.weighting = make_staleness_fn(self.staleness_fn, self.a, self.b)
        self._sum: np.ndarray | None = None
        self.count = 0
        self.weight_total = 0.0
        self.max_steps = 0

    def effective_params(self) -> dict[str, Any]:
        """`a` and `b` as the staleness function uses them (its defaults filled in)."""
        return {**super().effective_params(), "a": self.weighting.a, "b": self.weighting.b}

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        total = self._buffer(model)
        weight = self.weighting(update.staleness)
        accumulate_delta(total, update.weights, base, weight)
        self.count += 1
        self.weight_total += weight
        self.max_steps = max(self.max_steps, update.steps_behind)
        return self._maybe_flush(model)

    def fold(self, partial: Partial | None, update: Update) -> Partial:
        """Pre-aggregation: ``total += s(staleness) * (x - base)``; count, weight, max steps."""
        base = base_delta_check(update, update.weights, self.name)
        if partial is None:
            partial = Partial(np.zeros_like(update.weights))
        weight = self.weighting(update.staleness)
        accumulate_delta(partial.total, update.weights, base, weight)
        partial.count += 1
        partial.weight += weight
        partial.max_steps = max(partial.max_steps, update.steps_behind)
        return partial

    def merge_partial(self, model: ModelState, partial: Partial) -> bool:
        """Add a partial's weighted deltas to the buffer; flush once it holds K or more
        updates (a partial is never split, so a flush may cover up to K + count - 1)."""
        check_same_shape(model.weights, partial.total)
        total = self._buffer(model)
        total += partial.total
        self.count += partial.count
        self.weight_total += partial.weight
        self.max_steps = max(self.max_steps, partial.max_steps)
        return self._maybe_flush(model)

    def _buffer(self, model: ModelState) -> np.ndarray:
        if self._sum is None or self._sum.size != model.weights.size:
            if self.count:
                raise StrategyError(f"strategy 'fedbuff': the buffer holds {self._sum_size()} "
                                    f"values, the model {model.weights.size}")
            self._sum = np.zeros_like(model.weights)
        return self._sum

    def _maybe_flush(self, model: ModelState) -> bool:
        assert self._sum is not None
        if self.count < self.k:
            return False
        divisor = self.weight_total if self.normalize == "weights" else float(self.count)
        apply_scaled(model.weights, self._sum, self.server_lr / divisor)
        model.steps = merged_steps(model.steps, self.max_steps)
        self._clear()
        return True

    def _clear(self) -> None:
        if self._sum is not None:
            self._sum.fill(0.0)
        self.count = 0
        self.weight_total = 0.0
        self.max_steps = 0

    def _sum_size(self) -> int:
        return 0 if self._sum is None else self._sum.size

    def state(self) -> StrategyState:
        """``arrays["delta_sum"]`` (a copy, only while buffering), meta count / weight_total /
        max_steps."""
        arrays = {"delta_sum": self._sum.copy()} if self.count and self._sum is not None else {}
        return StrategyState(arrays, {"count": self.count, "weight_total": self.weight_total,
                                      "max_steps": self.max_steps})

    def load_state(self, state: StrategyState) -> None:
        count = state.meta.get("count", 0)
        total = state.meta.get("weight_total", 0.0)
        max_steps = state.meta.get("max_steps", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise StrategyError(f"fedbuff state: meta.count must be an integer >= 0, got {count!r}")
        if (isinstance(total, bool) or not isinstance(total, int | float)
                or not math.isfinite(total) or total < 0):
            raise StrategyError(f"fedbuff state: meta.weight_total must be a finite number >= 0, "
                                f"got {total!r}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise StrategyError(f"fedbuff state: meta.max_steps must be an integer >= 0, "
                                f"got {max_steps!r}")
        unknown = sorted(set(state.arrays) - {"delta_sum"})
        if unknown:
            raise StrategyError(f"fedbuff state: unknown arrays {unknown}")
        delta_sum = state.arrays.get("delta_sum")
        if count and delta_sum is None:
            raise StrategyError(f"fedbuff state: meta.count is {count} but arrays.delta_sum is "
                                "missing")
        if delta_sum is not None:
            if (not isinstance(delta_sum, np.ndarray) or delta_sum.dtype != np.float32
                    or delta_sum.ndim != 1):
                raise StrategyError("fedbuff state: arrays.delta_sum must be a flat float32 array")
            self._sum = np.array(delta_sum, dtype=np.float32, copy=True)
        elif self._sum is not None:
            self._sum.fill(0.0)
        self.count, self.weight_total, self.max_steps = count, float(total), max_steps
