"""WebNN's strategies (average, weighted, mimic): the rules of `webnn_rules` as `Strategy` classes.

The server plays the role the merging client played in WebNN: t_{n-1} is ``model.steps`` and t_p is
``update.steps_behind``. None of them keeps state; every merge makes a new version.

What t counts (``unit``, for weighted and mimic): local training steps by default, so
``t_p = base_steps + local_steps``; or tasks, as WebNN's own server counted,
``t_p = base_steps + 1`` (``model.steps`` then counts tasks). With steps and equal clients,
t_{n-1} and t_p are nearly equal on most merges, so weighted is in practice the average (72 % of
merges with 4 equal clients are exactly an average, and the mean share of the update converges
to 0.5); mimic's step size 1/(k + 1) depends on the unit through k = |t_p - t_{n-1}|.
"""

from __future__ import annotations

import numpy as np

from webnn.merge.base import ModelState, Partial, Strategy, Update, check_same_shape
from webnn.merge.fused_average import (
    BLOCK,
    FusedAverage,
    FusedAverages,
    screened_average_into,
    screened_averages_into,
)
from webnn.merge.params import Param
from webnn.merge.webnn_rules import average_into, merged_steps, mimic_into, weighted_into

UNITS: tuple[str, ...] = ("steps", "tasks")
UNIT_PARAM = Param("unit", str, "steps", "what t counts: local training steps, or tasks as "
                   "WebNN's server did (t_p = base t + 1)", choices=UNITS)


def update_t(update: Update, unit: str) -> int:
    """t_p of `update`: ``base_steps + local_steps`` (steps) or ``base_steps + 1`` (tasks)."""
    return update.steps_behind if unit == "steps" else update.base_steps + 1


class WebNNAverage(Strategy):
    """W_n = (W_{n-1} + W_p) / 2; t_n = max(t_{n-1}, t_p)."""

    name = "average"
    description = "WebNN average: W_n = (W_{n-1} + W_p) / 2; t_n = max(t_{n-1}, t_p)."
    combinable = True

    def merge(self, model: ModelState, update: Update) -> bool:
        average_into(model.weights, update.weights)
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True

    def merge_fused(self, model: ModelState, update: Update, out: np.ndarray,
                    original: np.ndarray, *, reference: np.ndarray | None = None,
                    norm: bool = False, bound: float | None = None, block: int = BLOCK,
                    scratch: np.ndarray | None = None) -> FusedAverage:
        """`merge` with the update's check and screen bound, the result's finiteness check and
        its copy into `out` in one blocked pass (`fused_average.screened_average_into`; the
        weights are bit-identical to `merge`'s). When it stops (`FusedAverage.merged` False) the
        model and its steps are as they were."""
        result = screened_average_into(model.weights, update.weights, out, original,
                                       reference=reference, norm=norm, bound=bound, block=block,
                                       scratch=scratch)
        if result.merged:
            model.steps = merged_steps(model.steps, update.steps_behind)
        return result

    def merge_fused_many(self, model: ModelState, updates: list[Update], out: np.ndarray,
                         original: np.ndarray, *,
                         references: list[np.ndarray | None] | None = None, norm: bool = False,
                         block: int = BLOCK, scratch: np.ndarray | None = None
                         ) -> FusedAverages:
        """`merge` of `updates` in order, in one blocked pass with their checks and the last
        result's copy into `out` (`fused_average.screened_averages_into`: the weights and
        norms bit-identical to `merge_fused` once per update). The steps are not changed here:
        `apply_steps` sets them once the caller has accepted every update."""
        return screened_averages_into(model.weights, [u.weights for u in updates], out,
                                      original, references=references, norm=norm, block=block,
                                      scratch=scratch)

    @staticmethod
    def apply_steps(model: ModelState, updates: list[Update]) -> None:
        """t after `updates` merged in order: t_n = max(t_{n-1}, t_p) for each."""
        for update in updates:
            model.steps = merged_steps(model.steps, update.steps_behind)

    def fold(self, partial: Partial | None, update: Update) -> Partial:
        """m averages in a row are the affine map W -> 2^-m W + P: the first update starts
        ``P = W_p / 2`` (scale 1/2), each next one ``P = (P + W_p) / 2`` (scale halved)."""
        if partial is None:
            partial = Partial(update.weights * np.float32(0.5), scale=0.5)
        else:
            check_same_shape(partial.total, update.weights)
            partial.total += update.weights
            partial.total *= np.float32(0.5)
            partial.scale *= 0.5
        partial.count += 1
        partial.max_steps = max(partial.max_steps, update.steps_behind)
        return partial

    def merge_partial(self, model: ModelState, partial: Partial) -> bool:
        """W_n = scale W_{n-1} + P (for one update: (W_{n-1} + W_p) / 2, the same float32
        value, as halving is exact); t_n = max(t_{n-1}, max t_p)."""
        check_same_shape(model.weights, partial.total)
        model.weights *= np.float32(partial.scale)
        model.weights += partial.total
        model.steps = merged_steps(model.steps, partial.max_steps)
        return True


class WebNNWeighted(Strategy):
    """W_n = (W_{n-1} t_{n-1} + W_p t_p) / (t_{n-1} + t_p); t_n = max(t_{n-1}, t_p)."""

    name = "weighted"
    description = ("WebNN staleness-weighted: W_n = (W_{n-1} t_{n-1} + W_p t_p) / (t_{n-1} + t_p) "
                   "(the average when both t are 0); t_n = max(t_{n-1}, t_p).")
    params = (UNIT_PARAM,)
    unit: str

    def merge(self, model: ModelState, update: Update) -> bool:
        t_p = update_t(update, self.unit)
        weighted_into(model.weights, update.weights, model.steps, t_p)
        model.steps = merged_steps(model.steps, t_p)
        return True


class WebNNMimic(Strategy):
    """W_n = W_{n-1} + D / (k + 1), D towards W_p if it is ahead (d > 0), else away from it."""

    name = "mimic"
    description = ("WebNN mimic (as in its code): d = t_p - t_{n-1}; D = W_p - W_{n-1} if d > 0 "
                   "else W_{n-1} - W_p; k = |d| or 1; W_n = W_{n-1} + D / (k + 1); "
                   "t_n = max(t_{n-1}, t_p).")
    params = (UNIT_PARAM,)
    unit: str

    def merge(self, model: ModelState, update: Update) -> bool:
        t_p = update_t(update, self.unit)
        mimic_into(model.weights, update.weights, model.steps, t_p)
        model.steps = merged_steps(model.steps, t_p)
        return True
