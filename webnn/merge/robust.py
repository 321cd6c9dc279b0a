"""Robust aggregation over a buffer of K deltas: coordinate median, trimmed mean, norm clipping.

Each update contributes its delta from the version the client started from,
``d_i = x_i - base_i``, optionally clipped to ``d_i * min(1, C / ||d_i||)``. The bound C is fixed
(``clip=fixed``, ``clip_norm``; norm thresholding as in Sun et al. 2019, "Can You Really Backdoor
Federated Learning?") or adaptive (``clip=adaptive``): ``C = clip_factor * quantile(norms of the
last clip_window deltas, clip_quantile)``, from the deltas seen before this one, once
``clip_min_history`` of them were seen (a quantile of recent norms as in Andrew et al. 2021,
"Differentially Private Learning with Adaptive Clipping", computed exactly over a window here
rather than estimated online).
After K deltas the model moves by ``x <- x + server_lr * agg(d_1..d_K)`` with agg one of

- median:       coordinate-wise median (mean of the two middle values for even K)
                (Yin et al. 2018, "Byzantine-Robust Distributed Learning", ICML);
- trimmed_mean: per coordinate, drop the g smallest and g largest values and average the ``K - 2g``
                left (Yin et al. 2018), ``g = clamp(floor(trim * K), 1, (K - 1) // 2)`` when
                ``trim > 0``: K=5, trim=0.2 drops one at each end, and so does any buffer of 3 to
                9 rows at the default trim 0.1 (a bare floor would trim nothing below 1/trim rows,
                which with per-client rows means below 10 clients: a plain mean);
- mean:         the plain mean (with clipping, the baseline);
- krum:         the one delta whose ``K - f - 2`` nearest other deltas are closest to it:
                score ``s(i) = sum_{j in N(i)} ||d_i - d_j||^2`` over those neighbours N(i), the
                delta of least score wins (Blanchard et al. 2017, "Machine Learning with
                Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS); its guarantee needs
                ``K > 2f + 2``;
- multi_krum:   the mean of the ``m`` deltas of least Krum score (same paper; m defaults to
                ``K - f``).
Krum and multi-Krum never aggregate fewer than ``2f + 3`` rows (their guarantee needs
``K > 2f + 2``): ``k < 2f + 3`` is refused as a parameter error, and with ``per_client`` a buffer
flushes only once it holds rows from ``max(min(min_clients, k), 2f + 3)`` distinct clients (until
then the model waits and a warning says why). Falling back to fewer rows (a lower f, or a plain
mean below 3 rows) would hand the aggregate to two colluding clients whose deltas sit close
together.

With ``per_client`` (the default) each client counts once per buffer: its deltas in one buffer
are kept as their running mean in one row, agg runs over the distinct clients' rows, and the
buffer flushes once it holds K deltas from at least ``min(min_clients, K)`` distinct clients
(3 by default: the fewest a median can outvote one client with). Asynchrony lets a fast client
fill most of a buffer; counted per update, a hostile client that lands 3 of K=5 deltas, or a
buffer filled by two clients (one of them hostile), hands it the aggregate (``wnn compare
experiments/poisoning.toml`` showed both). With fewer than ``min_clients`` clients active the model
waits.

The rows are one (K, n) float32 array: the median and trimmed mean need every copy.
Steps: ``t_n = max(t_{n-1}, max_i t_p,i)``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update, check_same_shape
from webnn.merge.errors import ParamError, StrategyError
from webnn.merge.fedbuff import base_delta_check
from webnn.merge.params import Param
from webnn.merge.screening import NormWindow, delta_norm
from webnn.merge.webnn_rules import merged_steps

log = logging.getLogger("webnn.merge")

AGGREGATORS: tuple[str, ...] = ("median", "trimmed_mean", "mean", "krum", "multi_krum")
CLIP_MODES: tuple[str, ...] = ("fixed", "adaptive")
"""Values of ``clip`` besides None (given as ``none``: no clipping)."""


def trim_count(k: int, trim: float) -> int:
    """Values dropped at each end of `k`: ``floor(trim * k)``, but with ``trim > 0`` at least 1
    and at most ``(k - 1) // 2`` (one value always survives); 0 for ``trim = 0``. Needs
    ``0 <= trim < 0.5``."""
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    if trim == 0.0:
        return 0
    g = int(math.floor(trim * k + 1e-9))  # 0.29 * 100 is 28.999999999999996
    return min(max(g, 1), (k - 1) // 2)


def _check_stack(stack: np.ndarray, out: np.ndarray) -> None:
    if stack.ndim != 2 or stack.shape[0] < 1:
        raise ValueError(f"expected a (K, n) stack of K >= 1 deltas, got shape {stack.shape}")
    check_same_shape(out, stack[0])


def coordinate_median(stack: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = median(stack[:, j])``; for even K the mean of the two middle values.

    Sorts `stack` in place along axis 0 (it is the buffer about to be cleared).
    """
    _check_stack(stack, out)
    k = stack.shape[0]
    stack.sort(axis=0)
    if k % 2:
        np.copyto(out, stack[k // 2])
    else:
        np.add(stack[k // 2 - 1], stack[k // 2], out=out)
        out *= np.float32(0.5)


def trimmed_mean(stack: np.ndarray, trim: float, out: np.ndarray) -> None:
    """``out[j]`` = mean of ``stack[:, j]`` without its g smallest and g largest values,
    ``g = trim_count(K, trim)``. Sorts `stack` in place along axis 0 when g > 0.
    """
    _check_stack(stack, out)
    k = stack.shape[0]
    g = trim_count(k, trim)
    if g:
        stack.sort(axis=0)
    np.sum(stack[g : k - g], axis=0, out=out)
    out *= np.float32(1.0 / (k - 2 * g))


_CHUNK = 1 << 16


def krum_scores(stack: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each row: the sum of its squared distances to its ``K - f - 2`` nearest other
    rows. Needs ``K - f - 2 >= 1``. Distances come from row differences in one scratch row (no
    K x n temporary), summed per 64k-value chunk in float32 and across chunks in float64."""
    k = stack.shape[0]
    neighbours = k - f - 2
    if neighbours < 1:
        raise ValueError(f"krum needs K >= f + 3 rows, got K={k} with f={f}")
    squared = np.zeros((k, k), dtype=np.float64)
    scratch = np.empty_like(stack[0])
    for i in range(k):
        for j in range(i + 1, k):
            np.subtract(stack[i], stack[j], out=scratch)
            squared[i, j] = squared[j, i] = sum(
                float(np.dot(part, part)) for part in np.array_split(
                    scratch, max(1, scratch.size // _CHUNK)))
    np.fill_diagonal(squared, np.inf)
    nearest = np.sort(squared, axis=1)[:, :neighbours]
    return nearest.sum(axis=1)


def multi_krum(stack: np.ndarray, f: int, m: int, out: np.ndarray) -> list[int]:
    """``out`` = mean of the `m` rows of least `krum_scores` (m = 1: Krum); returns their indices
    (ties go to the lower index)."""
    _check_stack(stack, out)
    if not 1 <= m <= stack.shape[0]:
        raise ValueError(f"multi_krum needs 1 <= m <= K={stack.shape[0]}, got m={m}")
    chosen = sorted(np.argsort(krum_scores(stack, f), kind="stable")[:m].tolist())
    np.copyto(out, stack[chosen[0]])
    for i in chosen[1:]:  # row by row: stack[chosen] would copy m rows
        out += stack[i]
    out *= np.float32(1.0 / m)
    return chosen


def mean(stack: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = mean(stack[:, j])``."""
    _check_stack(stack, out)
    np.sum(stack, axis=0, out=out)
    out *= np.float32(1.0 / stack.shape[0])


def krum_rows(f: int) -> int:
    """The fewest rows Krum and multi-Krum aggregate with `f` hostile rows assumed:
    ``2f + 3`` (Blanchard et al.'s guarantee needs ``K > 2f + 2``)."""
    return 2 * f + 3


def aggregate(aggregator: str, stack: np.ndarray, out: np.ndarray, trim: float = 0.1,
              f: int = 1, m: int | None = None) -> None:
    """Apply the named aggregator over axis 0 of `stack` into `out` (`stack` may be reordered).
    Krum and multi-Krum need ``K >= krum_rows(f)`` rows (ValueError otherwise: nothing falls back
    to a weaker rule); multi_krum's `m` defaults to ``K - f``."""
    if aggregator in ("krum", "multi_krum"):
        k = stack.shape[0]
        if k < krum_rows(f):
            raise ValueError(f"{aggregator} with f={f} needs at least 2f + 3 = {krum_rows(f)} "
                             f"rows, got {k}")
        multi_krum(stack, f, 1 if aggregator == "krum" else min(m or k - f, k), out)
    elif aggregator == "median":
        coordinate_median(stack, out)
    elif aggregator == "trimmed_mean":
        trimmed_mean(stack, trim, out)
    elif aggregator == "mean":
        mean(stack, out)
    else:
        choices = ", ".join(AGGREGATORS)
        raise ValueError(f"unknown aggregator {aggregator!r}; choose one of {choices}")


class Robust(Strategy):
    """Buffer K (optionally clipped) deltas, then x += server_lr * median/trimmed mean/mean."""

    name = "robust"
    description = ("Robust aggregation: buffer K deltas d_i = x_i - base_i, each clipped to "
                   "norm C (none, fixed or adaptive quantile of recent norms), then "
                   "x += server_lr * agg(d_1..d_K), agg = coordinate median, trimmed mean or mean.")
    params = (
        Param("aggregator", str, "median", "coordinate-wise median, trimmed_mean, mean, krum or "
              "multi_krum", choices=AGGREGATORS),
        Param("k", int, 10, "deltas buffered before the model moves", minimum=1),
        Param("trim", float, 0.1, "trimmed_mean: fraction dropped at each end, floor(trim*K) "
              "values, at least one when trim > 0 and K >= 3", minimum=0, maximum=0.49),
        Param("f", int, 1, "krum/multi_krum: hostile clients assumed per buffer (needs "
              "k >= 2f + 3; per_client buffers wait for 2f + 3 distinct clients)", minimum=0),
        Param("m", int, None, "multi_krum: deltas averaged (default k - f)", minimum=1),
        Param("clip", str, None, "norm clipping of each delta: none, fixed (clip_norm) or "
              "adaptive (clip_factor * clip_quantile of recent norms)", choices=CLIP_MODES),
        Param("clip_norm", float, None, "clip=fixed: the bound C", minimum=0),
        Param("clip_quantile", float, 0.5, "clip=adaptive: quantile of recent norms",
              minimum=0, maximum=1),
        Param("clip_factor", float, 1.0, "clip=adaptive: C = clip_factor * quantile", minimum=0),
        Param("clip_window", int, 50, "clip=adaptive: how many recent norms are kept", minimum=1),
        Param("clip_min_history", int, 10, "clip=adaptive: norms needed before clipping starts",
              minimum=1),
        Param("server_lr", float, 1.0, "server learning rate", minimum=0),
        Param("per_client", bool, True, "count each client once per buffer (its deltas in one "
              "buffer are averaged), so a fast client cannot fill a buffer"),
        Param("min_clients", int, 3, "per_client: distinct clients a buffer needs before it "
              "flushes (at most k)", minimum=1),
    )
    needs_base_weights = True
    aggregator: str
    k: int
    trim: float
    f: int
    m: int | None
    clip: str | None
    clip_norm: float | None
    clip_quantile: float
    clip_factor: float
    clip_window: int
    clip_min_history: int
    server_lr: float
    per_client: bool
    min_clients: int

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._check_params()
        self.window = NormWindow(self.clip_window, self.clip_quantile, self.clip_factor,
                                 self.clip_min_history)
        self._buffer: np.ndarray | None = None
        self._clients: list[str] = []  # who owns each row
        self._counts: list[int] = []  # deltas averaged into each row
        self.count = 0  # deltas buffered
        self.max_steps = 0
        self.clipped = 0

    def _check_params(self) -> None:
        def bad(param: str, message: str) -> ParamError:
            return ParamError(param, f"strategy 'robust': {message}")

        if self.clip == "fixed" and (self.clip_norm is None or self.clip_norm <= 0):
            raise bad("clip_norm", f"clip=fixed needs clip_norm > 0, got {self.clip_norm}")
        if self.clip != "fixed" and self.clip_norm is not None:
            raise bad("clip_norm", "clip_norm is only used with clip=fixed, "
                      f"not clip={self.clip or 'none'}")
        if self.clip_quantile <= 0:
            raise bad("clip_quantile", f"clip_quantile must be > 0, got {self.clip_quantile}")
        if self.clip_factor <= 0:
            raise bad("clip_factor", f"clip_factor must be > 0, got {self.clip_factor}")
        if self.clip_min_history > self.clip_window:
            raise bad("clip_min_history", f"clip_min_history {self.clip_min_history} is more than "
                      f"clip_window ({self.clip_window}) can hold")
        if self.server_lr <= 0:
            raise bad("server_lr", f"server_lr must be > 0, got {self.server_lr}")
        if self.aggregator in ("krum", "multi_krum") and self.k < krum_rows(self.f):
            raise bad("k", f"{self.aggregator} with f={self.f} needs k >= 2f + 3 = "
                      f"{krum_rows(self.f)} (its guarantee needs more than 2f + 2 deltas), "
                      f"got k={self.k}")
        if self.m is not None and (self.aggregator != "multi_krum" or self.m > self.k):
            raise bad("m", f"m is the number of deltas multi_krum averages: needs "
                      f"aggregator=multi_krum and m <= k ({self.k}), got m={self.m} with "
                      f"aggregator={self.aggregator}")

    def clip_bound(self) -> float | None:
        """The bound the next delta is clipped to (None: not clipped)."""
        if self.clip == "fixed":
            return self.clip_norm
        if self.clip == "adaptive":
            return self.window.bound()
        return None

    def effective_params(self) -> dict[str, Any]:
        """m as multi_krum uses it (k - f) and clip "none" when not set."""
        values = {**super().effective_params(), "clip": self.clip or "none"}
        if self.aggregator == "multi_krum" and self.m is None:
            values["m"] = max(1, self.k - self.f)
        return values

    def merge(self, model: ModelState, update: Update) -> bool:
        base = base_delta_check(update, model.weights, self.name)
        size = model.weights.size
        if self._buffer is None or self._buffer.shape != (self.k, size):
            if self.count and self._buffer is not None:
                raise StrategyError(f"strategy 'robust': the buffer holds deltas of "
                                    f"{self._buffer.shape[1]} values, the model {size}")
            self._buffer = np.empty((self.k, size), dtype=np.float32)
        delta = update.weights  # scratch: becomes the delta
        np.subtract(delta, base, out=delta)
        self._clip(delta)
        self._add(update.client, delta)
        self.count += 1
        self.max_steps = max(self.max_steps, update.steps_behind)
        if not self._ready():
            if self.count == self.k:  # once per buffer: say why the model does not move
                log.warning("robust: %d deltas buffered from %d client(s); waiting for %d "
                            "distinct clients (%s) before the model moves", self.count,
                            len(self._clients), self.rows_needed(),
                            "2f + 3 for krum" if self.rows_needed() > min(self.min_clients,
                                                                          self.k)
                            else "min_clients")
            return False
        rows = len(self._clients)
        aggregate(self.aggregator, self._buffer[:rows], delta, self.trim, self.f, self.m)
        delta *= np.float32(self.server_lr)
        model.weights += delta
        model.steps = merged_steps(model.steps, self.max_steps)
        self.count = 0
        self._clients, self._counts = [], []
        self.max_steps = 0
        return True

    def _add(self, client: str, delta: np.ndarray) -> None:
        """A new row, or (per_client) the running mean of the client's row: r += (d - r) / n."""
        assert self._buffer is not None
        if self.per_client and client in self._clients:
            i = self._clients.index(client)
            self._counts[i] += 1
            row = self._buffer[i]
            np.subtract(delta, row, out=delta)
            delta *= np.float32(1.0 / self._counts[i])
            row += delta
            return
        np.copyto(self._buffer[len(self._clients)], delta)
        self._clients.append(client)
        self._counts.append(1)

    def rows_needed(self) -> int:
        """Distinct clients a buffer needs before it flushes (per_client): ``min(min_clients,
        k)``, and for krum/multi_krum at least ``2f + 3`` (at most k: checked at start)."""
        needed = min(self.min_clients, self.k)
        if self.aggregator in ("krum", "multi_krum"):
            needed = max(needed, krum_rows(self.f))
        return needed

    def _ready(self) -> bool:
        if not self.per_client:
            return self.count >= self.k
        # rows never outnumber deltas and a k-th row always flushes, so k rows suffice
        return self.count >= self.k and len(self._clients) >= self.rows_needed()

    def _clip(self, delta: np.ndarray) -> None:
        if self.clip is None:
            return
        norm = delta_norm(delta)
        bound = self.clip_bound()
        if self.clip == "adaptive":
            self.window.add(norm)
        if bound is not None and norm > bound:
            delta *= np.float32(bound / norm)
            self.clipped += 1

    def state(self) -> StrategyState:
        """``arrays["deltas"]``: the buffered rows (a copy, only while buffering); meta: count
        (deltas buffered), clients and counts (each row's owner and how many deltas it averages),
        max_steps, clipped, norms (the adaptive window, oldest first)."""
        arrays = {}
        if self._clients and self._buffer is not None:
            arrays["deltas"] = self._buffer[: len(self._clients)].copy()
        return StrategyState(arrays, {"count": self.count, "clients": list(self._clients),
                                      "counts": list(self._counts), "max_steps": self.max_steps,
                                      "clipped": self.clipped, "norms": self.window.norms()})

    def load_state(self, state: StrategyState) -> None:
        meta = state.meta
        for key in ("count", "max_steps", "clipped"):
            value = meta.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyError(f"robust state: meta.{key} must be an integer >= 0, "
                                    f"got {value!r}")
        norms = meta.get("norms", [])
        if not isinstance(norms, list) or not all(
                isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n)
                and n >= 0 for n in norms):
            raise StrategyError("robust state: meta.norms must be a list of finite numbers >= 0")
        unknown = sorted(set(state.arrays) - {"deltas"})
        if unknown:
            raise StrategyError(f"robust state: unknown arrays {unknown}")
        count = meta.get("count", 0)
        # states from before per-client rows hold one row per delta
        clients = meta.get("clients", [f"row-{i}" for i in range(count)])
        counts = meta.get("counts", [1] * len(clients) if isinstance(clients, list) else None)
        if not (isinstance(clients, list) and all(isinstance(c, str) for c in clients)
                and isinstance(counts, list) and len(counts) == len(clients)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts)
                and sum(counts) == count):
            raise StrategyError(f"robust state: meta.clients and meta.counts must list each row's "
                                f"client and its number of deltas, {count} in all")
        rows = len(clients)
        deltas = state.arrays.get("deltas")
        if rows and (deltas is None or not isinstance(deltas, np.ndarray)
                     or deltas.dtype != np.float32 or deltas.ndim != 2
                     or deltas.shape[0] != rows):
            got = "nothing" if deltas is None else f"{getattr(deltas, 'dtype', type(deltas))} " \
                f"of shape {getattr(deltas, 'shape', '?')}"
            raise StrategyError(f"robust state: meta.count is {count} in {rows} rows, so "
                                f"arrays.deltas must be a float32 array of shape ({rows}, n); "
                                f"got {got}")
        if rows >= self.k or (not self.per_client and count >= self.k):
            raise StrategyError(f"robust state: {count} buffered deltas in {rows} rows need "
                                f"k > {rows}, this strategy has k={self.k}")
        if rows:
            assert isinstance(deltas, np.ndarray)  # checked above
            self._buffer = np.empty((self.k, deltas.shape[1]), dtype=np.float32)
            self._buffer[:rows] = deltas
        self.count = count
        self._clients, self._counts = list(clients), list(counts)
        self.max_steps = meta.get("max_steps", 0)
        self.clipped = meta.get("clipped", 0)
        self.window.load(norms)
