"""Server optimisers on buffered deltas: FedAvgM, FedAdam, FedYogi (Reddi et al. 2021, "Adaptive
Federated Optimization", ICLR, Algorithm 2; FedAvgM: Hsu et al. 2019, "Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification"), made asynchronous the
FedBuff way: K updates per server step instead of a synchronous round.

Each update contributes its delta ``d_i = x_i - base_i`` weighted by ``s_i = s(staleness_i)``
(constant 1 by default). After K updates the pseudo-gradient is their weighted mean
``D = sum_i s_i d_i / K`` and the server optimiser steps (element-wise):

- avgm: ``m <- beta1 m + D``;                                        ``x <- x + eta m``
- adam: ``m <- beta1 m + (1 - beta1) D``, ``v <- beta2 v + (1 - beta2) D^2``;
        ``x <- x + eta m / (sqrt(v) + tau)``
- yogi: as adam but ``v <- v - (1 - beta2) D^2 sign(v - D^2)``

``v`` starts at ``tau^2`` and ``m`` at 0, as in the paper (no bias correction). A step whose
moments or result are not finite (an overflow from huge finite deltas) restores ``m`` and ``v``
from copies taken before it and drops the buffer; the server then rolls the model back and
refuses the update (``merge_not_finite``), so one bad buffer cannot poison the moments for good.
Defaults are the paper's: beta1 0.9, beta2 0.99, tau 1e-3; eta (``server_lr``) defaults to 1.0
for avgm and to 0.01 for adam and yogi, whose step is about eta per coordinate whatever the
delta's scale.
Steps: ``t_n = max(t_{n-1}, max_i t_p,i)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.fedbuff import accumulate_delta, base_delta_check
from webnn.merge.params import Param
from webnn.merge.screening import all_finite
from webnn.merge.staleness import STALENESS_FUNCTIONS, make_staleness_fn, staleness_params
from webnn.merge.webnn_rules import merged_steps

OPTIMIZERS: tuple[str, ...] = ("avgm", "adam", "yogi")
DEFAULT_SERVER_LR = {"avgm": 1.0, "adam": 0.01, "yogi": 0.01}


def avgm_step(model: np.ndarray, momentum: np.ndarray, pseudo_gradient: np.ndarray,
              beta1: float, lr: float) -> None:
    """``m <- beta1 m + D; x <- x + lr m`` in place; `pseudo_gradient` is consumed (scratch)."""
    momentum *= np.float32(beta1)
    momentum += pseudo_gradient
    np.multiply(momentum, np.float32(lr), out=pseudo_gradient)
    model += pseudo_gradient


def adaptive_step(model: np.ndarray, momentum: np.ndarray, second: np.ndarray,
                  pseudo_gradient: np.ndarray, scratch: np.ndarray, *, yogi: bool,
                  beta1: float, beta2: float, tau: float, lr: float) -> None:
    """One FedAdam (``yogi=False``) or FedYogi step in place, with no model-sized temporary;
    `scratch` is overwritten and `pseudo_gradient` consumed."""
    momentum *= np.float32(beta1)
    np.multiply(pseudo_gradient, np.float32(1 - beta1), out=scratch)
    momentum += scratch
    np.square(pseudo_gradient, out=pseudo_gradient)  # D^2
    if yogi:
        np.subtract(second, pseudo_gradient, out=scratch)
        np.sign(scratch, out=scratch)
        scratch *= pseudo_gradient
        scratch *= np.float32(1 - beta2)
        second -= scratch
    else:
        second *= np.float32(beta2)
        pseudo_gradient *= np.float32(1 - beta2)
        second += pseudo_gradient
    np.sqrt(second, out=scratch)
    scratch += np.float32(tau)
    np.divide(momentum, scratch, out=scratch)
    scratch *= np.float32(lr)
    model += scratch


class FedOpt(Strategy):
    """Buffer K deltas; step a server optimiser (momentum, Adam or Yogi) on their mean."""

    name = "fedopt"
    description = ("Server optimisers on buffered deltas (Reddi et al. 2021): after K updates, "
                   "D = mean of s(staleness) * delta, then FedAvgM, FedAdam or FedYogi steps "
                   "x with server_lr.")
    params = (
        Param("optimizer", str, "adam", "server optimiser: avgm, adam or yogi",
              choices=OPTIMIZERS),
        Param("k", int, 10, "updates buffered per server step", minimum=1),
        Param("server_lr", float, None, "eta (default 1.0 for avgm, 0.01 for adam and yogi)",
              minimum=0),
        Param("beta1", float, 0.9, "momentum decay", minimum=0, maximum=1),
        Param("beta2", float, 0.99, "adam/yogi: second-moment decay", minimum=0, maximum=1),
        Param("tau", float, 1e-3, "adam/yogi: adaptivity (added to sqrt(v)); v starts at tau^2",
              minimum=0),
        Param("staleness_fn", str, "constant", "staleness weighting s of each delta: constant 1, "
              "polynomial (staleness+1)^-a, hinge 1 if staleness <= b else 1/(a(staleness-b)+1)",
              choices=STALENESS_FUNCTIONS),
        *staleness_params()[1:],  # a, b
    )
    needs_base_weights = True
    optimizer: str
    k: int
    server_lr: float | None
    beta1: float
    beta2: float
    tau: float
    staleness_fn: str
    a: float | None
    b: float | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.lr = self.server_lr if self.server_lr is not None else DEFAULT_SERVER_LR[
            self.optimizer]
        if self.lr <= 0:
            raise ParamError("server_lr",
                             f"strategy 'fedopt': server_lr must be > 0, got {self.lr}")
        if self.optimizer != "avgm" and self.tau <= 0:
            raise ParamError("tau", f"strategy 'fedopt': tau must be > 0 for {self.optimizer}")
        self.weighting = make_staleness_fn(self.staleness_fn, self.a, self.b)
        self._sum: np.ndarray | None = None
        self.momentum: np.ndarray | None = None
        self.second: np.ndarray | None = None
        self.count = 0
        self.max_steps = 0
        self.server_steps = 0

    def _allocate(self, size: int) -> None:
        if self._sum is not None and self._sum.size == size:
            return
        if self.count or self.server_steps:
            raise StrategyError(f"strategy 'fedopt': its state holds "
                                f"{0 if self._sum is None else self._sum.size} values per array, "
                                f"the model {size}")
        self._sum = np.zeros(size, dtype=np.float32)
        self.momentum = np.zeros(size, dtype=np.float32)
        self.second = (np.full(size, self.tau ** 2, dtype=np.float32)
                       if self.optimizer != "avgm" else None)
        # the moments before a step, restored if the step overflows (allocated once, reused)
        self._saved = [np.empty(size, dtype=np.float32)
                       for _ in range(1 if self.second is None else 2)]

    def effective_params(self) -> dict[str, Any]:
        """server_lr, `a` and `b` as used (the optimizer's and staleness function's defaults)."""
        return {**super().effective_params(), "server_lr": self.lr, "a": self.weighting.a,
                "b": self.weighting.b}

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        self._allocate(model.weights.size)
        assert self._sum is not None and self.momentum is not None
        accumulate_delta(self._sum, update.weights, base, self.weighting(update.staleness))
        self.count += 1
        self.max_steps = max(self.max_steps, update.steps_behind)
        if self.count < self.k:
            return False
        self._sum *= np.float32(1.0 / self.count)  # D
        moments = [self.momentum] if self.second is None else [self.momentum, self.second]
        for saved, moment in zip(self._saved, moments, strict=True):
            np.copyto(saved, moment)
        if self.optimizer == "avgm":
            avgm_step(model.weights, self.momentum, self._sum, self.beta1, self.lr)
        else:
            assert self.second is not None
            adaptive_step(model.weights, self.momentum, self.second, self._sum, update.weights,
                          yogi=self.optimizer == "yogi", beta1=self.beta1, beta2=self.beta2,
                          tau=self.tau, lr=self.lr)
        self._sum.fill(0.0)
        self.count = 0
        if not all(all_finite(a) for a in (*moments, model.weights)):
            for saved, moment in zip(self._saved, moments, strict=True):
                np.copyto(moment, saved)
            self.max_steps = 0
            return True  # the server sees the non-finite model, rolls it back and refuses
        model.steps = merged_steps(model.steps, self.max_steps)
        self.max_steps = 0
        self.server_steps += 1
        return True

    def state(self) -> StrategyState:
        """Arrays ``momentum``, ``second`` (adam/yogi), ``delta_sum`` (only while buffering);
        meta count, max_steps, server_steps."""
        arrays: dict[str, np.ndarray] = {}
        if self.momentum is not None and self.server_steps:
            arrays["momentum"] = self.momentum.copy()
            if self.second is not None:
                arrays["second"] = self.second.copy()
        if self.count and self._sum is not None:
            arrays["delta_sum"] = self._sum.copy()
        return StrategyState(arrays, {"count": self.count, "max_steps": self.max_steps,
                                      "server_steps": self.server_steps})

    def load_state(self, state: StrategyState) -> None:
        meta = state.meta
        for key in ("count", "max_steps", "server_steps"):
            value = meta.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyError(f"fedopt state: meta.{key} must be an integer >= 0, "
                                    f"got {value!r}")
        allowed = {"momentum", "delta_sum"} | ({"second"} if self.optimizer != "avgm" else set())
        unknown = sorted(set(state.arrays) - allowed)
        if unknown:
            raise StrategyError(f"fedopt state: unknown arrays {unknown} for optimizer "
                                f"{self.optimizer}")
        sizes = set()
        for name, array in state.arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 1:
                raise StrategyError(f"fedopt state: arrays.{name} must be a flat float32 array")
            if not np.all(np.isfinite(array)):
                raise StrategyError(f"fedopt state: arrays.{name} holds non-finite values")
            sizes.add(array.size)
        if len(sizes) > 1:
            raise StrategyError(f"fedopt state: arrays of different sizes {sorted(sizes)}")
        if meta.get("count", 0) and "delta_sum" not in state.arrays:
            raise StrategyError("fedopt state: meta.count is not 0 but arrays.delta_sum is missing")
        if (meta.get("server_steps", 0) and self.optimizer != "avgm"
                and "second" not in state.arrays):
            raise StrategyError(f"fedopt state: meta.server_steps is not 0 but arrays.second is "
                                f"missing ({self.optimizer} keeps a second moment)")
        if meta.get("server_steps", 0) and "momentum" not in state.arrays:
            raise StrategyError("fedopt state: meta.server_steps is not 0 but arrays.momentum is "
                                "missing")
        self._sum = self.momentum = self.second = None
        self.count = self.server_steps = 0
        if sizes:
            self._allocate(sizes.pop())
            assert self._sum is not None and self.momentum is not None
            for name, target in (("delta_sum", self._sum), ("momentum", self.momentum),
                                 ("second", self.second)):
                if name in state.arrays and target is not None:
                    np.copyto(target, state.arrays[name])
        self.count, self.max_steps = meta.get("count", 0), meta.get("max_steps", 0)
        self.server_steps = meta.get("server_steps", 0)
        if self.second is not None and not math.isfinite(float(self.second.min(initial=0))):
            raise StrategyError("fedopt state: arrays.second is not finite")
