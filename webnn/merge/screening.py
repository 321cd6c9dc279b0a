"""Update screening: the checks every returned weight set passes before any strategy merges it.

In order, cheapest first:

1. staleness cutoff: ``staleness > max_staleness`` is refused (`TOO_STALE`, see `staleness.py`);
2. finiteness: any NaN or Inf in the update is refused (`NOT_FINITE`);
3. norm bound: the L2 norm of the delta ``d = update - reference`` (the reference is the weights the
   client started from, or the current model when base weights are not kept) is compared with
   ``bound = min(norm_bound, adaptive_factor * quantile(recent accepted norms, adaptive_quantile))``
   (either term may be off). Above the bound the update is refused (`NORM_TOO_LARGE`) or, with
   ``action="clip"``, scaled in place to ``reference + d * bound / ||d||``, whose delta norm is the
   bound. The adaptive term only applies once ``adaptive_min_history`` norms have been accepted; it
   remembers the last ``adaptive_window`` of them (a clipped update counts with its clipped norm).

Reason codes are short and stable so the server can count refusals by reason in /metrics.
Everything is numpy on the flat float32 buffer; no temporary the size of the model is allocated.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from webnn.merge.staleness import TOO_STALE, check_staleness
from webnn.weights import WeightLayout

NOT_FINITE = "not_finite"
NORM_TOO_LARGE = "norm_too_large"
REASONS: tuple[str, ...] = (TOO_STALE, NOT_FINITE, NORM_TOO_LARGE)
"""Every reason code `Screen.check` can give, for pre-registering metric labels."""

ACTIONS: tuple[str, ...] = ("refuse", "clip")

DEFAULT_SCREENING: dict[str, Any] = {
    "adaptive_quantile": 0.5, "adaptive_factor": 10.0, "adaptive_window": 50,
    "adaptive_min_history": 10, "action": "clip",
}
"""What a server screens with unless told otherwise (``wnn serve``; ``--screen off`` turns it
off; given keys are laid over these). The bound is 10 x the median of the last 50 accepted delta
norms, applied once 10 norms were accepted (the warm-up: the first 10 updates are only checked for
finiteness). Honest deltas of one model vary by a small factor between clients and shrink slowly
as training converges, so 10 x the median never touches them, while one client's step is bounded
to 10 typical steps; the median ignores up to half the window being hostile. Above the bound the
delta is clipped to it (not refused): an honest client that happens to send a large step is never
cut off, and a hostile one moves the model no further than the bound either way."""

_CHUNK = 1 << 16  # elements per pass of the chunked norm: a float64 scratch of 512 KiB


class ScreeningConfigError(ValueError):
    """A screening setting is invalid; the message names the field."""


# ---------------------------------------------------------------------------------------------
# pure array functions


def all_finite(values: np.ndarray) -> bool:
    """True when `values` holds no NaN or Inf.

    One float64 sum: NaN and Inf propagate (``Inf + -Inf`` is NaN) while finite float32 values
    cannot overflow a float64 sum, so no boolean mask the size of the buffer is needed.
    """
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(values.sum(dtype=np.float64)))


def first_non_finite(values: np.ndarray) -> tuple[int, int]:
    """``(count, first index)`` of the NaN/Inf values of a flat buffer (slow path, for messages)."""
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad.size), int(bad[0]) if bad.size else -1


def delta_norm(weights: np.ndarray, reference: np.ndarray | None = None) -> float:
    """``||weights - reference||_2`` (``||weights||_2`` when `reference` is None).

    Computed in float64 over chunks, so huge float32 values do not overflow and only a chunk-sized
    scratch is allocated.
    """
    if reference is not None and reference.shape != weights.shape:
        raise ValueError(
            f"reference holds {reference.size} values, the update {weights.size}"
        )
    flat = weights.reshape(-1)
    ref = None if reference is None else reference.reshape(-1)
    scratch = np.empty(min(_CHUNK, flat.size), dtype=np.float64)
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        stop = min(start + _CHUNK, flat.size)
        part = scratch[: stop - start]
        if ref is None:
            part[...] = flat[start:stop]
        else:
            np.subtract(flat[start:stop], ref[start:stop], out=part, dtype=np.float64)
        total += float(np.dot(part, part))
    return math.sqrt(total)


def scale_delta_(weights: np.ndarray, reference: np.ndarray | None, factor: float) -> None:
    """In place: ``weights = reference + factor * (weights - reference)``.

    With `reference` None, `weights` is a delta and is simply multiplied by `factor`.
    """
    if reference is None:
        np.multiply(weights, np.float32(factor), out=weights)
        return
    np.subtract(weights, reference, out=weights)
    np.multiply(weights, np.float32(factor), out=weights)
    np.add(weights, reference, out=weights)


def clip_delta_(
    weights: np.ndarray, reference: np.ndarray | None, bound: float, norm: float | None = None
) -> float:
    """Clip the delta ``weights - reference`` in place to L2 norm at most `bound`.

    Returns the delta's norm after clipping (``min(norm, bound)``). `norm` may be passed when known.
    """
    if not bound >= 0:
        raise ValueError(f"clip bound must be >= 0, got {bound}")
    if norm is None:
        norm = delta_norm(weights, reference)
    if norm <= bound:
        return norm
    scale_delta_(weights, reference, bound / norm)
    return bound


def linear_quantile(values: Iterable[float], quantile: float) -> float:
    """The `quantile` of `values` by linear interpolation: with the values sorted, ``v``, and
    ``h = (n - 1) * quantile``, ``v[i] + (v[i+1] - v[i]) * g`` for ``i = floor(h)``, ``g = h - i``
    (written ``v[i+1] - (v[i+1] - v[i]) * (1 - g)`` when ``g >= 1/2``). These are
    `numpy.quantile`'s default method and float64 operations, so the result is the same float;
    in plain Python it costs about a tenth of numpy's call for the few dozen norms of a window,
    which matters as the merge asks once per accepted update."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("a quantile needs at least one value")
    last = len(ordered) - 1
    h = last * quantile
    if h >= last:
        return ordered[last]
    i = math.floor(h)
    g = h - i
    low, high = ordered[i], ordered[i + 1]
    step = high - low
    return high - step * (1 - g) if g >= 0.5 else low + step * g


