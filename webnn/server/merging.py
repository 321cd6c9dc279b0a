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

With WebNN's `average` (`fused`, on by default) steps 1-4 first run as one blocked pass out of
place (`WebNNAverage.merge_fused`, `webnn.merge.fused_average`): each block of the update is
checked (its delta's squares summed into the norm, held to the screen's bound as it grows), and
the block's average is written straight into a fresh pooled buffer and checked finite while in
cache; that buffer becomes the new version's snapshot *and* the model's weights. The model-sized
arrays are read once and one is written, with bit-identical weights and the same norm (its blocks
are `ingest.CHUNK`, the chunks of `check_weights`). When that pass stops (a non-finite update, a
norm above the bound: clip or refuse, a non-finite result) the model was not written and the steps
above run as they always did: the same verdicts, codes and roll-back.

Who owns the model's weights (the one rule every writer follows): ``model.weights`` is either
*private* (a writable array only the model holds) or *published* (read-only: after a fused merge
it is the current version's snapshot buffer, lent to readers: `GET weights` responses, the f16
copy, older merges' bases). A published array is never written: an in-place writer (the
strategy's `merge` in step 2, the roll-back) first makes the weights private (`own_weights`: a
copy into a pooled buffer), and the fused pass never writes them at all (it reads them and writes
the next version's buffer: double buffering through the snapshot pool). The read-only flag is
what tells the two apart, so a writer that forgot the rule fails loudly (numpy refuses to write a
read-only array) instead of changing a version clients may be reading. A snapshot buffer the model
still aliases is never reused by the pool (`SnapshotPool.give_back` sees the model's reference);
the private buffer the model leaves behind when a fused merge makes it alias the new version goes
back to the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webnn.merge.base import ModelState, Strategy, StrategyState, Update
from webnn.merge.screening import Screen, ScreenResult
from webnn.merge.webnn_strategies import WebNNAverage
from webnn.server.ingest import CHUNK, check_weights
from webnn.server.updates import not_finite_error
from webnn.server.versions import Snapshot, SnapshotPool
from webnn.weights import WeightLayout

MERGE_NOT_FINITE = "merge_not_finite"


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
        self.own_weights(model)
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

    def own_weights(self, model: ModelState) -> None:
        """Make ``model.weights`` private before an in-place write (module docstring): published
        (read-only) weights are copied into a pooled buffer the model then holds alone."""
        if not model.weights.flags.writeable:
            buffer = self.pool.acquire()
            np.copyto(buffer, model.weights)
            model.weights = buffer

    def _run_fused(self, strategy: WebNNAverage, model: ModelState, update: Update,
                   reference: np.ndarray, current: Snapshot) -> MergeOutcome | None:
        """The one-pass merge (module docstring); None when it stopped and the model is as it was.

        The screen's bound is read before the pass and the pass stops once the norm so far is
        above it; the sum of squares only grows, so a pass that ends has ``norm <= bound`` and
        `Screen.check` accepts it (adding the norm to its window) as it would have before. The
        merged buffer is made read-only before anyone else sees it; the model's previous weights
        go back to the pool when they were private (published ones belong to their version).
        """
        screen = self.screen
        bound = screen.bound() if screen is not None else None
        buffer = self.pool.acquire()
        previous, steps = model.weights, model.steps
        try:
            result = strategy.merge_fused(model, update, buffer, reference=reference,
                                          norm=screen is not None, bound=bound, block=CHUNK,
                                          scratch=self.scratch)
        except Exception:
            model.weights, model.steps = previous, steps
            self.pool.give_back(buffer)
            raise
        if not result.merged:
            self.pool.give_back(buffer)
            return None
        buffer.flags.writeable = False
        verdict = None
        if screen is not None:
            verdict = screen.check(update.weights, reference, norm=result.norm)
            if verdict.refused:  # not expected (norm <= bound); the model stays as it was
                model.weights, model.steps = previous, steps
                self.pool.give_back(buffer)
                return MergeOutcome(verdict)
        if previous.flags.writeable:  # lent until the caller's references to it are gone
            self.pool.give_back(previous)
        return MergeOutcome(verdict, True, Snapshot(buffer, model.steps))

    def _saved_state(self) -> StrategyState | None:
        if not self.save_state:
            return None
        state = self.strategy.state()
        return StrategyState({k: np.array(v) for k, v in state.arrays.items()}, dict(state.meta))

    def _roll_back(self, model: ModelState, current: Snapshot,
                   saved: StrategyState | None) -> None:
        """Restore the model (and a plug-in strategy's state) to the current version: private
        weights get the current version's values copied in; published ones were not written
        (module docstring) and alias the current version's snapshot again."""
        if model.weights.flags.writeable:
            np.copyto(model.weights, current.array())
        else:
            model.weights = current.array()
        model.steps = current.steps
        if saved is not None:
            self.strategy.load_state(saved)
