"""Evaluation orchestration for one model: starting an evaluation when it is due, recording a
chunk's answer, turning a completed evaluation into the run's history, and the final entry of a run
whose final evaluation did not complete.

`Evaluations` holds values, never the coordinator: the schedule (`evaluation.EvaluationSchedule`:
chunks, quorum, settling), the version store (an evaluation holds its version until it is
complete), the event bus, the clock, the class count and the target accuracy. It owns the run's
`history` (one entry per completed evaluation, plus the final entry) and `evaluated` (the versions
with figures in it). Whether the run ends is returned to the coordinator (`Completed.end_reason`),
which ends it; who disagreed with a chunk's majority is the coordinator's to count
(`Settled.outliers`).

A history entry: ``time``, ``elapsed``, ``version``, ``steps``, ``merges``, ``valLoss``,
``valAccuracy``, ``examples``, ``validated`` (the quorum agreed on every chunk), ``classAccuracy``
and ``worstClassAccuracy`` (when the answers carried class counts), and on the final entry
``final: true`` with ``evaluated`` (false, with ``lastValidated``, when the final evaluation did
not complete in time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from webnn.server.evaluation import (
    Evaluation,
    EvaluationSchedule,
    Party,
    Settled,
    parse_chunk_result,
)
from webnn.server.events import EventBus
from webnn.server.tasks import EvalWork
from webnn.server.versions import VersionSnapshots


@dataclass(frozen=True)
class Completed:
    """A completed evaluation's history `entry`, and the reason the run ends with it (the target
    accuracy reached on a validated evaluation, or the final evaluation done), else None."""

    entry: dict
    end_reason: str | None = None


class Evaluations:
    """The evaluations of one model and its history; see the module docstring."""

    def __init__(self, schedule: EvaluationSchedule, versions: VersionSnapshots,
                 events: EventBus, clock: Callable[[], float], classes: int | None,
                 target_accuracy: float | None) -> None:
        self.schedule = schedule
        self.versions = versions
        self.events = events
        self.clock = clock
        self.classes = classes
        self.target_accuracy = target_accuracy
        self.history: list[dict] = []
        self.evaluated: set[int] = set()

    def load(self, history: list[dict]) -> None:
        """The history of a checkpoint (entries older than replication count as not
        validated)."""
        self.history = list(history)
        for entry in self.history:
            entry.setdefault("validated", False)
        self.evaluated = {h["version"] for h in self.history if h.get("evaluated", True)}

    @property
    def current(self) -> Evaluation | None:
        """The evaluation in progress, if any."""
        return self.schedule.current

    def start(self, version: int, steps: int, merges: int, elapsed: float) -> None:
        """Evaluate `version` now; it is held in the version store until complete."""
        self.schedule.start(version, steps, merges, elapsed)
        self.versions.hold(version)

    def maybe_start(self, *, version: int, steps: int, merges: int, elapsed: float,
                    finishing: bool) -> None:
        """Start an evaluation of the current `version` if the schedule says one is due."""
        if self.schedule.due(merges=merges, elapsed=elapsed, finishing=finishing,
                             evaluated=version in self.evaluated):
            self.start(version, steps, merges, elapsed)

    def record(self, work: EvalWork, token: str, body: dict, now: float) -> bool:
        """Check a chunk's answer (`parse_chunk_result`: a `ProtocolError` when it is invalid)
        and record it for session `token`; True when the chunk's quorum may now settle."""
        result = parse_chunk_result(body, work.chunk, work.examples, self.classes)
        return self.schedule.record(work.evaluation, work.chunk, token, result, now)

    def settle(self, now: float, live: Callable[[str], bool], sessions: int,
               parties: Callable[[], Iterable[tuple[str, Party]]]) -> Settled:
        """Settle the chunks that can be (see `EvaluationSchedule.settle`)."""
        return self.schedule.settle(now, live, sessions, parties)

    def complete(self, evaluation: Evaluation, *, elapsed: float, final: bool,
                 finishing_reason: str | None) -> Completed:
        """Record a completed evaluation: its history entry (``final`` when it evaluates the last
        version of a finishing run), its version released, an ``evaluation`` event; the run ends
        when a validated evaluation reaches the target accuracy, or with `finishing_reason` when
        this was the final evaluation."""
        loss, accuracy, examples = evaluation.combined()
        counts = evaluation.class_counts()
        validated = evaluation.validated
        entry = {"time": self.clock(), "elapsed": round(elapsed, 3),
                 "version": evaluation.version, "steps": evaluation.steps,
                 "merges": evaluation.merges, "valLoss": loss, "valAccuracy": accuracy,
                 "examples": examples, "validated": validated,
                 "classAccuracy": None if counts is None else counts.accuracy(),
                 "worstClassAccuracy": None if counts is None else counts.worst()}
        if final:
            entry.update(final=True, evaluated=True)
        self.history.append(entry)
        self.evaluated.add(evaluation.version)
        self.schedule.finish(evaluation)
        self.versions.release(evaluation.version)
        self.events.publish("evaluation", entry)
        target = self.target_accuracy
        if validated and target is not None and accuracy is not None and accuracy >= target:
            return Completed(entry, f"target_accuracy={target} reached ({accuracy:.4f})")
        if final:
            return Completed(entry, finishing_reason or "finished")
        return Completed(entry)

    def last_validated(self) -> dict | None:
        """The newest history entry of a validated evaluation, if any."""
        return next((h for h in reversed(self.history)
                     if h.get("validated") and h.get("evaluated", True)), None)

    def unevaluated(self, *, elapsed: float, version: int, steps: int,
                    merges: int) -> tuple[dict, str]:
        """The final evaluation did not complete in time: the final history entry (``"final":
        true, "evaluated": false``, figures null, ``"lastValidated"``: the last validated
        evaluation's version and figures), published; and what the end reason says of it."""
        last = self.last_validated()
        reference = None if last is None else {
            "version": last["version"], "valLoss": last["valLoss"],
            "valAccuracy": last["valAccuracy"]}
        said = ("no validated evaluation" if last is None else
                f"last validated evaluation: version {last['version']}")
        entry = {"time": self.clock(), "elapsed": round(elapsed, 3),
                 "version": version, "steps": steps,
                 "merges": merges, "valLoss": None, "valAccuracy": None, "examples": 0,
                 "classAccuracy": None, "worstClassAccuracy": None,
                 "validated": False, "final": True, "evaluated": False,
                 "lastValidated": reference}
        self.history.append(entry)
        self.events.publish("evaluation", entry)
        return entry, said
