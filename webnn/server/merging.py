"""One merge step, run in a worker thread: check, merge, check the result, snapshot.

`MergeWorker.run(model, update, base, current)`:

1. checks the update in one pass (`ingest.check_weights`): finiteness and, with screening, the
   delta norm against `base` (the weights the client started from) or, when that version is not
   kept, the current model; the screen then refuses or clips;
2. hands it to the strategy (``strategy.merge(model, update)``; the update's weights are scratch);
3. if the model changed, checks it is still finite; if not (an overflow), rolls back: the weights
   and step count from `current` (the current version's snapshot), and a plug-in strategy's state
   from the `state()` taken before the merge (webnn's own buffering strategies clear their buffer
   when they apply it, and fedopt restores its moments, so theirs is consistent already) — the
   update is refused with
   ``merge_not_finite``;
4. copies the new version into a pooled snapshot buffer (`np.copyto`, the GIL released).

A strategy that raises is rolled back the same way and the exception propagates. The worker holds
values (strategy, screen, layout, snapshot pool), never the coordinator.

With WebNN's `average` (`fused`, on by default) steps 1-4 first run as one blocked pass
(`WebNNAverage.merge_fused`, `webnn.merge.fused_average`): each block of the update is checked
(its delta's squares summed into the norm, held to the screen's bound as it grows), merged,
checked finite and copied into the snapshot buffer while in cache, so the model-sized arrays are
read once instead of about five times, with bit-identical weights and the same norm (its blocks are
`ingest.CHUNK`, the chunks of `check_weights`). When that pass stops (a non-finite update, a norm
above the bound: clip or refuse, a non-finite result) it has restored the blocks it merged from
`current`, and the steps above run as they always did: the same verdicts, codes and roll-back.
`current` must hold the model's weights (it is the current version's snapshot), as the roll-back
already requires.

`MergeWorker.run_many(model, updates, bases, current)` merges several queued updates with WebNN's
`average` in one such pass (`WebNNAverage.merge_fused_many`): the weights are the averages in
order, bit-identical to one `run` per update; only the versions between the first and the last
are never materialised (no snapshot, no copy). Each update's screen verdict is decided in order
after the pass, as `run` would decide it (the bound of update i includes the norms accepted
before it). Whenever `run` would not have accepted every update as it is (a non-finite update or
result, a norm above its bound: clip or refuse), the model and the screen's window are put back
as they were and None is returned: the caller then runs `run` once per update. So a batch either
merges every update exactly as accepted updates merge, or changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.fused_average import FusedAverage, FusedAverages
from webnn.merge.screening import Screen, ScreenResult
from webnn.merge.webnn_strategies import WebNNAverage
from webnn.server.ingest import CHUNK, check_weights
from webnn.server.updates import not_finite_error
from webnn.server.versions import Snapshot, SnapshotPool
from webnn.weights import WeightLayout

MERGE_NOT_FINITE = "merge_not_finite"

Pass = TypeVar("Pass", FusedAverage, FusedAverages)


def own_strategy(strategy: Strategy) -> bool:
    """One of webnn's strategies (they keep their state consistent themselves)."""
    return type(strategy).__module__.startswith("webnn.merge.")


def stateful(strategy: Strategy) -> bool:
    """Whether `strategy` overrides `Strategy.state` (keeps something between merges)."""
    return type(strategy).state is not Strategy.state


@dataclass(frozen=True)
class MergeOutcome:
    """What one step did: `verdict` (None: no screening; a refused verdict: nothing changed),
    whether the model became a new version, and its snapshot then."""

    verdict: ScreenResult | None
    changed: bool = False
    snapshot: Snapshot | None = None

    @property
    def refused(self) -> bool:
        return self.verdict is not None and self.verdict.refused


