"""Staleness: how many versions the model moved on while a client trained, and what that costs.

``staleness = current version - the version the client started from`` (0 for a fresh update).

Weighting functions ``s(staleness)`` from FedAsync (Xie, Koyejo, Gupta 2019, "Asynchronous Federated
Optimization", section 5.2), shared by `fedasync` and `fedbuff`:

- constant:   ``s = 1``
- polynomial: ``s = (staleness + 1) ** -a``                           (default a = 0.5)
- hinge:      ``s = 1`` if ``staleness <= b`` else ``1 / (a * (staleness - b) + 1)``
                                                                     (default a = 10, b = 4)

FedBuff's default weight ``1 / sqrt(1 + staleness)`` is the polynomial with ``a = 0.5``.

The staleness cutoff (`check_staleness`) applies to every strategy: the server refuses an update
older than its ``max_staleness`` before any merge, with the stable reason code `TOO_STALE`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from webnn.merge.params import Param

TOO_STALE = "too_stale"
"""Reason code of an update refused by the staleness cutoff (also the protocol error code)."""

STALENESS_FUNCTIONS: tuple[str, ...] = ("constant", "polynomial", "hinge")
"""Names accepted by `make_staleness_fn`, in documentation order."""

_DEFAULT_A = {"constant": 0.0, "polynomial": 0.5, "hinge": 10.0}
_DEFAULT_B = {"constant": 0.0, "polynomial": 0.0, "hinge": 4.0}


def _check_staleness_value(staleness: float) -> None:
    if isinstance(staleness, bool) or not isinstance(staleness, int | float):
        raise TypeError(f"staleness must be a number of versions, got {type(staleness).__name__}")
    if not staleness >= 0:
        raise ValueError(f"staleness must be >= 0, got {staleness}")


def constant(staleness: float) -> float:
    """``s = 1``: staleness is ignored."""
    _check_staleness_value(staleness)
    return 1.0


def polynomial(staleness: float, a: float = 0.5) -> float:
    """``s = (staleness + 1) ** -a``; ``s(0) = 1`` and decays like ``staleness ** -a``."""
    _check_staleness_value(staleness)
    return float((staleness + 1.0) ** -a)


def hinge(staleness: float, a: float = 10.0, b: float = 4.0) -> float:
    """``s = 1`` while ``staleness <= b``, then ``1 / (a * (staleness - b) + 1)``."""
    _check_staleness_value(staleness)
    if staleness <= b:
        return 1.0
    return 1.0 / (a * (staleness - b) + 1.0)


@dataclass(frozen=True)
class StalenessFunction:
    """A staleness weighting ``s(staleness)`` chosen by name, with its parameters bound.

    Build it with `make_staleness_fn`, which fills in each function's defaults and validates.
    """

    name: str
    a: float
    b: float

    def __call__(self, staleness: float) -> float:
        if self.name == "constant":
            return constant(staleness)
        if self.name == "polynomial":
            return polynomial(staleness, self.a)
        return hinge(staleness, self.a, self.b)

    def describe(self) -> str:
        """A short formula for logs and reports, e.g. ``polynomial (staleness+1)^-0.5``."""
        if self.name == "constant":
            return "constant 1"
        if self.name == "polynomial":
            return f"polynomial (staleness+1)^-{self.a:g}"
        return f"hinge 1 if staleness<={self.b:g} else 1/({self.a:g}(staleness-{self.b:g})+1)"


def make_staleness_fn(
    name: str, a: float | None = None, b: float | None = None
) -> StalenessFunction:
    """The staleness function `name` with parameters `a`, `b` (None: that function's default).

    Raises `ValueError` naming the bad parameter: an unknown name, a non-finite or negative `a`
    or `b`. (`a = 0` is allowed and makes polynomial and hinge constant.)
    """
    if name not in STALENESS_FUNCTIONS:
        raise ValueError(
            f"staleness_fn: unknown staleness function {name!r}; "
            f"choose one of {', '.join(STALENESS_FUNCTIONS)}"
        )
    a_value = _DEFAULT_A[name] if a is None else float(a)
    b_value = _DEFAULT_B[name] if b is None else float(b)
    for label, value in (("a", a_value), ("b", b_value)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{label}: must be a finite number >= 0, got {value}")
    return StalenessFunction(name, a_value, b_value)


def staleness_params() -> tuple[Param, ...]:
    """The ``staleness_fn``, ``a``, ``b`` strategy parameters shared by fedasync and fedbuff.

    Build the function from their values with `make_staleness_fn`.
    """
    return (
        Param("staleness_fn", str, "polynomial",
              "staleness weighting s: constant 1, polynomial (staleness+1)^-a, "
              "hinge 1 if staleness <= b else 1/(a(staleness-b)+1)",
              choices=STALENESS_FUNCTIONS),
        Param("a", float, None, "decay of s: polynomial exponent (default 0.5) or hinge slope "
              "(default 10)", minimum=0),
        Param("b", float, None, "hinge: staleness up to which s = 1 (default 4)", minimum=0),
    )


def check_staleness(staleness: int, max_staleness: int | None) -> str | None:
    """The staleness cutoff: None if the update may be merged, else why it is refused.

    An update is refused when ``staleness > max_staleness``; ``max_staleness=None`` means no cutoff.
    The reason code of a refusal is always `TOO_STALE`; the returned text is for clients and logs.
    Raises `ValueError` for a negative staleness or bound.
    """
    _check_staleness_value(staleness)
    if max_staleness is None:
        return None
    if isinstance(max_staleness, bool) or not isinstance(max_staleness, int) or max_staleness < 0:
        raise ValueError(f"max_staleness must be an integer >= 0 or None, got {max_staleness!r}")
    if staleness <= max_staleness:
        return None
    return (
        f"update is {staleness} versions behind the model; "
        f"the server merges updates at most {max_staleness} versions behind (max_staleness)"
    )
