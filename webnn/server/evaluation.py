"""One evaluation of one model version over the whole validation set, split into chunks, each
evaluated by several sessions that must agree (replication and validation, as volunteer
computing's BOINC does).

Clients report the mean loss and accuracy over their chunk; the combined result weights each chunk
by its number of examples: ``loss = sum(loss_i * n_i) / sum(n_i)`` (same for accuracy), which equals
the mean over the whole validation set.

Classification clients may also report per-class counts (`ClassCounts`): for each class k of the
output layer, ``count_k`` examples of the chunk are labelled k and ``correct_k`` of them were
predicted k. The evaluation sums them over chunks; class k's accuracy is
``sum_i correct_ik / sum_i count_ik`` (None when no example is labelled k) and the worst-class
accuracy is the minimum over classes with examples (None unless every accepted chunk carried
counts).

Replication: each chunk goes to `quorum` different sessions (never twice to one session). When
their results agree (`results_agree`) the chunk is accepted and *validated*; a disagreement sends
the chunk to one more session, the majority wins and each replica outside it is an outlier (the
coordinator counts it as an invalid evaluation, ``evaluation_disagrees``). When fewer live sessions
than the quorum can evaluate a chunk, it is accepted with the results it has after a bounded wait,
*unvalidated*. An evaluation is validated when all its chunks are.

Independence: the replicas of one chunk must come from different *parties* (`Party`), not just
different sessions, or one person with two sessions could agree with themself on a lie. Two
sessions are the same party when they share a client address group (the address admission sees,
proxy-aware; an IPv6 address counts by its /64 network, which one subscriber usually holds whole)
or a volunteer id. Loopback addresses are exempt from the address rule (every local worker of
``wnn serve --local-workers`` and ``wnn compare`` connects from 127.0.0.1, and an address there
says nothing about who is behind it); the volunteer-id rule still applies to them. A chunk is
never handed to a session whose party already holds or evaluated it, so a chunk can only be
validated by `quorum` distinct parties; short of them it waits and is accepted unvalidated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from webnn.server.addresses import address_group
from webnn.server.errors import ProtocolError, bad_field
from webnn.server.updates import finite_float

ACCURACY_EXAMPLES = 2
"""Accuracies of one chunk agree within this many of its examples ..."""
ACCURACY_TOLERANCE = 0.01
"""... or within this absolute difference, whichever is larger."""
LOSS_RELATIVE = 0.01
LOSS_ABSOLUTE = 1e-4
"""Losses of one chunk agree within ``LOSS_RELATIVE * max(|a|, |b|) + LOSS_ABSOLUTE``."""
CLASS_EXAMPLES = 2
CLASS_TOLERANCE = 0.01
"""A class's correct counts of one chunk agree within ``max(CLASS_EXAMPLES, CLASS_TOLERANCE *
count)`` examples (its count must be equal)."""


@dataclass(frozen=True)
class ClassCounts:
    """Per-class counts of one chunk (or of a whole evaluation): ``count[k]`` examples labelled
    k, ``correct[k]`` of them predicted k."""

    correct: tuple[int, ...]
    count: tuple[int, ...]

    def __add__(self, other: ClassCounts) -> ClassCounts:
        return ClassCounts(tuple(a + b for a, b in zip(self.correct, other.correct, strict=True)),
                           tuple(a + b for a, b in zip(self.count, other.count, strict=True)))

    def accuracy(self) -> list[float | None]:
        """``correct_k / count_k`` per class; None for a class without examples."""
        return [c / n if n else None for c, n in zip(self.correct, self.count, strict=True)]

    def worst(self) -> float | None:
        """The lowest accuracy over classes with examples (None when none has any)."""
        known = [a for a in self.accuracy() if a is not None]
        return min(known) if known else None

    def agrees(self, other: ClassCounts) -> bool:
        """Same counts per class, and correct counts within ``max(2, 1 % of the count)``."""
        return self.count == other.count and all(
            abs(a - b) <= max(CLASS_EXAMPLES, CLASS_TOLERANCE * n)
            for a, b, n in zip(self.correct, other.correct, self.count, strict=True))


@dataclass
class ChunkResult:
    """A chunk's mean loss and accuracy (None when the client's value was not finite / absent)
    and, from clients that send them, its per-class counts."""

    loss: float | None
    accuracy: float | None
    examples: int
    classes: ClassCounts | None = None


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


CLASS_LOSSES = frozenset({"sparseCategoricalCrossentropy", "categoricalCrossentropy"})
"""Losses whose models report per-class counts (argmax of the prediction against the label)."""


def class_count(loss: str, output_shape: tuple[int | None, ...]) -> int | None:
    """K, the classes of a model whose per-class counts clients report: a `CLASS_LOSSES` loss
    and one output of shape ``[batch, K]``; None otherwise (no per-class counts)."""
    if loss not in CLASS_LOSSES or len(output_shape) != 2 or not output_shape[1]:
        return None
    return int(output_shape[1])


def _count_list(value: object, path: str, classes: int) -> list[int]:
    if not isinstance(value, list):
        raise bad_field(path, f"must be a list of {classes} integers, got {type(value).__name__}")
    if len(value) != classes:
        raise bad_field(path, f"must hold {classes} entries (one per class), got {len(value)}")
    for k, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise bad_field(f"{path}[{k}]", f"must be an integer, got {item!r}")
        if item < 0:
            raise bad_field(f"{path}[{k}]", f"must not be negative, got {item}")
    return value


def parse_class_counts(value: object, classes: int | None, examples: int) -> ClassCounts | None:
    """The optional ``classes`` field ``{"correct": [...], "count": [...]}`` of an evaluation
    answer: `classes` integers each (None: the model is not a classifier, so the field must be
    absent or null), ``correct[k] <= count[k]`` and ``sum(count) == examples``; `bad_field` naming
    the JSON path otherwise."""
    if value is None:
        return None
    if classes is None:
        raise bad_field("$.classes", "this model reports no per-class accuracy (not a "
                        "classifier with one output of shape [batch, classes])")
    if not isinstance(value, dict):
        raise bad_field("$.classes", f"must be an object {{correct, count}}, got "
                        f"{type(value).__name__}")
    extra = sorted(set(value) - {"correct", "count"})
    if extra:
        raise bad_field(f"$.classes.{extra[0]}", "unknown field (expected correct, count)")
    count = _count_list(value.get("count"), "$.classes.count", classes)
    correct = _count_list(value.get("correct"), "$.classes.correct", classes)
    for k, (c, n) in enumerate(zip(correct, count, strict=True)):
        if c > n:
            raise bad_field(f"$.classes.correct[{k}]", f"{c} exceeds $.classes.count[{k}] = {n}")
    if sum(count) != examples:
        raise bad_field("$.classes.count", f"must sum to the chunk's {examples} examples, got "
                        f"{sum(count)}")
    return ClassCounts(tuple(correct), tuple(count))


def parse_chunk_result(body: dict, chunk: int, examples: int,
                       classes: int | None = None) -> ChunkResult:
    """An evaluation answer ``{"loss", "accuracy", "examples", "classes"?}`` for chunk `chunk`,
    which holds `examples` examples, of a model with `classes` classes (None: not a classifier;
    see `parse_class_counts`); `ProtocolError` naming the field otherwise."""
    loss = _number(body, "loss")
    accuracy = _number(body, "accuracy")
    count = body.get("examples")
    if isinstance(count, bool) or not isinstance(count, int):
        raise bad_field("$.examples", f"must be an integer, got {count!r}")
    if count != examples:
        raise bad_field("$.examples", f"chunk {chunk} holds {examples} examples, got {count}")
    if accuracy is not None and not 0 <= accuracy <= 1:
        raise bad_field("$.accuracy", f"must be between 0 and 1, got {accuracy}")
    return ChunkResult(loss, accuracy, count, parse_class_counts(body.get("classes"), classes,
                                                                 examples))


def _weighted_mean(values: list[tuple[float | None, int]]) -> float | None:
    known = [(v, n) for v, n in values if v is not None]
    if len(known) < len(values):
        return None
    return sum(v * n for v, n in known) / sum(n for _, n in known)


def results_agree(a: ChunkResult, b: ChunkResult) -> bool:
    """Whether two evaluations of one chunk with the same weights agree.

    The same weights and the same chunk give the same figures up to the backend's rounding
    (float32 on CPU/WASM, float16 textures on some WebGL devices): a few examples near a decision
    boundary may flip, and a mean loss accumulated in another order or precision differs in its
    last digits. So: accuracies within ``max(2 / examples, 0.01)`` (two examples of the chunk, at
    least one point; plus 1e-9 for the rounding of the fractions themselves), losses within
    ``1 % * max(|a|, |b|) + 1e-4``. A figure that is null (the client saw a non-finite value, or
    the model has no accuracy) agrees only with null. Per-class counts, when both carry them,
    must agree too (`ClassCounts.agrees`: equal counts, correct counts within ``max(2, 1 %)`` of
    the class's count); a result without them (an older client) is compared on its means only.
    """
    if (a.accuracy is None) != (b.accuracy is None) or (a.loss is None) != (b.loss is None):
        return False
    accuracy_off = (a.accuracy is not None and b.accuracy is not None
                    and abs(a.accuracy - b.accuracy)
                    > max(ACCURACY_EXAMPLES / max(a.examples, 1), ACCURACY_TOLERANCE) + 1e-9)
    loss_off = (a.loss is not None and b.loss is not None
                and abs(a.loss - b.loss)
                > LOSS_RELATIVE * max(abs(a.loss), abs(b.loss)) + LOSS_ABSOLUTE)
    classes_off = (a.classes is not None and b.classes is not None
                   and not a.classes.agrees(b.classes))
    return not (accuracy_off or loss_off or classes_off)


@dataclass(frozen=True)
class Party:
    """Who is behind a session as far as the server can tell: its address group
    (`address_group`; None: exempt or unknown) and its volunteer id (None: none sent)."""

    address: str | None = None
    volunteer: str | None = None

    @classmethod
    def of(cls, address: str | None, volunteer: str | None) -> Party:
        return cls(address_group(address), volunteer or None)

    def shares(self, other: Party) -> bool:
        """Whether two sessions are the same party: the same address group or volunteer id."""
        return ((self.address is not None and self.address == other.address)
                or (self.volunteer is not None and self.volunteer == other.volunteer))


ANYONE = Party()
"""A party sharing nothing with anyone (tests, trusted evaluators)."""


@dataclass
class Replica:
    """One session's result for one chunk, and its party."""

    session: str
    result: ChunkResult
    party: Party = ANYONE


@dataclass
class ChunkState:
    """One chunk of an evaluation: the replicas received, the sessions holding a lease on it, how
    many results are wanted (the quorum, one more per disagreement) and, once settled, the
    accepted result."""

    examples: int
    wanted: int
    replicas: list[Replica] = field(default_factory=list)
    leased: dict[str, Party] = field(default_factory=dict)  # session -> its party
    since: float | None = None
    accepted: ChunkResult | None = None
    validated: bool = False

    def had(self, session: str, party: Party = ANYONE) -> bool:
        """Whether `session`, or another session of its `party`, holds a lease on this chunk or
        returned a result for it."""
        return (session in self.leased or any(r.session == session for r in self.replicas)
                or any(party.shares(other) for other in self.leased.values())
                or any(party.shares(r.party) for r in self.replicas))

    def open_slots(self) -> int:
        return self.wanted - len(self.replicas) - len(self.leased)

    def majority(self) -> tuple[int, list[int]]:
        """The replica agreeing with the most others (the earliest on a tie) and the indices of
        the replicas agreeing with it, itself included."""
        best, best_group = 0, [0]
        for i, replica in enumerate(self.replicas):
            group = [j for j, other in enumerate(self.replicas)
                     if j == i or results_agree(replica.result, other.result)]
            if len(group) > len(best_group):
                best, best_group = i, group
        return best, best_group


@dataclass
class Settled:
    """What `EvaluationSchedule.settle` decided: sessions whose result disagreed with a validated
    majority (each counts as an invalid evaluation), and the evaluation if it is now complete."""

    outliers: list[str] = field(default_factory=list)
    completed: Evaluation | None = None


@dataclass
class Evaluation:
    """An evaluation in progress: each chunk's replicas and, once settled, its accepted result.

    `quorum`: agreeing results a chunk needs to be validated (1: every result is). `results`
    holds the accepted result of each settled chunk; the evaluation is `validated` when every
    chunk was.
    """

    id: int
    version: int
    steps: int
    merges: int
    started: float
    chunk_examples: list[int]
    quorum: int = 1
    results: dict[int, ChunkResult] = field(default_factory=dict)
    chunks: list[ChunkState] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.chunks:
            self.chunks = [ChunkState(n, self.quorum) for n in self.chunk_examples]

    @property
    def pending(self) -> list[int]:
        """Chunks not settled yet, in order."""
        return [i for i in range(len(self.chunk_examples)) if i not in self.results]

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.chunk_examples)

    @property
    def validated(self) -> bool:
        """Every chunk's result was confirmed by `quorum` agreeing sessions."""
        return self.complete and all(c.validated for c in self.chunks)

    def combined(self) -> tuple[float | None, float | None, int]:
        """Example-weighted mean loss and accuracy over all chunks (None if any chunk lacks it),
        and the example count."""
        results = list(self.results.values())
        loss = _weighted_mean([(r.loss, r.examples) for r in results])
        accuracy = _weighted_mean([(r.accuracy, r.examples) for r in results])
        return loss, accuracy, sum(r.examples for r in results)

    def class_counts(self) -> ClassCounts | None:
        """Per-class counts summed over all chunks; None when any accepted chunk lacks them."""
        counts = [r.classes for r in self.results.values()]
        if not counts or any(c is None for c in counts):
            return None
        total = counts[0]
        assert total is not None
        for more in counts[1:]:
            assert more is not None
            total = total + more
        return total

    def chunk_for(self, session: str, party: Party = ANYONE) -> int | None:
        """The first unsettled chunk that wants another result and that neither `session` nor
        another session of its `party` holds or evaluated (a chunk is never handed twice to one
        session, nor to two sessions of one party)."""
        for index, chunk in enumerate(self.chunks):
            if (index not in self.results and chunk.open_slots() > 0
                    and not chunk.had(session, party)):
                return index
        return None

    def _accept(self, index: int, result: ChunkResult, validated: bool) -> None:
        chunk = self.chunks[index]
        chunk.accepted, chunk.validated = result, validated
        self.results[index] = result

    def settle(self, now: float, wait: float, live: Callable[[str], bool],
               live_count: int,
               candidates: Callable[[], Iterable[tuple[str, Party]]] | None = None
               ) -> list[str]:
        """Settle every chunk that can be; answers the outliers' sessions.

        A chunk whose majority (the replica agreeing with the most others) has `quorum` members
        is accepted as validated; replicas outside it are outliers. Short of that, once every
        wanted result is in, one more is wanted, up to ``2 * quorum + 1`` results. A chunk with
        at least one result and no open lease is accepted unvalidated (the majority's result;
        nobody is counted as an outlier) when no live session could add a result (all of them
        gave one, or, given `candidates` (the live sessions and their parties), none is of
        another party than the chunk's replicas) or `wait` seconds have passed since its first
        result (or since it last asked for one more), or when it already holds the most results
        it may get.
        """
        outliers: list[str] = []
        cap = 2 * self.quorum + 1
        for index, chunk in enumerate(self.chunks):
            if index in self.results or not chunk.replicas:
                continue
            best, group = chunk.majority()
            # of the agreeing replicas, one with per-class counts if any sent them
            winner = next((chunk.replicas[j].result for j in group
                           if chunk.replicas[j].result.classes is not None),
                          chunk.replicas[best].result)
            if len(group) >= self.quorum:
                self._accept(index, winner, True)
                outliers += [r.session for j, r in enumerate(chunk.replicas) if j not in group]
                continue
            if chunk.open_slots() <= 0 and not chunk.leased and chunk.wanted < cap:
                chunk.wanted += 1  # disagreement: one more client decides
                chunk.since = now
            if chunk.leased:
                continue
            since = now if chunk.since is None else chunk.since
            if (not self._could_add(chunk, live, live_count, candidates)
                    or now - since >= wait or len(chunk.replicas) >= cap):
                self._accept(index, winner, False)
        return outliers


    @staticmethod
    def _could_add(chunk: ChunkState, live: Callable[[str], bool], live_count: int,
                   candidates: Callable[[], Iterable[tuple[str, Party]]] | None) -> bool:
        """Whether some live session may still add a result to `chunk` (stops at the first)."""
        if candidates is None:
            return live_count - sum(1 for r in chunk.replicas if live(r.session)) > 0
        return any(not chunk.had(token, party) for token, party in candidates())