class MergeWorker:
    """The in-thread part of a merge for one model; see the module docstring."""

    def __init__(self, strategy: Strategy, screen: Screen | None, layout: WeightLayout,
                 pool: SnapshotPool, fused: bool = True) -> None:
        self.strategy = strategy
        # the one-pass merge of `average` (not of a subclass that merges differently)
        self.fused = (strategy if fused and isinstance(strategy, WebNNAverage)
                      and type(strategy).merge is WebNNAverage.merge else None)
        self.screen = screen
        self.layout = layout
        self.pool = pool
        self.save_state = stateful(strategy) and not own_strategy(strategy)
        # the delta's chunk for the screening norm, kept rather than allocated per merge
        self.scratch = (np.empty(min(CHUNK, layout.size), dtype=np.float32)
                        if screen is not None else None)

    def snapshot(self, model: ModelState) -> Snapshot:
        """The model's weights copied into a pooled read-only buffer."""
        buffer = self.pool.acquire()
        np.copyto(buffer, model.weights)
        buffer.flags.writeable = False
        return Snapshot(buffer, model.steps)

    def run(self, model: ModelState, update: Update, base: np.ndarray | None,
            current: Snapshot) -> MergeOutcome:
        reference = base if base is not None else model.weights
        if self.fused is not None:
            outcome = self._run_fused(self.fused, model, update, reference, current)
            if outcome is not None:
                return outcome
        check = check_weights(update.weights, reference, norm=self.screen is not None,
                              scratch=self.scratch)
        if not check.finite:
            error = not_finite_error(check.bad, check.first, self.layout)
            return MergeOutcome(ScreenResult("refused", "not_finite", error.message))
        verdict = None
        if self.screen is not None:
            verdict = self.screen.check(update.weights, reference, norm=check.norm)
            if verdict.refused:
                return MergeOutcome(verdict)
        saved = self._saved_state()
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
                changed = bool(self.strategy.merge(model, update))
        except Exception:
            self._roll_back(model, current, saved)
            raise
        if changed and not check_weights(model.weights).finite:
            self._roll_back(model, current, saved)
            return MergeOutcome(ScreenResult(
                "refused", MERGE_NOT_FINITE,
                "merging this update would make the model's weights non-finite (overflow); it "
                "was rolled back and the update refused"))
        return MergeOutcome(verdict, changed, self.snapshot(model) if changed else None)

    def run_many(self, model: ModelState, updates: list[Update],
                 bases: list[np.ndarray | None], current: Snapshot) -> list[MergeOutcome] | None:
        """Merge `updates` in order in one pass (module docstring): one outcome per update, the
        last holding the new version's snapshot; None when nothing changed and `run` must take
        them one by one (the strategy is not `average`'s fused pass, or an update would not be
        accepted as it is). `bases[i]`: update i's base weights when its version is kept (its
        delta's reference), else None (the model as the updates before it left it)."""
        strategy, screen = self.fused, self.screen
        if strategy is None or not updates:
            return None
        saved = screen.state() if screen is not None else None
        passed = self._blocked_pass(model, current, lambda buffer: strategy.merge_fused_many(
            model, updates, buffer, current.array(), references=bases, norm=screen is not None,
            block=CHUNK, scratch=self.scratch))
        if passed is None:
            return None
        buffer, result = passed
        verdicts: list[ScreenResult | None] = [None] * len(updates)
        if screen is not None:
            assert result.norms is not None and saved is not None
            for i, (update, norm) in enumerate(zip(updates, result.norms, strict=True)):
                bound = screen.bound()
                if bound is not None and norm > bound:  # `run` would clip or refuse it
                    screen.load_state(saved)
                    self.pool.give_back(buffer)
                    self._roll_back(model, current, None)
                    return None
                verdicts[i] = screen.check(update.weights, bases[i], norm=norm)
        strategy.apply_steps(model, updates)
        buffer.flags.writeable = False
        last = len(updates) - 1
        return [MergeOutcome(verdict, True, Snapshot(buffer, model.steps) if i == last else None)
                for i, verdict in enumerate(verdicts)]

    def _run_fused(self, strategy: WebNNAverage, model: ModelState, update: Update,
                   reference: np.ndarray, current: Snapshot) -> MergeOutcome | None:
        """The one-pass merge (module docstring); None when it stopped and the model is as it was.

        The screen's bound is read before the pass and the pass stops once the norm so far is
        above it; the sum of squares only grows, so a pass that ends has ``norm <= bound`` and
        `Screen.check` accepts it (adding the norm to its window) as it would have before.
        """
        screen = self.screen
        bound = screen.bound() if screen is not None else None
        passed = self._blocked_pass(model, current, lambda buffer: strategy.merge_fused(
            model, update, buffer, current.array(), reference=reference, norm=screen is not None,
            bound=bound, block=CHUNK, scratch=self.scratch))
        if passed is None:
            return None
        buffer, result = passed
        verdict = None
        if screen is not None:
            verdict = screen.check(update.weights, reference, norm=result.norm)
        buffer.flags.writeable = False
        return MergeOutcome(verdict, True, Snapshot(buffer, model.steps))

    def _blocked_pass(self, model: ModelState, current: Snapshot,
                      run: Callable[[np.ndarray], Pass]) -> tuple[np.ndarray, Pass] | None:
        """`run(buffer)`, a blocked pass that writes the new version into a pooled `buffer`: the
        buffer and the pass's result when it merged; None (the buffer given back, the model as
        it was) when it stopped. A pass that raises is rolled back and the error propagates."""
        buffer = self.pool.acquire()
        try:
            result = run(buffer)
        except Exception:
            self.pool.give_back(buffer)
            self._roll_back(model, current, None)
            raise
        if not result.merged:
            self.pool.give_back(buffer)
            return None
        return buffer, result

    def _saved_state(self) -> StrategyState | None:
        if not self.save_state:
            return None
        state = self.strategy.state()
        return StrategyState({k: np.array(v) for k, v in state.arrays.items()}, dict(state.meta))

    def _roll_back(self, model: ModelState, current: Snapshot,
                   saved: StrategyState | None) -> None:
        """Restore the model (and a plug-in strategy's state) to the current version."""
        np.copyto(model.weights, current.array())
        model.steps = current.steps
        if saved is not None:
            self.strategy.load_state(saved)
