"""One evaluation of one model version over the whole validation set, split into chunks.

Clients report the mean loss and accuracy over their chunk; the combined result weights each chunk
by its number of examples: ``loss = sum(loss_i * n_i) / sum(n_i)`` (same for accuracy), which equals
the mean over the whole validation set.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class ChunkResult:
    """A chunk's mean loss and accuracy (None when the client's value was not finite / absent)."""

    loss: float | None
    accuracy: float | None
    examples: int


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
