"""WebNN's strategies (average, weighted, mimic): the rules of `webnn_rules` as `Strategy` classes.

The server plays the role the merging client played in WebNN: t_{n-1} is ``model.steps`` and t_p is
``update.steps_behind``. None of them has parameters or state; every merge makes a new version.
"""

from __future__ import annotations

from webnn.merge.base import ModelState, Strategy, Update
from webnn.merge.webnn_rules import average_into, merged_steps, mimic_into, weighted_into


class WebNNAverage(Strategy):
    """W_n = (W_{n-1} + W_p) / 2; t_n = max(t_{n-1}, t_p)."""

    name = "average"
    description = "WebNN average: W_n = (W_{n-1} + W_p) / 2; t_n = max(t_{n-1}, t_p)."

    def merge(self, model: ModelState, update: Update) -> bool:
        average_into(model.weights, update.weights)
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True


class WebNNWeighted(Strategy):
    """W_n = (W_{n-1} t_{n-1} + W_p t_p) / (t_{n-1} + t_p); t_n = max(t_{n-1}, t_p)."""

    name = "weighted"
    description = ("WebNN staleness-weighted: W_n = (W_{n-1} t_{n-1} + W_p t_p) / (t_{n-1} + t_p) "
                   "(the average when both t are 0); t_n = max(t_{n-1}, t_p).")

    def merge(self, model: ModelState, update: Update) -> bool:
        weighted_into(model.weights, update.weights, model.steps, update.steps_behind)
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True


class WebNNMimic(Strategy):
    """W_n = W_{n-1} + D / (k + 1), D towards W_p if it is ahead (d > 0), else away from it."""

    name = "mimic"
    description = ("WebNN mimic (as in its code): d = t_p - t_{n-1}; D = W_p - W_{n-1} if d > 0 "
                   "else W_{n-1} - W_p; k = |d| or 1; W_n = W_{n-1} + D / (k + 1); "
                   "t_n = max(t_{n-1}, t_p).")

    def merge(self, model: ModelState, update: Update) -> bool:
        mimic_into(model.weights, update.weights, model.steps, update.steps_behind)
        model.steps = merged_steps(model.steps, update.steps_behind)
        return True
