"""One evaluation of one model version over the whole validation set, split into chunks.

Clients report the mean loss and accuracy over their chunk; the combined result weights each chunk
by its number of examples: ``loss = sum(loss_i * n_i) / sum(n_i)`` (same for accuracy), which equals
the mean over the whole validation set.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from webnn.server.errors import ProtocolError, bad_field
from webnn.server.updates import finite_float


@dataclass
class ChunkResult:
    """A chunk's mean loss and accuracy (None when the client's value was not finite / absent)."""

    loss: float | None
    accuracy: float | None
    examples: int


def _number(body: dict, key: str) -> float | None:
    """``body[key]`` as a finite float; None when null or absent (the client's value was not
    finite); `bad_field` for other types, `not_finite` for a non-finite number."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(f"$.{key}", f"must be a number, got {type(value).__name__}")
    number = finite_float(value)
    if number is None:
        raise ProtocolError(400, "not_finite", f"$.{key} must be a finite number, got {value!r}")
    return number


def parse_chunk_result(body: dict, chunk: int, examples: int) -> ChunkResult:
    """An evaluation answer ``{"loss", "accuracy", "examples"}`` for chunk `chunk`, which holds
    `examples` examples; `ProtocolError` naming the field otherwise."""
    loss = _number(body, "loss")
    accuracy = _number(body, "accuracy")
    count = body.get("examples")
    if isinstance(count, bool) or not isinstance(count, int):
        raise bad_field("$.examples", f"must be an integer, got {count!r}")
    if count != examples:
        raise bad_field("$.examples", f"chunk {chunk} holds {examples} examples, got {count}")
    if accuracy is not None and not 0 <= accuracy <= 1:
        raise bad_field("$.accuracy", f"must be between 0 and 1, got {accuracy}")
    return ChunkResult(loss, accuracy, count)


def _weighted_mean(values: list[tuple[float | None, int]]) -> float | None:
    if any(v is None for v, _ in values):
        return None
    total = sum(n for _, n in values)
    return sum(v * n for v, n in values) / total  # type: ignore[operator]


@dataclass
class Evaluation:
    """An evaluation in progress: chunks not yet handed out and results received so far."""

    id: int
    version: int
    steps: int
    merges: int
    started: float
    chunk_examples: list[int]
    pending: deque[int] = field(default_factory=deque)
    results: dict[int, ChunkResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.pending and not self.results:
            self.pending.extend(range(len(self.chunk_examples)))

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.chunk_examples)

    def combined(self) -> tuple[float | None, float | None, int]:
        """Example-weighted mean loss and accuracy over all chunks (None if any chunk lacks it),
        and the example count."""
        results = list(self.results.values())
        loss = _weighted_mean([(r.loss, r.examples) for r in results])
        accuracy = _weighted_mean([(r.accuracy, r.examples) for r in results])
        return loss, accuracy, sum(r.examples for r in results)


class EvaluationSchedule:
    """When an evaluation is due, the one in progress and its chunks.

    Due (at most one at a time, and only with validation data): after `every_merges` merges since
    the last one, or `every_seconds` of training since the last one started, and, while the run is
    finishing, for the current version unless it was evaluated already. `seq`, `last_merges` and
    `last_elapsed` are checkpointed.
    """

    def __init__(self, every_merges: int | None, every_seconds: float | None,
                 chunk_examples: list[int] | None = None) -> None:
        self.every_merges = every_merges
        self.every_seconds = every_seconds
        self.chunk_examples: list[int] = list(chunk_examples or [])
        self.current: Evaluation | None = None
        self.seq = 0
        self.last_merges = 0
        self.last_elapsed = 0.0

    @property
    def has_data(self) -> bool:
        return bool(self.chunk_examples)

    def due(self, *, merges: int, elapsed: float, finishing: bool, evaluated: bool) -> bool:
        """Whether to start one now; `evaluated`: the current version was evaluated already."""
        if self.current is not None or not self.chunk_examples:
            return False
        if finishing:
            return not evaluated
        if merges <= self.last_merges:
            return False
        return bool(
            (self.every_merges and merges - self.last_merges >= self.every_merges)
            or (self.every_seconds and elapsed - self.last_elapsed >= self.every_seconds))

    def start(self, version: int, steps: int, merges: int, elapsed: float) -> Evaluation:
        self.seq += 1
        self.current = Evaluation(id=self.seq, version=version, steps=steps, merges=merges,
                                  started=elapsed, chunk_examples=list(self.chunk_examples))
        return self.current

    def next_chunk(self) -> tuple[Evaluation, int] | None:
        """The evaluation in progress and a chunk of it not handed out yet, if any."""
        evaluation = self.current
        if evaluation is None or not evaluation.pending:
            return None
        return evaluation, evaluation.pending.popleft()

    def give_back(self, evaluation_id: int, chunk: int) -> None:
        """A chunk whose lease ended unfinished goes back (if its evaluation is still running)."""
        evaluation = self.current
        if (evaluation is not None and evaluation.id == evaluation_id
                and chunk not in evaluation.results):
            evaluation.pending.appendleft(chunk)

    def record(self, evaluation_id: int, chunk: int, result: ChunkResult) -> Evaluation | None:
        """Store a chunk's result; answers the evaluation when this completed it."""
        evaluation = self.current
        if evaluation is None or evaluation.id != evaluation_id:
            return None
        evaluation.results[chunk] = result
        return evaluation if evaluation.complete else None

    def finish(self, evaluation: Evaluation) -> None:
        """`evaluation` completed: the next is due counting from it (the initial one does not
        count)."""
        self.current = None
        if evaluation.version != 0 or evaluation.merges:
            self.last_merges = evaluation.merges
            self.last_elapsed = evaluation.started

    def abandon(self) -> Evaluation | None:
        """Drop the evaluation in progress (the run ended); answers it."""
        evaluation, self.current = self.current, None
        return evaluation

    def state(self) -> dict:
        return {"seq": self.seq, "lastMerges": self.last_merges, "lastElapsed": self.last_elapsed}

    def load(self, state: dict) -> None:
        self.seq = int(state.get("seq", 0))
        self.last_merges = int(state.get("lastMerges", 0))
        self.last_elapsed = float(state.get("lastElapsed", 0.0))
