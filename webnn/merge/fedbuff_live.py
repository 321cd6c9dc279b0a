"""FedBuff whose buffer follows the number of live clients: one round = one update per client.

FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous Aggregation",
AISTATS, arXiv:2106.06639) averages K client deltas before the model moves. K fixed in advance
is wrong for volunteers, who come and go: K larger than the clients present makes every step wait
for repeat updates, K = 1 with many clients sums N stale deltas at once (asynchronous SGD at an
N-fold step, which diverges with Adam clients, docs/scaling.md). This strategy sets K to the
clients present, without a clock: a *round* collects the deltas ``d_i = x_i - base_i`` of
distinct clients and closes (the model moves) when

1. every client of the previous round has contributed to this one (K = the live clients; with a
   single client every update closes its round), or
2. a client returns a second update before that (a client left, or speeds differ): the round
   closes *without* the repeat, which opens the next round.

On closing, with weights ``s_i = s(staleness_i)`` (constant 1 by default; FedAsync's functions)

    x <- x + server_lr * sum_i s_i d_i / K

which is synchronous data parallelism's step over the round's clients (Goyal et al. 2017,
"Accurate, Large Minibatch SGD": the average of N gradients is one step of an N-times larger
batch) without its barrier: nobody waits, a slow client's update joins a later round, stale by the
versions it missed. With one client and ``server_lr = 0.5`` it is exactly `average` (Lookahead,
Zhang et al. 2019, alpha = 0.5); with N clients the step keeps the size of one client's delta and
gains its precision from the N-fold batch, so the clients' learning rate can grow with N
(the square-root rule for Adam, Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive
Gradient Algorithms").

Server optimiser (``server_optimizer``; Reddi et al. 2021, "Adaptive Federated Optimization",
ICLR, Algorithm 2, with a round's mean delta ``D = sum_i s_i d_i / K`` as the pseudo-gradient;
FedBuff with a server optimiser: Nguyen et al. 2022). Unset (``none``, the default) is the step
above,
``x <- x + server_lr D``. The others step element-wise with `webnn.merge.fedopt`'s update
functions, once per round:

- avgm: ``m <- beta1 m + D``;                                        ``x <- x + server_lr m``
- adam: ``m <- beta1 m + (1 - beta1) D``, ``v <- beta2 v + (1 - beta2) D^2``;
        ``x <- x + server_lr m / (sqrt(v) + tau)``
- yogi: as adam but ``v <- v - (1 - beta2) D^2 sign(v - D^2)``

``m`` starts at 0 and ``v`` at ``tau^2`` (no bias correction, as in the paper). With clients that
take one plain SGD step per task (``d_i = -lr_c g_i``), ``D`` is ``-lr_c`` times the gradient of
the round's K-fold batch, so server Adam is large-batch Adam without a barrier, each gradient
about one round stale; the step is about ``server_lr`` per coordinate whatever ``lr_c`` is (while
``tau`` is small against ``|D|``). ``server_lr`` defaults to 0.5 for none, 1.0 for avgm and 0.01
for adam and yogi. A step whose moments or result are not finite restores the moments from copies
taken before it (the server then rolls the model back and refuses the update), as fedopt does.

Steps: ``t_n = max(t_{n-1}, max_i t_p,i)``. State (checkpointed): the delta sum, the round's
clients (in arrival order) with the largest step count and the previous
round's clients; with a server optimiser, its moments and the number of its steps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.fedbuff import accumulate_delta, apply_scaled, base_delta_check
from webnn.merge.fedopt import DEFAULT_SERVER_LR, OPTIMIZERS, adaptive_step, avgm_step
from webnn.merge.params import Param
from webnn.merge.screening import all_finite
from webnn.merge.staleness import make_staleness_fn, staleness_params
from webnn.merge.webnn_rules import merged_steps


class FedBuffLive(Strategy):
    """Rounds of one update per live client; x += server_lr * mean of the round's deltas, or a
    server optimiser's step on that mean."""

    name = "fedbuff_live"
    description = ("FedBuff with K = the live clients: a round of deltas d_i = x_i - base_i from "
                   "distinct clients closes when every client of the previous round has "
                   "contributed or one repeats; then x += server_lr * sum(s_i d_i) / K, or a "
                   "server optimiser (avgm, adam, yogi; Reddi et al. 2021) steps on that mean.")
    params = (
        Param("server_lr", float, None, "server learning rate eta (default 0.5 for none: "
              "`average` for one client, the best measured for Adam clients, docs/scaling.md; "
              "1.0 for avgm, 0.01 for adam and yogi)", minimum=0),
        Param("server_optimizer", str, None, "optimiser stepping the round's mean delta D: "
              "unset/none (x += server_lr D), avgm, adam or yogi (Reddi et al. 2021)",
              choices=OPTIMIZERS),
        Param("beta1", float, 0.9, "avgm/adam/yogi: momentum decay", minimum=0, maximum=1),
        Param("beta2", float, 0.99, "adam/yogi: second-moment decay", minimum=0, maximum=1),
        Param("tau", float, 1e-3, "adam/yogi: adaptivity (added to sqrt(v)); v starts at tau^2",
              minimum=0),
        *(replace(p, default="constant") if p.name == "staleness_fn" else p
          for p in staleness_params()),
    )
    needs_base_weights = True
    server_lr: float | None
    server_optimizer: str | None
    beta1: float
    beta2: float
    tau: float
    staleness_fn: str
    a: float | None
    b: float | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.lr = (self.server_lr if self.server_lr is not None
                   else DEFAULT_SERVER_LR.get(self.server_optimizer or "", 0.5))
        if self.lr <= 0:
            raise ParamError("server_lr", f"strategy {self.name!r}: server_lr must be > 0, "
                                          f"got {self.lr}")
        if self.server_optimizer in ("adam", "yogi") and self.tau <= 0:
            raise ParamError("tau", f"strategy {self.name!r}: tau must be > 0 for "
                                    f"server_optimizer {self.server_optimizer}, got {self.tau}")
        self.weighting = make_staleness_fn(self.staleness_fn, self.a, self.b)
        self._sum: np.ndarray | None = None
        self.round: list[str] = []
        self.previous: list[str] = []
        self.max_steps = 0
        self.momentum: np.ndarray | None = None
        self.second: np.ndarray | None = None
        self.server_steps = 0
        # model-sized buffers kept between rounds: the moments saved before a server-optimiser
        # step (restored if it overflows) and adam/yogi's scratch (not a fresh allocation each
        # round)
        self._spare: list[np.ndarray] = []

    def effective_params(self) -> dict[str, Any]:
        """server_lr as used (the optimiser's default), `a` and `b` as the staleness function uses
        them (its defaults filled in)."""
        return {**super().effective_params(), "server_lr": self.lr, "a": self.weighting.a,
                "b": self.weighting.b}

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        total = self._buffer(model)
        moved = False
        if update.client in self.round:  # rule 2: close the round without the repeat
            self._flush(model, total)
            moved = True
        accumulate_delta(total, update.weights, base, self.weighting(update.staleness))
        self.round.append(update.client)
        self.max_steps = max(self.max_steps, update.steps_behind)
        if set(self.previous) <= set(self.round):  # rule 1: every client of the last round
            self._flush(model, total)
            moved = True
        return moved

    def report(self) -> dict[str, Any]:
        """``liveClients``: the clients of the last closed round (the current K)."""
        return {"liveClients": len(self.previous)}

    def _flush(self, model: ModelState, total: np.ndarray) -> None:
        if self.server_optimizer is None:
            apply_scaled(model.weights, total, self.lr / len(self.round))
            finite = True
        else:
            finite = self._optimizer_step(model.weights, total, len(self.round))
        if finite:
            model.steps = merged_steps(model.steps, self.max_steps)
        self.previous = self.round
        self.round = []
        total.fill(0.0)
        self.max_steps = 0

    def _optimizer_step(self, weights: np.ndarray, total: np.ndarray, count: int) -> bool:
        """One server-optimiser step on ``D = total / count`` (`total` consumed); False (the
        moments restored) when the moments or the model are not finite afterwards."""
        if self.momentum is None or self.momentum.size != weights.size:
            if self.server_steps:
                raise StrategyError(
                    f"strategy {self.name!r}: the server optimiser's moments hold "
                    f"{0 if self.momentum is None else self.momentum.size} values, the model "
                    f"{weights.size}")
            self._allocate_moments(weights.size)
        assert self.momentum is not None
        moments = [self.momentum] if self.second is None else [self.momentum, self.second]
        spare = self._spares(len(moments) + (self.second is not None), weights.size)
        saved = spare[:len(moments)]
        for copy, moment in zip(saved, moments, strict=True):
            np.copyto(copy, moment)
        total *= np.float32(1.0 / count)  # D
        if self.server_optimizer == "avgm":
            avgm_step(weights, self.momentum, total, self.beta1, self.lr)
        else:
            assert self.second is not None
            adaptive_step(weights, self.momentum, self.second, total, spare[-1],
                          yogi=self.server_optimizer == "yogi", beta1=self.beta1,
                          beta2=self.beta2, tau=self.tau, lr=self.lr)
        if not all(all_finite(a) for a in (*moments, weights)):
            for moment, copy in zip(moments, saved, strict=True):
                np.copyto(moment, copy)
            return False
        self.server_steps += 1
        return True

    def _spares(self, count: int, size: int) -> list[np.ndarray]:
        """`count` float32 buffers of `size` values (contents undefined), kept for the next
        round; made again only when the model's size changes."""
        if len(self._spare) < count or self._spare[0].size != size:
            self._spare = [np.empty(size, dtype=np.float32) for _ in range(count)]
        return self._spare[:count]

    def _allocate_moments(self, size: int) -> None:
        self.momentum = np.zeros(size, dtype=np.float32)
        self.second = (np.full(size, self.tau ** 2, dtype=np.float32)
                       if self.server_optimizer in ("adam", "yogi") else None)

    def _buffer(self, model: ModelState) -> np.ndarray:
        if self._sum is None or self._sum.size != model.weights.size:
            if self.round:
                raise StrategyError(
                    f"strategy {self.name!r}: the buffer holds "
                    f"{0 if self._sum is None else self._sum.size} values, the model "
                    f"{model.weights.size}")
            self._sum = np.zeros_like(model.weights)
        return self._sum

    def state(self) -> StrategyState:
        """``arrays["delta_sum"]`` (a copy, only while a round is open), ``momentum`` and
        ``second`` (adam/yogi; after the server optimiser's first step); meta ``round``,
        ``previous`` (client names), ``max_steps``, ``server_steps``."""
        arrays = {"delta_sum": self._sum.copy()} if self.round and self._sum is not None else {}
        if self.server_steps and self.momentum is not None:
            arrays["momentum"] = self.momentum.copy()
            if self.second is not None:
                arrays["second"] = self.second.copy()
        return StrategyState(arrays, {"round": list(self.round), "previous": list(self.previous),
                                      "max_steps": self.max_steps,
                                      "server_steps": self.server_steps})

    def load_state(self, state: StrategyState) -> None:
        what = f"{self.name} state"
        meta = state.meta
        lists: dict[str, list[str]] = {}
        for key in ("round", "previous"):
            value = meta.get(key, [])
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise StrategyError(f"{what}: meta.{key} must be a list of client names, "
                                    f"got {value!r}")
            if len(set(value)) != len(value):
                raise StrategyError(f"{what}: meta.{key} names a client twice: {value!r}")
            lists[key] = value
        counts: dict[str, int] = {}
        for key in ("max_steps", "server_steps"):
            value = meta.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyError(f"{what}: meta.{key} must be an integer >= 0, got {value!r}")
            counts[key] = value
        moment_names = {None: [], "avgm": ["momentum"]}.get(self.server_optimizer,
                                                             ["momentum", "second"])
        unknown = sorted(set(state.arrays) - {"delta_sum", *moment_names})
        if unknown:
            raise StrategyError(f"{what}: unknown arrays {unknown} for server_optimizer "
                                f"{self.server_optimizer}")
        if counts["server_steps"] and self.server_optimizer is None:
            raise StrategyError(f"{what}: meta.server_steps is {counts['server_steps']} but "
                                "server_optimizer is none")
        for name in moment_names:
            if counts["server_steps"] and name not in state.arrays:
                raise StrategyError(f"{what}: meta.server_steps is not 0 but arrays.{name} is "
                                    f"missing ({self.server_optimizer} keeps it)")
        for name, array in state.arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 1:
                raise StrategyError(f"{what}: arrays.{name} must be a flat float32 array")
            if name != "delta_sum" and not all_finite(array):
                raise StrategyError(f"{what}: arrays.{name} holds non-finite values")
        sizes = sorted({array.size for array in state.arrays.values()})
        if len(sizes) > 1:
            raise StrategyError(f"{what}: arrays of different sizes {sizes}")
        delta_sum = state.arrays.get("delta_sum")
        if lists["round"] and delta_sum is None:
            raise StrategyError(f"{what}: meta.round holds {len(lists['round'])} clients but "
                                "arrays.delta_sum is missing")
        self._sum = None if delta_sum is None else delta_sum.copy()
        self.round, self.previous = lists["round"], lists["previous"]
        self.max_steps, self.server_steps = counts["max_steps"], counts["server_steps"]
        self.momentum = self.second = None
        if "momentum" in state.arrays:
            self._allocate_moments(state.arrays["momentum"].size)
            for name, target in (("momentum", self.momentum), ("second", self.second)):
                if target is not None:
                    np.copyto(target, state.arrays[name])
