"""WebNN's merge rules as pure functions on flat float32 arrays, computed in place.

Notation: W_{n-1} is the server's model with step count t_{n-1}; W_p is a returned weight set
with t_p = t + k (the client fetched weights with t steps and trained k local steps). Every rule
ends with t_n = max(t_{n-1}, t_p) (`merged_steps`). The functions write the result into `model` and
may overwrite `update` (scratch space), so no temporary the size of the model is allocated.
"""

from __future__ import annotations

import numpy as np

from webnn.merge.base import check_same_shape


def merged_steps(model_steps: int, update_steps: int) -> int:
    """t_n = max(t_{n-1}, t_p)."""
    return max(int(model_steps), int(update_steps))


def average_into(model: np.ndarray, update: np.ndarray) -> None:
    """W_n = (W_{n-1} + W_p) / 2, into `model`; `update` is left unchanged."""
    check_same_shape(model, update)
    model += update
    model *= np.float32(0.5)


def weighted_fraction(model_steps: int, update_steps: int) -> float:
    """The share of W_p in the weighted merge: t_p / (t_{n-1} + t_p); 1/2 when both are zero."""
    total = int(model_steps) + int(update_steps)
    return 0.5 if total == 0 else int(update_steps) / total


def weighted_into(
    model: np.ndarray, update: np.ndarray, model_steps: int, update_steps: int
) -> None:
    """W_n = (W_{n-1} t_{n-1} + W_p t_p) / (t_{n-1} + t_p), into `model`; `update` is scratch.

    Computed as W_{n-1} + (W_p - W_{n-1}) * t_p / (t_{n-1} + t_p), the same value in exact
    arithmetic, which leaves the model bit-for-bit unchanged when W_p equals it. With
    t_{n-1} = t_p (both zero included) it is exactly `average_into`.
    """
    if int(model_steps) == int(update_steps):
        average_into(model, update)
        return
    check_same_shape(model, update)
    np.subtract(update, model, out=update)
    update *= np.float32(weighted_fraction(model_steps, update_steps))
    model += update


def mimic_step(model_steps: int, update_steps: int) -> float:
    """The signed step c of the mimic rule, W_n = W_{n-1} + c (W_p - W_{n-1}).

    d = t_p - t_{n-1}; k = |d|, or 1 when d = 0; c = 1/(k+1) when d > 0 (towards an update that is
    ahead), else -1/(k+1) (away from one that is not).
    """
    d = int(update_steps) - int(model_steps)
    k = abs(d) or 1
    return 1.0 / (k + 1) if d > 0 else -1.0 / (k + 1)


def mimic_into(model: np.ndarray, update: np.ndarray, model_steps: int, update_steps: int) -> None:
    """WebNN's mimic rule as its code has it, into `model`; `update` is scratch.

    d = t_p - t_{n-1}; D = W_p - W_{n-1} if d > 0 else W_{n-1} - W_p; k = |d|, or 1 when d = 0;
    W_n = W_{n-1} + D / (k + 1). So an update that is ahead pulls the model towards it by 1/(k+1)
    of the gap, and one that is not ahead pushes the model away from it by 1/(k+1).

    The WebNN poster writes W_n = (W_{n-1} + W_D) / (|d| + 1) with d = t_{n-1} - t_p. Read
    literally that divides the whole model by |d| + 1 at every merge, shrinking the weights toward
    zero, which no training run survives; the code's form is a step of size 1/(k+1) along D, and it
    is the one implemented here.
    """
    check_same_shape(model, update)
    np.subtract(update, model, out=update)
    update *= np.float32(mimic_step(model_steps, update_steps))
    model += update