def quantile_bound(norms: Iterable[float], quantile: float, factor: float) -> float:
    """``factor * quantile(norms, quantile)`` (`linear_quantile`: as `numpy.quantile`)."""
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    return float(factor * linear_quantile(norms, quantile))


class NormWindow:
    """The last `size` delta norms and the adaptive bound they give.

    ``bound() = factor * quantile(last norms, quantile)`` once at least `min_history` norms were
    added, else None (no bound yet). The bound is kept until the next `add` or `load` (a merge
    asks for it up to twice).
    """

    def __init__(self, size: int, quantile: float, factor: float, min_history: int = 1) -> None:
        self.quantile = quantile
        self.factor = factor
        self.min_history = min_history
        self._norms: deque[float] = deque(maxlen=size)
        self._bound: float | None = None
        self._known = False  # whether `_bound` is the bound of the norms held now

    def __len__(self) -> int:
        return len(self._norms)

    def add(self, norm: float) -> None:
        self._norms.append(float(norm))
        self._known = False

    def bound(self) -> float | None:
        if not self._known:
            self._bound = (None if len(self._norms) < max(self.min_history, 1)
                           else quantile_bound(self._norms, self.quantile, self.factor))
            self._known = True
        return self._bound

    def norms(self) -> list[float]:
        return list(self._norms)

    def load(self, norms: Iterable[float]) -> None:
        """Replace the remembered norms (oldest first); only the last `size` are kept."""
        self._norms.clear()
        self._norms.extend(float(n) for n in norms)
        self._known = False


# ---------------------------------------------------------------------------------------------
# configuration and the adapter the server calls


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScreeningConfigError(f"{name}: must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ScreeningConfigError(f"{name}: must be {'>=' if allow_zero else '>'} 0, got {value}")


def _count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScreeningConfigError(f"{name}: must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ScreeningConfig:
    """How updates are screened before any merge (all checks off in this dataclass's defaults;
    servers use `DEFAULT_SCREENING` unless told otherwise).

    - `norm_bound`: fixed bound on the delta's L2 norm (None: no fixed bound).
    - `adaptive_quantile`: in (0, 1]; bound the norm by ``adaptive_factor`` times this quantile of
      the last `adaptive_window` accepted norms, once `adaptive_min_history` were accepted
      (None: no adaptive bound). With both bounds set the smaller applies.
    - `action`: ``"refuse"`` or ``"clip"`` an update above the bound.
    - `max_staleness`: refuse updates more than this many versions behind (None: no cutoff).
    """

    norm_bound: float | None = None
    adaptive_quantile: float | None = None
    adaptive_factor: float = 3.0
    adaptive_window: int = 50
    adaptive_min_history: int = 10
    action: Literal["refuse", "clip"] = "refuse"
    max_staleness: int | None = None

    def __post_init__(self) -> None:
        if self.norm_bound is not None:
            _positive("norm_bound", self.norm_bound)
        if self.adaptive_quantile is not None:
            q = self.adaptive_quantile
            if isinstance(q, bool) or not isinstance(q, int | float) or not 0 < q <= 1:
                raise ScreeningConfigError(f"adaptive_quantile: must be in (0, 1], got {q!r}")
        _positive("adaptive_factor", self.adaptive_factor)
        _count("adaptive_window", self.adaptive_window, 1)
        _count("adaptive_min_history", self.adaptive_min_history, 1)
        if self.adaptive_min_history > self.adaptive_window:
            raise ScreeningConfigError(
                f"adaptive_min_history: {self.adaptive_min_history} is more than adaptive_window "
                f"({self.adaptive_window}) can hold"
            )
        if self.action not in ACTIONS:
            raise ScreeningConfigError(
                f"action: must be one of {', '.join(ACTIONS)}, got {self.action!r}"
            )
        if self.max_staleness is not None:
            _count("max_staleness", self.max_staleness, 0)

    @property
    def checks_norm(self) -> bool:
        return self.norm_bound is not None or self.adaptive_quantile is not None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], path: str = "screening") -> ScreeningConfig:
        """Build from a parsed TOML/JSON table; errors are prefixed with `path` and the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScreeningConfigError(
                f"{path}.{unknown[0]}: unknown setting; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**dict(data))
        except ScreeningConfigError as error:
            raise ScreeningConfigError(f"{path}.{error}") from None


def staleness_cutoff(max_staleness: int | None,
                     screening: ScreeningConfig | None) -> int | None:
    """The staleness cutoff a server applies: the tighter of its own ``max_staleness`` and the
    screening's (None: no cutoff)."""
    bounds = [max_staleness, screening.max_staleness if screening is not None else None]
    return min((b for b in bounds if b is not None), default=None)


