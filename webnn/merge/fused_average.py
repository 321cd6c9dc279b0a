"""WebNN's average with the update's screen and the result's check in one out-of-place pass.

Per update, the straightforward merge step reads the model-sized arrays about five times: the
update's check (``d = W_p - R`` and ``||d||``, R the reference the client started from), the
average (``W += W_p`` then ``W *= 1/2``), a finiteness sum over the result and the copy of the
result into the new version's snapshot. `screened_average` does all of it block by block
(`BLOCK` values: each block's arrays stay in cache between the steps) and writes the average
straight into `out` (the new version's snapshot buffer), never into `W`: each input array is read
from memory once and one model-sized array is written. Per block ``[s, e)``:

1. ``q = dot(d, d)`` with ``d = W_p[s:e] - R[s:e]`` in float32 (a block-sized scratch), summed in
   float64: ``total += q``; the norm so far is ``sqrt(total)``;
2. ``out[s:e] = (W[s:e] + W_p[s:e]) * 1/2`` in float32, in that order (`average_into`'s formula,
   element by element, so the weights are bit-identical to it);
3. the result's finiteness (`all_finite`: its float32 ``dot(x, x)``, finite exactly when no value
   of the block overflowed, unless finite squares overflow: then value by value).

`W`, `W_p` and `R` are only read, so the pass is a pure function of them into `out`. The screen's
decision needs the whole norm, so the merge is speculative: it stops as soon as the block's ``q``
is not finite (a NaN/Inf in the update, or float32 squares that overflow), the norm so far is
above `bound` (the sum of squares only grows, so ``sqrt(total) > bound`` for a prefix means the
whole norm is above it too, and a norm at most `bound` never stops it), the update's block is not
finite (without a norm: `all_finite`) or a merged block is not finite. `FusedAverage.merged` is
then False and `out` holds a partial result to throw away; `W` is as it was, with nothing to
restore: the caller runs the straightforward path, which refuses or clips with the same codes and
messages as ever. (Before, the pass merged into `W` in place and copied each block into `out`:
one more model-sized write per update, and a stopped pass restored the merged prefix.)

The norm: with `block` equal to the ingest's chunk (``webnn.server.ingest.CHUNK``, what the
server passes) the blocks are the chunks of ``ingest.check_weights``, each block's dot is the
same float32 call on the same values and the float64 sum runs in the same order, so the norm is
the same float and the screen decides exactly as before. With another `block` only the rounding
of the per-block float32 dots differs (a relative error of at most about ``n * 2**-24`` for a
block of n values, far less in practice with pairwise/BLAS summation): a norm within that of the
bound may then fall on the other side of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from webnn.merge.base import check_same_shape

BLOCK = 1 << 17
"""Values per block: 512 KiB of float32; the four block-sized arrays touched per block (update,
reference, scratch, snapshot; the model's block is read once) fit a 4 MiB L2 cache. Equal to
``ingest.CHUNK``."""

HALF = np.float32(0.5)

UPDATE_NOT_FINITE = "update_not_finite"
ABOVE_BOUND = "above_bound"
RESULT_NOT_FINITE = "result_not_finite"


@dataclass(frozen=True)
class FusedAverage:
    """What `screened_average` did. `merged`: `out` holds the average (`norm` then is the delta's
    norm, None when not asked for); otherwise `out` holds nothing of use and `stopped` says why
    (`UPDATE_NOT_FINITE`, `ABOVE_BOUND`, `RESULT_NOT_FINITE`) at which value (`at`, the start of
    the block). The model's weights are never written either way."""

    merged: bool
    norm: float | None = None
    stopped: str | None = None
    at: int = -1


def screened_average(weights: np.ndarray, update: np.ndarray, out: np.ndarray, *,
                     reference: np.ndarray | None = None, norm: bool = False,
                     bound: float | None = None, block: int = BLOCK,
                     scratch: np.ndarray | None = None) -> FusedAverage:
    """``out = (weights + update) * 1/2`` (float32, element by element), with the update's
    finiteness and (with `norm`) ``||update - reference||_2`` (``||update||_2`` without a
    reference) held to `bound`, block by block; see the module docstring. `weights`, `update`
    and `reference` are only read; `out` must be a separate array of the same size (it may not
    overlap any of them) and is fully written when the result is merged, partly otherwise.
    `scratch`: a float32 buffer of at least ``min(block, size)`` values for the delta (allocated
    when not given)."""
    check_same_shape(weights, update)
    for name, other in (("out", out), ("reference", reference)):
        if other is not None and other.shape != weights.shape:
            raise ValueError(f"{name} holds {other.size} values, the model {weights.size}")
    for name, other in (("weights", weights), ("update", update), ("reference", reference)):
        if other is not None and np.may_share_memory(out, other):
            raise ValueError(f"out overlaps {name}: the average is written out of place")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    size = weights.size
    if norm and reference is not None and (scratch is None or scratch.size < min(block, size)):
        scratch = np.empty(min(block, size), dtype=np.float32)
    limit = math.inf if bound is None else bound
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, size, block):
            stop = min(start + block, size)
            part = update[start:stop]
            if norm:
                delta = part
                if reference is not None:
                    assert scratch is not None
                    delta = np.subtract(part, reference[start:stop], out=scratch[: stop - start])
                square = float(np.dot(delta, delta))
                if not math.isfinite(square):
                    return FusedAverage(False, stopped=UPDATE_NOT_FINITE, at=start)
                total += square
                if math.sqrt(total) > limit:
                    return FusedAverage(False, stopped=ABOVE_BOUND, at=start)
            elif not all_finite(part):
                return FusedAverage(False, stopped=UPDATE_NOT_FINITE, at=start)
            merged = out[start:stop]
            np.add(weights[start:stop], part, out=merged)
            np.multiply(merged, HALF, out=merged)
            if not all_finite(merged):
                return FusedAverage(False, stopped=RESULT_NOT_FINITE, at=start)
    return FusedAverage(True, math.sqrt(total) if norm else None)


def all_finite(block: np.ndarray) -> bool:
    """No NaN/Inf in `block`: its float32 ``dot(x, x)`` is finite (a NaN or Inf makes it NaN or
    Inf; a BLAS dot costs about a third of ``np.add.reduce``'s pairwise sum), else, as finite
    squares may overflow float32 (values above about 1.8e19), value by value."""
    return math.isfinite(float(np.dot(block, block))) or bool(np.isfinite(block).all())
