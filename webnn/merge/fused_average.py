"""WebNN's average with the update's screen, the result's check and the snapshot copy in one pass.

Per update, the straightforward merge step reads the model-sized arrays about five times: the
update's check (``d = W_p - R`` and ``||d||``, R the reference the client started from), the
average (``W += W_p`` then ``W *= 1/2``), a finiteness sum over the result and the copy of the
result into the new version's snapshot. `screened_average_into` does all of it block by block
(`BLOCK` values: each block's arrays stay in cache between the steps), so each array is read from
memory once. Per block ``[s, e)``:

1. ``q = dot(d, d)`` with ``d = W_p[s:e] - R[s:e]`` in float32 (a block-sized scratch), summed in
   float64: ``total += q``; the norm so far is ``sqrt(total)``;
2. ``W[s:e] = (W[s:e] + W_p[s:e]) * 1/2`` in float32, in that order (`average_into`'s formula,
   element by element, so the weights are bit-identical to it);
3. the result's finiteness (`all_finite`: its float32 ``dot(x, x)``, finite exactly when no value
   of the block overflowed, unless finite squares overflow: then value by value);
4. ``out[s:e] = W[s:e]`` (the snapshot).

The screen's decision needs the whole norm, so the merge is speculative: it stops as soon as the
block's ``q`` is not finite (a NaN/Inf in the update, or float32 squares that overflow), the norm
so far is above `bound` (the sum of squares only grows, so ``sqrt(total) > bound`` for a prefix
means the whole norm is above it too, and a norm at most `bound` never stops it), the update's
block is not finite (without a norm: `all_finite`) or a merged block is not finite. The blocks
merged so far are then restored from `original` (the model's weights before the pass, i.e. the
current version's snapshot) and `FusedAverage.merged` is False: the caller runs the
straightforward path, which refuses or clips with the same codes and messages as ever. In the
common case (a finite update under the bound) nothing is restored and nothing is read twice.

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
"""Values per block: 512 KiB of float32; the five block-sized arrays touched per block (update,
reference, scratch, model, snapshot) fit a 4 MiB L2 cache. Equal to ``ingest.CHUNK``."""

HALF = np.float32(0.5)

UPDATE_NOT_FINITE = "update_not_finite"
ABOVE_BOUND = "above_bound"
RESULT_NOT_FINITE = "result_not_finite"


@dataclass(frozen=True)
class FusedAverage:
    """What `screened_average_into` did. `merged`: the model holds the average and `out` its copy
    (`norm` then is the delta's norm, None when not asked for); otherwise the model is as it was
    and `stopped` says why (`UPDATE_NOT_FINITE`, `ABOVE_BOUND`, `RESULT_NOT_FINITE`) at which
    value (`at`, the start of the block)."""

    merged: bool
    norm: float | None = None
    stopped: str | None = None
    at: int = -1


def screened_average_into(model: np.ndarray, update: np.ndarray, out: np.ndarray,
                          original: np.ndarray, *, reference: np.ndarray | None = None,
                          norm: bool = False, bound: float | None = None, block: int = BLOCK,
                          scratch: np.ndarray | None = None) -> FusedAverage:
    """W = (W + W_p) / 2 into `model` and its copy into `out`, with the update's finiteness and
    (with `norm`) ``||W_p - reference||_2`` (``||W_p||_2`` without a reference) held to `bound`,
    block by block; see the module docstring. `update` is left unchanged. `original` must hold
    the model's weights as they are on entry (the current version's snapshot): the merged prefix
    is restored from it when the pass stops. `scratch`: a float32 buffer of at least
    ``min(block, size)`` values for the delta (allocated when not given)."""
    check_same_shape(model, update)
    for name, other in (("out", out), ("original", original), ("reference", reference)):
        if other is not None and other.shape != model.shape:
            raise ValueError(f"{name} holds {other.size} values, the model {model.size}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    size = model.size
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
                    return _stop(model, original, start, UPDATE_NOT_FINITE)
                total += square
                if math.sqrt(total) > limit:
                    return _stop(model, original, start, ABOVE_BOUND)
            elif not all_finite(part):
                return _stop(model, original, start, UPDATE_NOT_FINITE)
            merged = model[start:stop]
            np.add(merged, part, out=merged)
            np.multiply(merged, HALF, out=merged)
            if not all_finite(merged):
                return _stop(model, original, stop, RESULT_NOT_FINITE, at=start)
            np.copyto(out[start:stop], merged)
    return FusedAverage(True, math.sqrt(total) if norm else None)


def all_finite(block: np.ndarray) -> bool:
    """No NaN/Inf in `block`: its float32 ``dot(x, x)`` is finite (a NaN or Inf makes it NaN or
    Inf; a BLAS dot costs about a third of ``np.add.reduce``'s pairwise sum), else, as finite
    squares may overflow float32 (values above about 1.8e19), value by value."""
    return math.isfinite(float(np.dot(block, block))) or bool(np.isfinite(block).all())


def _stop(model: np.ndarray, original: np.ndarray, merged_end: int, reason: str,
          at: int | None = None) -> FusedAverage:
    """Restore ``model[:merged_end]`` (the blocks merged so far) from `original`."""
    np.copyto(model[:merged_end], original[:merged_end])
    return FusedAverage(False, stopped=reason, at=merged_end if at is None else at)


@dataclass(frozen=True)
class FusedAverages:
    """What `screened_averages_into` did: `merged` as in `FusedAverage`; `norms` the updates'
    delta norms in order (None when not asked for)."""

    merged: bool
    norms: list[float] | None = None
    stopped: str | None = None
    at: int = -1


def screened_averages_into(model: np.ndarray, updates: list[np.ndarray], out: np.ndarray,
                           original: np.ndarray, *,
                           references: list[np.ndarray | None] | None = None,
                           norm: bool = False, block: int = BLOCK,
                           scratch: np.ndarray | None = None) -> FusedAverages:
    """`screened_average_into` for several updates in a row, in one pass: per block
    ``[s, e)``, for each update i in order, ``d_i = W_i[s:e] - R_i[s:e]`` into the norm's sum
    and ``W[s:e] = (W[s:e] + W_i[s:e]) * 1/2``; then the block's finiteness and its copy into
    `out`. `references[i]` None (or no `references`) means the model as the updates before i
    left it, which is what the one-at-a-time pass reads for a reference that is the model
    itself. Every value is computed by the same float32 operations in the same order as
    `screened_average_into` called once per update, so the weights and each norm are
    bit-identical to it; only the versions between the first and the last are never
    materialised (no snapshot copy or finiteness check of them: a merged block is finite
    exactly when every step to it was, since each step's delta was). No bound is applied: the
    norms are returned for the caller's screen (each update's bound depends on the norms
    accepted before it). Stops, with the model restored from `original`, at a non-finite
    update or result."""
    count = len(updates)
    if references is not None and len(references) != count:
        raise ValueError(f"{len(references)} references for {count} updates")
    refs = references if references is not None else [None] * count
    for update in updates:
        check_same_shape(model, update)
    for name, other in (("out", out), ("original", original), *(
            (f"references[{i}]", r) for i, r in enumerate(refs))):
        if other is not None and other.shape != model.shape:
            raise ValueError(f"{name} holds {other.size} values, the model {model.size}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    size = model.size
    if norm and (scratch is None or scratch.size < min(block, size)):
        scratch = np.empty(min(block, size), dtype=np.float32)
    totals = [0.0] * count
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, size, block):
            stop = min(start + block, size)
            merged = model[start:stop]
            for i, update in enumerate(updates):
                part = update[start:stop]
                if norm:
                    assert scratch is not None
                    reference = refs[i]
                    before = merged if reference is None else reference[start:stop]
                    delta = np.subtract(part, before, out=scratch[: stop - start])
                    square = float(np.dot(delta, delta))
                    if not math.isfinite(square):  # the updates before it changed this block
                        return _stop_many(model, original, stop, UPDATE_NOT_FINITE, at=start)
                    totals[i] += square
                elif not all_finite(part):
                    return _stop_many(model, original, stop, UPDATE_NOT_FINITE, at=start)
                np.add(merged, part, out=merged)
                np.multiply(merged, HALF, out=merged)
            if not all_finite(merged):
                return _stop_many(model, original, stop, RESULT_NOT_FINITE, at=start)
            np.copyto(out[start:stop], merged)
    return FusedAverages(True, [math.sqrt(t) for t in totals] if norm else None)


def _stop_many(model: np.ndarray, original: np.ndarray, merged_end: int, reason: str,
               at: int | None = None) -> FusedAverages:
    """Restore ``model[:merged_end]`` (the blocks merged so far) from `original`."""
    np.copyto(model[:merged_end], original[:merged_end])
    return FusedAverages(False, stopped=reason, at=merged_end if at is None else at)