@dataclass(frozen=True)
class ScreenResult:
    """The verdict on one update.

    `action` is ``"accepted"``, ``"clipped"`` (the update was scaled in place and may be merged) or
    ``"refused"``; `reason` is a stable code from `REASONS` (None when accepted as is); `message`
    says what was wrong for the client and the log; `norm` is the delta norm before clipping and
    `bound` the bound it was held to (None when not checked).
    """

    action: Literal["accepted", "clipped", "refused"]
    reason: str | None = None
    message: str = ""
    norm: float | None = None
    bound: float | None = None

    @property
    def refused(self) -> bool:
        return self.action == "refused"


@dataclass
class Screen:
    """Stateful screening for one model: the config plus the window of recent accepted norms.

    `layout`, when given, lets messages name the tensor holding a non-finite value.
    """

    config: ScreeningConfig = field(default_factory=ScreeningConfig)
    layout: WeightLayout | None = None
    _window: NormWindow = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.config
        self._window = NormWindow(
            c.adaptive_window, c.adaptive_quantile or 0.5, c.adaptive_factor, c.adaptive_min_history
        )

    def bound(self) -> float | None:
        """The norm bound the next update is held to (None: no bound now)."""
        bounds = [self.config.norm_bound]
        if self.config.adaptive_quantile is not None:
            bounds.append(self._window.bound())
        present = [b for b in bounds if b is not None]
        return min(present) if present else None

    def check(
        self,
        weights: np.ndarray,
        reference: np.ndarray | None = None,
        *,
        staleness: int | None = None,
        norm: float | None = None,
    ) -> ScreenResult:
        """Screen one update; clip `weights` in place when the config says so.

        `weights - reference` is the delta; with `reference` None, `weights` already is the delta.
        `staleness` is checked against ``config.max_staleness`` when given. A refused update is left
        untouched; only accepted updates feed the adaptive bound. `norm`: the delta's norm when the
        caller already checked finiteness and measured it in one pass (the server's ingest).
        """
        if staleness is not None:
            stale = check_staleness(staleness, self.config.max_staleness)
            if stale is not None:
                return ScreenResult("refused", TOO_STALE, stale)
        if norm is None and not all_finite(weights):
            count, first = first_non_finite(weights.reshape(-1))
            return ScreenResult(
                "refused", NOT_FINITE,
                f"update holds {count} non-finite value{'s' if count != 1 else ''} (NaN or Inf); "
                f"the first at {self._where(first)}",
            )
        if not self.config.checks_norm:
            return ScreenResult("accepted")
        if norm is None:
            norm = delta_norm(weights, reference)
        bound = self.bound()
        if bound is None or norm <= bound:
            self._window.add(norm)
            return ScreenResult("accepted", norm=norm, bound=bound)
        message = f"update delta has L2 norm {norm:.6g}, above the bound {bound:.6g}"
        if self.config.action == "refuse":
            return ScreenResult("refused", NORM_TOO_LARGE, message, norm, bound)
        self._window.add(clip_delta_(weights, reference, bound, norm))
        return ScreenResult("clipped", NORM_TOO_LARGE, f"{message}; scaled down to it", norm, bound)

    def state(self) -> dict[str, Any]:
        """JSON-ready state for checkpoints: the recent accepted norms."""
        return {"norms": self._window.norms()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        norms = state.get("norms", [])
        if not isinstance(norms, list) or not all(
            isinstance(n, int | float) and math.isfinite(n) and n >= 0 for n in norms
        ):
            raise ValueError("screening state: norms must be a list of finite numbers >= 0")
        self._window.load(norms)

    def _where(self, index: int) -> str:
        return self.layout.locate(index) if self.layout is not None else f"index {index}"