class EvaluationSchedule:
    """When an evaluation is due, the one in progress and its chunks.

    Due (at most one at a time, and only with validation data): after `every_merges` merges since
    the last one, or `every_seconds` of training since the last one started, and, while the run is
    finishing, for the current version unless it was evaluated already. Each chunk needs `quorum`
    agreeing results; `quorum_wait` bounds how long a chunk short of its quorum waits (see
    `Evaluation.settle`). `seq`, `last_merges` and `last_elapsed` are checkpointed.
    """

    def __init__(self, every_merges: int | None, every_seconds: float | None,
                 chunk_examples: list[int] | None = None, *, quorum: int = 1,
                 quorum_wait: float = 30.0) -> None:
        self.every_merges = every_merges
        self.every_seconds = every_seconds
        self.chunk_examples: list[int] = list(chunk_examples or [])
        self.quorum = quorum
        self.quorum_wait = quorum_wait
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
                                  started=elapsed, chunk_examples=list(self.chunk_examples),
                                  quorum=self.quorum)
        return self.current

    def has_chunk_for(self, session: str, party: Party = ANYONE) -> bool:
        """Whether the evaluation in progress has a chunk `session` (of `party`) may take now."""
        evaluation = self.current
        return evaluation is not None and evaluation.chunk_for(session, party) is not None

    def next_chunk(self, session: str, party: Party = ANYONE) -> tuple[Evaluation, int] | None:
        """The evaluation in progress and a chunk of it for `session` (now leased to it)."""
        evaluation = self.current
        if evaluation is None:
            return None
        chunk = evaluation.chunk_for(session, party)
        if chunk is None:
            return None
        evaluation.chunks[chunk].leased[session] = party
        return evaluation, chunk

    def give_back(self, evaluation_id: int, chunk: int, session: str) -> None:
        """A chunk's lease ended unfinished: another session (or this one again) may take it."""
        evaluation = self.current
        if evaluation is not None and evaluation.id == evaluation_id:
            evaluation.chunks[chunk].leased.pop(session, None)

    def record(self, evaluation_id: int, chunk: int, session: str, result: ChunkResult,
               now: float) -> bool:
        """Store `session`'s result for a chunk; False when the evaluation is over or the chunk
        already settled (the result is then not needed)."""
        evaluation = self.current
        if evaluation is None or evaluation.id != evaluation_id or chunk in evaluation.results:
            return False
        state = evaluation.chunks[chunk]
        party = state.leased.pop(session, ANYONE)
        state.replicas.append(Replica(session, result, party))
        if state.since is None:
            state.since = now
        return True

    def settle(self, now: float, live: Callable[[str], bool], live_count: int,
               candidates: Callable[[], Iterable[tuple[str, Party]]] | None = None) -> Settled:
        """Settle what can be settled (`Evaluation.settle`); the outliers and, when this
        completed the evaluation in progress, the evaluation."""
        evaluation = self.current
        if evaluation is None:
            return Settled()
        outliers = evaluation.settle(now, self.quorum_wait, live, live_count, candidates)
        return Settled(outliers, evaluation if evaluation.complete else None)

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
