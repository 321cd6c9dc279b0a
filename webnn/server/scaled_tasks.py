"""Train tasks whose learning rate and local steps follow the live clients (the single process's
use of `webnn.server.task_scaling`).

`ScaledTasks.take` is called when a training lease is handed out: it keeps a live trainer live
(`LiveTrainers.refresh`; only accepted updates make one), works out the task's values at the
quantised live count and takes the work from the batch feed, cut to the task's local steps:

- the feed's batches hold ``batchSize x L`` examples (L: the spec's local steps). A task of
  ``l < L`` steps gets the first ``batchSize x l`` examples of the work it takes (`split_work`);
  the rest goes back to the front of its shard's queue, so the next task starts there and no
  example is skipped. A piece keeps its batch's ``index`` (checkpoints record batch numbers: a
  batch partly trained when the server stopped is handed out whole again after a restart) and
  its frame header says where in the batch it starts (``offset``).
- work smaller than asked for (a piece given back, or one cut when fewer steps were asked) is
  handed out as it is; the task's ``localSteps`` is always ``ceil(examples / batchSize)`` of the
  work it carries (`task_local_steps`).

With a warm-up (``lr_warmup`` > 0) the rate handed out follows the rule's rate through
`RateWarmup` (started at the spec's rate): a rise ramps, a fall applies at once.

With the default rule (`TaskScaling.active` false) nothing is cut and tasks carry the spec's
values, as before this module existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webnn.server.batch_feed import BatchFeed
from webnn.server.frames import decode_frame, encode_frame
from webnn.server.task_scaling import (
    LiveTrainers,
    RateWarmup,
    TaskScaling,
    TaskValues,
    ceil_steps,
)
from webnn.server.tasks import TrainWork


def split_work(work: TrainWork, examples: int) -> tuple[TrainWork, TrainWork]:
    """`work` cut after its first `examples` examples (0 < examples < work.examples): the head
    and the tail, each its own frame (header ``offset``: where it starts in the feed's batch)."""
    if not 0 < examples < work.examples:
        raise ValueError(f"cut at {examples} examples: must be between 0 and {work.examples}")
    frame = decode_frame(work.frame)
    x, y = frame.tensors["x"], frame.tensors["y"]
    offset = int(frame.header.get("offset", 0))
    pieces = []
    for start, stop in ((0, examples), (examples, work.examples)):
        header = {**frame.header, "examples": stop - start, "offset": offset + start}
        pieces.append(TrainWork(index=work.index, shard=work.shard, examples=stop - start,
                                frame=encode_frame(header, {"x": x[start:stop],
                                                            "y": y[start:stop]})))
    return pieces[0], pieces[1]


def take_examples(feed: BatchFeed, shard: int, examples: int) -> TrainWork:
    """The shard's next work with at most `examples` examples: work that is larger is cut
    (`split_work`) and its tail handed out next."""
    work = feed.take(shard)
    if work.examples <= examples:
        return work
    head, tail = split_work(work, examples)
    feed.give_back(tail)
    return head


@dataclass
class ScaledTasks:
    """One model's rule, its live trainers and the spec's values (see the module docstring)."""

    scaling: TaskScaling
    live: LiveTrainers
    learning_rate: float
    local_steps: int
    batch_size: int
    warmup: RateWarmup = field(init=False)
    """The rate in use under the warm-up (flat at the spec's rate until the rule raises it)."""

    def __post_init__(self) -> None:
        self.warmup = RateWarmup.at(self.scaling.lr_warmup, self.learning_rate)

    @classmethod
    def for_model(cls, config: object, learning_rate: float, local_steps: int,
                  batch_size: int) -> ScaledTasks:
        """The rule of a `ServeConfig`; live trainers counted over its lease time."""
        return cls(TaskScaling.from_config(config),
                   LiveTrainers(float(getattr(config, "lease_seconds", 60.0))),
                   learning_rate, local_steps, batch_size)

    def values(self, now: float) -> TaskValues:
        """The values a train task gets at `now` (the spec's when the rule is off; the rate in
        use of the warm-up when it is on)."""
        if not self.scaling.active:
            return TaskValues(self.learning_rate, self.local_steps, 1)
        values = self.scaling.values(self.learning_rate, self.local_steps, self.live.level(now))
        if self.scaling.lr_warmup == 0:
            return values
        return TaskValues(self.warmup.follow(values.learning_rate, now), values.local_steps,
                          values.clients)

    def take(self, feed: BatchFeed, shard: int, token: str, now: float
             ) -> tuple[TrainWork, float | None]:
        """Keep `token` live if it trains (`LiveTrainers.refresh`) and take its work: ``(work,
        learning rate)``, the rate None when the rule leaves it at the spec's."""
        self.live.refresh(token, now)
        if not self.scaling.active:
            return feed.take(shard), None
        values = self.values(now)
        work = take_examples(feed, shard, values.local_steps * self.batch_size)
        rate = None if self.scaling.lr_rule == "none" else values.learning_rate
        return work, rate

    def task_local_steps(self, examples: int) -> int:
        """A train task's ``localSteps``: the spec's with the rule off, else the steps of the
        examples it carries."""
        return ceil_steps(examples, self.batch_size) if self.scaling.active else self.local_steps

    def status(self, now: float) -> dict:
        """``status.taskScaling``: the rule, the live training clients, the N in use, the
        values a train task gets now (its rate, local steps and the spec's batch size) and the
        warm-up (``lrWarmup``: its seconds, the rule's
        target rate, the rate in use and the seconds until it reaches the target)."""
        count = self.live.count(now)
        values = self.values(now)
        warmup = self.warmup
        target = warmup.target_rate if self.scaling.lr_warmup else values.learning_rate
        return {"lrScaling": self.scaling.lr_rule, "maxClients": self.scaling.max_clients,
                "localStepsExponent": self.scaling.steps_exponent,
                "minLocalSteps": self.scaling.min_local_steps,
                "liveClients": count, "clients": values.clients,
                "learningRate": values.learning_rate, "localSteps": values.local_steps,
                "batchSize": self.batch_size,
                "lrWarmup": {"seconds": self.scaling.lr_warmup, "targetRate": target,
                             "rateInUse": values.learning_rate,
                             "secondsLeft": warmup.seconds_left(now)}}
