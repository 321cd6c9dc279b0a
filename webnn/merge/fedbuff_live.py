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

Steps: ``t_n = max(t_{n-1}, max_i t_p,i)``. State (checkpointed): the delta sum, the round's
clients (in arrival order) with the largest step count and the previous
round's clients.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.fedbuff import accumulate_delta, apply_scaled, base_delta_check
from webnn.merge.params import Param
from webnn.merge.staleness import make_staleness_fn, staleness_params
from webnn.merge.webnn_rules import merged_steps


class FedBuffLive(Strategy):
    """Rounds of one update per live client; x += server_lr * mean of the round's deltas."""

    name = "fedbuff_live"
    description = ("FedBuff with K = the live clients: a round of deltas d_i = x_i - base_i from "
                   "distinct clients closes when every client of the previous round has "
                   "contributed or one repeats; then x += server_lr * sum(s_i d_i) / K.")
    params = (
        Param("server_lr", float, 0.5, "server learning rate eta (0.5: `average` for one "
              "client; the best measured for Adam clients, docs/scaling.md)", minimum=0),
        *(replace(p, default="constant") if p.name == "staleness_fn" else p
          for p in staleness_params()),
    )
    needs_base_weights = True
    server_lr: float
    staleness_fn: str
    a: float | None
    b: float | None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.server_lr <= 0:
            raise ParamError("server_lr", f"strategy {self.name!r}: server_lr must be > 0, "
                                          f"got {self.server_lr}")
        self.weighting = make_staleness_fn(self.staleness_fn, self.a, self.b)
        self._sum: np.ndarray | None = None
        self.round: list[str] = []
        self.previous: list[str] = []
        self.max_steps = 0

    def effective_params(self) -> dict[str, Any]:
        """`a` and `b` as the staleness function uses them (its defaults filled in)."""
        return {**super().effective_params(), "a": self.weighting.a, "b": self.weighting.b}

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
        apply_scaled(model.weights, total, self.server_lr / len(self.round))
        model.steps = merged_steps(model.steps, self.max_steps)
        self.previous = self.round
        self.round = []
        total.fill(0.0)
        self.max_steps = 0

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
        """``arrays["delta_sum"]`` (a copy, only while a round is open); meta ``round``,
        ``previous`` (client names), ``max_steps``."""
        arrays = {"delta_sum": self._sum.copy()} if self.round and self._sum is not None else {}
        return StrategyState(arrays, {"round": list(self.round), "previous": list(self.previous),
                                      "max_steps": self.max_steps})

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
        max_steps = meta.get("max_steps", 0)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise StrategyError(f"{what}: meta.max_steps must be an integer >= 0, "
                                f"got {max_steps!r}")
        unknown = sorted(set(state.arrays) - {"delta_sum"})
        if unknown:
            raise StrategyError(f"{what}: unknown arrays {unknown}")
        delta_sum = state.arrays.get("delta_sum")
        if lists["round"] and delta_sum is None:
            raise StrategyError(f"{what}: meta.round holds {len(lists['round'])} clients but "
                                "arrays.delta_sum is missing")
        if delta_sum is not None and (not isinstance(delta_sum, np.ndarray)
                                      or delta_sum.dtype != np.float32 or delta_sum.ndim != 1):
            raise StrategyError(f"{what}: arrays.delta_sum must be a flat float32 array")
        self._sum = None if delta_sum is None else delta_sum.copy()
        self.round, self.previous = lists["round"], lists["previous"]
        self.max_steps = max_steps
