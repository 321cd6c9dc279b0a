"""The task-scaling rules as pure functions (webnn/server/task_scaling.py), with worked
examples, and the piece cutting of the single process's feed (webnn/server/scaled_tasks.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from webnn.data import ArrayDataset
from webnn.server.batch_feed import BatchFeed
from webnn.server.frames import decode_frame
from webnn.server.scaled_tasks import ScaledTasks, split_work, take_examples
from webnn.server.task_scaling import (
    LiveTrainers,
    RateWarmup,
    TaskScaling,
    TaskValues,
    floor_power_of_two,
    next_level,
    scaled_learning_rate,
    scaled_local_steps,
    warmup_rate,
)
from webnn.settings import ConfigError


def test_learning_rate_rules_worked_examples() -> None:
    # Adam at 0.01 tuned for one client; 16 clients: sqrt rule 0.01 * 4 = 0.04 (docs/scaling.md)
    assert scaled_learning_rate(0.01, 16, "sqrt") == pytest.approx(0.04)
    assert scaled_learning_rate(0.01, 8, "sqrt") == pytest.approx(0.01 * math.sqrt(8))
    # SGD at 0.1, 8 clients: linear rule 0.8 (Goyal et al. 2017)
    assert scaled_learning_rate(0.1, 8, "linear") == pytest.approx(0.8)
    # none: the spec's rate, exactly, whatever N
    assert scaled_learning_rate(0.0123, 64, "none") == 0.0123
    # one client: every rule gives the spec's rate back
    for rule in ("none", "sqrt", "linear"):
        assert scaled_learning_rate(0.01, 1, rule) == 0.01
    with pytest.raises(ValueError, match="lr rule"):
        scaled_learning_rate(0.01, 4, "cube")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clients"):
        scaled_learning_rate(0.01, 0, "sqrt")


def test_local_steps_rule_worked_examples() -> None:
    # L = 10, e = 1/2: 4 clients -> 10 / 2 = 5; 16 -> 10 / 4 = 2.5 -> 2 (round half to even)
    assert scaled_local_steps(10, 4, 0.5) == 5
    assert scaled_local_steps(10, 16, 0.5) == 2
    # e = 1, 16 clients: round(0.625) = 1, raised to min_local_steps = 2
    assert scaled_local_steps(10, 16, 1.0, min_local_steps=2) == 2
    # never more than the spec's L (the feed's batch), even with a large minimum
    assert scaled_local_steps(5, 4, 0.5, min_local_steps=8) == 5
    # e = 0: off, L whatever N
    assert scaled_local_steps(10, 64, 0.0) == 10
    assert scaled_local_steps(10, 1, 1.0) == 10


def test_levels_are_powers_of_two_with_hysteresis() -> None:
    assert [floor_power_of_two(n) for n in (0, 1, 2, 3, 4, 7, 8, 15, 16)] == [
        1, 1, 2, 2, 4, 4, 8, 8, 16]
    # rising: as soon as the count reaches the next power of two
    assert next_level(1, 2) == 2 and next_level(2, 3) == 2 and next_level(2, 4) == 4
    assert next_level(4, 16) == 16
    # staying: at 8, anything from 6 (3/4 of 8) to 15 keeps 8
    assert all(next_level(8, n) == 8 for n in range(6, 16))
    # falling: below 3/4 of the level, to the power of two below the count
    assert next_level(8, 5) == 4 and next_level(8, 1) == 1 and next_level(16, 11) == 8
    assert next_level(4, 0) == 1
    # one volunteer coming and going around 8 does not flap: 8, 7, 8, 7 ... all 8
    level = 1
    for count in (8, 7, 8, 7, 8):
        level = next_level(level, count)
        assert level == 8


def test_task_scaling_values_and_cap() -> None:
    rule = TaskScaling("sqrt", max_clients=8, steps_exponent=0.5, min_local_steps=2)
    assert rule.active
    # level 16 capped at 8: lr 0.01 * sqrt(8), steps round(10 / sqrt(8)) = round(3.54) = 4
    values = rule.values(0.01, 10, 16)
    assert values == TaskValues(pytest.approx(0.01 * math.sqrt(8)), 4, 8)
    assert rule.values(0.01, 10, 1) == TaskValues(0.01, 10, 1)
    assert not TaskScaling().active
    assert TaskScaling(steps_exponent=0.5).active
    for kwargs, field in (({"lr_rule": "cube"}, "lr_scaling"), ({"max_clients": 0},
                          "scaling_max_clients"), ({"steps_exponent": 2.0},
                          "local_steps_exponent"), ({"min_local_steps": 0}, "min_local_steps")):
        with pytest.raises(ValueError, match=field):
            TaskScaling(**kwargs)  # type: ignore[arg-type]


def test_live_trainers_count_distinct_sessions_within_the_window() -> None:
    live = LiveTrainers(window=60.0)
    live.note("a", 0.0)
    live.note("b", 10.0)
    live.note("a", 20.0)  # a again: still one session, now younger than b
    assert live.count(30.0) == 2
    assert live.count(70.5) == 1  # b last trained at 10: out of the 60 s window; a (20) is in
    live.forget("a")  # left
    assert live.count(70.5) == 0
    live.forget("never-seen")  # harmless
    # the level follows with hysteresis: 4 trainers -> 4; 3 stay at 4; 2 fall to 2
    for token in "wxyz":
        live.note(token, 100.0)
    assert live.level(100.0) == 4
    live.forget("z")
    assert live.level(100.0) == 4
    live.forget("y")
    assert live.level(100.0) == 2


def _feed(examples_per_batch: int = 12) -> BatchFeed:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40, dtype=np.int32) % 4
    return BatchFeed(ArrayDataset(x, y, x[:4], y[:4]), examples_per_batch, seed=1)


def test_cut_pieces_cover_the_batch_in_order() -> None:
    whole = _feed().take(0)
    reference = decode_frame(whole.frame).tensors
    feed = _feed()
    pieces = [take_examples(feed, 0, 5) for _ in range(3)]  # 5 + 5 + 2 of batch 0
    assert [p.examples for p in pieces] == [5, 5, 2] and {p.index for p in pieces} == {0}
    frames = [decode_frame(p.frame) for p in pieces]
    assert [f.header["offset"] for f in frames] == [0, 5, 10]
    assert [f.header["examples"] for f in frames] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([f.tensors["x"] for f in frames]),
                                  reference["x"])
    np.testing.assert_array_equal(np.concatenate([f.tensors["y"] for f in frames]),
                                  reference["y"])
    # the next take starts batch 1; work not larger than asked for is handed out whole
    assert take_examples(feed, 0, 12).index == 1
    # a piece given back (lease ran out) comes back next, cut again when more than asked
    feed.give_back(pieces[0])
    again = take_examples(feed, 0, 3)
    assert (again.index, again.examples, decode_frame(again.frame).header["offset"]) == (0, 3, 0)
    assert decode_frame(take_examples(feed, 0, 3).frame).header["offset"] == 3
    with pytest.raises(ValueError, match="between 0 and 12"):
        split_work(whole, 12)


def test_scaled_tasks_off_takes_the_feed_as_before() -> None:
    scaled = ScaledTasks(TaskScaling(), LiveTrainers(60.0), 0.01, 6, 2)
    feed = _feed()
    for token in "abcd":
        work, rate = scaled.take(feed, 0, token, 0.0)
        assert rate is None and work.examples == 12
        assert scaled.task_local_steps(work.examples) == 6
        scaled.live.note(token, 0.0)  # its update was accepted
    assert scaled.status(0.0)["liveClients"] == 4 and scaled.status(0.0)["clients"] == 1


def test_scaled_tasks_cut_to_the_steps_of_the_live_count() -> None:
    # L = 6 steps of 2 examples; e = 1: 2 clients -> 3 steps, 4 clients -> round(1.5) = 2
    scaled = ScaledTasks(TaskScaling("linear", steps_exponent=1.0), LiveTrainers(60.0),
                         0.1, 6, 2)
    feed = _feed()
    work, rate = scaled.take(feed, 0, "a", 0.0)
    assert (work.examples, rate, scaled.task_local_steps(work.examples)) == (12, 0.1, 6)
    scaled.live.note("a", 0.5)  # a's update is accepted
    work, rate = scaled.take(feed, 0, "b", 1.0)  # b has not trained yet: 1 live trainer
    assert (work.examples, rate) == (12, pytest.approx(0.1))
    scaled.live.note("b", 1.5)
    work, rate = scaled.take(feed, 0, "b", 1.6)
    assert (work.examples, rate) == (6, pytest.approx(0.2))
    scaled.live.note("c", 2.0)
    scaled.live.note("d", 2.5)
    work, rate = scaled.take(feed, 0, "d", 3.0)
    assert (work.examples, rate, scaled.task_local_steps(work.examples)) == (
        4, pytest.approx(0.4), 2)
    status = scaled.status(3.0)
    assert status["liveClients"] == 4 and status["clients"] == 4
    # sessions that take leases and never have an update accepted do not count (a stranger
    # opening many sessions must not raise every client's rate)
    for token in range(40):
        scaled.take(feed, 0, f"idle-{token}", 3.5)
    assert scaled.status(3.5)["liveClients"] == 4
    assert status["localSteps"] == 2 and status["learningRate"] == pytest.approx(0.4)


def test_warmup_rate_worked_examples() -> None:
    # Adam 0.01 -> 0.04 (16 clients, sqrt rule) over a 20 s warm-up: 0.01 + 0.03 * t / 20
    assert warmup_rate(0.01, 0.04, 0.0, 20.0) == pytest.approx(0.01)
    assert warmup_rate(0.01, 0.04, 5.0, 20.0) == pytest.approx(0.0175)
    assert warmup_rate(0.01, 0.04, 10.0, 20.0) == pytest.approx(0.025)
    assert warmup_rate(0.01, 0.04, 20.0, 20.0) == pytest.approx(0.04)
    assert warmup_rate(0.01, 0.04, 300.0, 20.0) == pytest.approx(0.04)  # done: the target
    assert warmup_rate(0.01, 0.04, -3.0, 20.0) == pytest.approx(0.01)  # a clock step back
    assert warmup_rate(0.01, 0.04, 0.0, 0.0) == 0.04  # off: the target at once
    with pytest.raises(ValueError, match="lr_warmup"):
        warmup_rate(0.01, 0.04, 1.0, -1.0)


def test_rate_warmup_ramps_rises_and_applies_falls_at_once() -> None:
    warmup = RateWarmup.at(20.0, 0.01)  # the run starts at the spec's one-client rate
    assert (warmup.follow(0.01, 0.0), warmup.seconds_left(0.0)) == (0.01, 0.0)
    # t = 100: the count rose to 4 (sqrt: 0.02); the rate ramps from 0.01 over 20 s
    assert warmup.follow(0.02, 100.0) == pytest.approx(0.01)
    assert warmup.seconds_left(100.0) == pytest.approx(20.0)
    assert warmup.follow(0.02, 105.0) == pytest.approx(0.0125)
    assert warmup.follow(0.02, 110.0) == pytest.approx(0.015)
    assert (warmup.follow(0.02, 120.0), warmup.seconds_left(120.0)) == (pytest.approx(0.02), 0)
    # t = 130: 16 clients (0.04): a new ramp from the rate in use, 0.02, over the full 20 s
    assert warmup.follow(0.04, 130.0) == pytest.approx(0.02)
    assert warmup.follow(0.04, 135.0) == pytest.approx(0.025)
    # t = 136: 8 clients (0.01 * sqrt(8) = 0.0283), still above the rate in use (0.026):
    # a new ramp from 0.026 to 0.0283 over 20 s, never a jump up
    target8 = 0.01 * math.sqrt(8)
    assert warmup.follow(target8, 136.0) == pytest.approx(0.026)
    assert warmup.follow(target8, 146.0) == pytest.approx((0.026 + target8) / 2)
    # t = 147: 2 clients (0.0141), below the rate in use: applies at once, no ramp left
    assert warmup.follow(0.01 * math.sqrt(2), 147.0) == pytest.approx(0.01 * math.sqrt(2))
    assert warmup.seconds_left(147.0) == 0.0
    # no warm-up: every target at once
    off = RateWarmup.at(0.0, 0.01)
    assert (off.follow(0.04, 1.0), off.follow(0.02, 2.0)) == (0.04, 0.02)


def test_warmup_settings_are_checked() -> None:
    assert TaskScaling("sqrt", lr_warmup=20.0).lr_warmup == 20.0
    with pytest.raises(ValueError, match="lr_warmup: .*needs a rate rule"):
        TaskScaling(lr_warmup=20.0)
    with pytest.raises(ValueError, match="lr_warmup: must be at least 0"):
        TaskScaling("sqrt", lr_warmup=-1.0)


def test_scaled_tasks_with_warmup_ramp_the_rate_and_show_it() -> None:
    # sqrt rule, spec 0.01, 20 s warm-up; batches of 6 steps x 2 examples, steps not scaled
    scaled = ScaledTasks(TaskScaling("sqrt", lr_warmup=20.0), LiveTrainers(600.0), 0.01, 6, 2)
    feed = _feed()
    _, rate = scaled.take(feed, 0, "a", 0.0)
    assert rate == 0.01
    for token in "abcd":
        scaled.live.note(token, 1.0)  # four accepted updates by t = 1: N = 4, target 0.02
    _, rate = scaled.take(feed, 0, "a", 1.0)
    assert rate == pytest.approx(0.01)  # the ramp starts at the spec's rate
    _, rate = scaled.take(feed, 0, "b", 6.0)
    assert rate == pytest.approx(0.0125)  # 5 s of 20: a quarter of the way to 0.02
    warm = scaled.status(11.0)
    assert warm["clients"] == 4 and warm["learningRate"] == pytest.approx(0.015)
    assert warm["lrWarmup"] == {"seconds": 20.0, "targetRate": pytest.approx(0.02),
                                "rateInUse": pytest.approx(0.015),
                                "secondsLeft": pytest.approx(10.0)}
    _, rate = scaled.take(feed, 0, "c", 30.0)
    assert rate == pytest.approx(0.02)  # ramp done
    # two leave: N falls to 2 (0.0141 < 0.02): at once
    scaled.live.forget("c")
    scaled.live.forget("d")
    _, rate = scaled.take(feed, 0, "a", 31.0)
    assert rate == pytest.approx(0.01 * math.sqrt(2))
    assert scaled.status(31.0)["lrWarmup"]["secondsLeft"] == 0.0
    # without a warm-up the status shows the rule's rate as both target and rate in use
    plain = ScaledTasks(TaskScaling("sqrt"), LiveTrainers(600.0), 0.01, 6, 2).status(0.0)
    assert plain["lrWarmup"] == {"seconds": 0.0, "targetRate": 0.01, "rateInUse": 0.01,
                                 "secondsLeft": 0.0}


def test_a_scale_out_run_refuses_a_warmup_naming_the_option() -> None:
    from webnn.cluster.task_rate import ClusterTaskRate

    class Keys:
        def key(self, name: str) -> str:
            return f"run:{name}"

    class Config:
        lr_scaling, lr_warmup, lease_seconds = "sqrt", 20.0, 60.0

    with pytest.raises(ConfigError, match="lr_warmup.*--lr-warmup"):
        ClusterTaskRate.for_run(Config(), 0.01, Keys())
    Config.lr_warmup = 0.0
    assert ClusterTaskRate.for_run(Config(), 0.01, Keys()).rate() == 0.01
