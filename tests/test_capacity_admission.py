"""Latency-bound admission (webnn.server.admission): the measured cost of an update, the queueing
delay bound on bodies, the bound on open training leases and the deferred answer's retry time.
Clocks and CPU time are injected, so these are exact, not timed."""

from __future__ import annotations

import pytest

from webnn.server.admission import (
    MIN_TRAIN_LEASES,
    Admission,
    AdmissionLimits,
    CostMeter,
)
from webnn.server.errors import ProtocolError


class Fake:
    """A wall clock and a process CPU clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0

    def run(self, seconds: float, cpu_share: float) -> None:
        self.now += seconds
        self.cpu += seconds * cpu_share


def steady(meter: CostMeter, fake: Fake, seconds: float, updates_per_s: int,
           cpu_share: float) -> None:
    """`seconds` of `updates_per_s` merged updates with the process busy `cpu_share` of the time,
    sampled every 0.25 s."""
    for _ in range(int(seconds * 4)):
        fake.run(0.25, cpu_share)
        for _ in range(updates_per_s // 4):
            meter.note_update()
        meter.sample(fake.now)


def test_cost_meter_is_cpu_seconds_per_merged_update() -> None:
    fake = Fake()
    meter = CostMeter(lambda: fake.cpu, tau=1.0)
    meter.sample(fake.now)
    assert meter.cost() is None                       # nothing merged yet: unknown
    steady(meter, fake, 10, updates_per_s=100, cpu_share=0.8)
    assert meter.cost() == pytest.approx(0.008, rel=0.01)
    steady(meter, fake, 10, updates_per_s=40, cpu_share=0.8)   # costlier updates (e.g. polls)
    assert meter.cost() == pytest.approx(0.02, rel=0.01)
    steady(meter, fake, 20, updates_per_s=0, cpu_share=0.1)    # idle: the cost is not known
    assert meter.cost() is None


def _admission(fake: Fake, **limits) -> Admission:
    settings = {"body_budget": 100 * 1000, "snapshot_budget": 1000, "merge_queue": 64,
                "update_latency": 0.5, **limits}
    admission = Admission(AdmissionLimits(**settings), lambda: fake.now, cpu=lambda: fake.cpu)
    admission.meter.tau = 1.0
    admission.sample()
    return admission


def _measured(admission: Admission, fake: Fake, cost: float) -> None:
    """Make `admission` measure `cost` CPU seconds per update (100 updates a second; the fake CPU
    clock may run faster than the wall clock, as on several cores)."""
    for _ in range(40):
        fake.run(0.25, 100 * cost)
        for _ in range(25):
            admission.note_merged()
        admission.sample()
    assert admission.meter.cost() == pytest.approx(cost, rel=0.02)


def test_a_body_is_refused_when_the_work_in_flight_exceeds_the_latency_target() -> None:
    fake = Fake()
    admission = _admission(fake)
    admission.admit_body(1000, 0)                     # cost unknown: the budget alone decides
    admission.release_body(1000)
    _measured(admission, fake, 0.02)                  # 20 ms of CPU per update
    for _ in range(25):                               # 25 x 20 ms = the 0.5 s target
        admission.admit_body(1000, 0)
    assert admission.bodies.count == 25 and admission.expected_wait(0) == pytest.approx(0.5)
    with pytest.raises(ProtocolError) as refused:
        admission.admit_body(1000, 0)
    assert refused.value.status == 503 and refused.value.code == "busy"
    assert "25 updates in flight would take 0.52 s" in refused.value.message
    assert int(refused.value.headers["Retry-After"]) >= 1
    admission.release_body(1000)                      # one merged: room for one more
    admission.admit_body(1000, 0)
    assert admission.bodies.count == 25


def test_an_idle_server_does_not_bound_by_latency() -> None:
    fake = Fake()
    admission = _admission(fake)
    for _ in range(40):                               # one slow update every 2 s, 5 % CPU
        fake.run(0.25, 0.05)
        if int(fake.now * 4) % 8 == 0:
            admission.note_merged()
        admission.sample()
    assert not admission.loaded() and admission.meter.cost() is not None
    assert admission.train_lease_limit() is None and admission.expected_wait() is None
    for _ in range(40):
        admission.admit_body(1000, 0)                 # slow uploads in flight: budget only
    assert admission.bodies.count == 40


def test_one_body_is_always_admitted_and_zero_turns_the_target_off() -> None:
    fake = Fake()
    admission = _admission(fake)
    _measured(admission, fake, 2.0)                   # one update costs more than the target
    admission.admit_body(1000, 0)                     # ... but nothing else is in flight
    with pytest.raises(ProtocolError):
        admission.admit_body(1000, 0)
    other = Fake()
    off = _admission(other, update_latency=0)
    _measured(off, other, 2.0)
    for _ in range(50):
        off.admit_body(1000, 0)                       # only the byte budget bounds it
    assert off.bodies.count == 50 and off.train_lease_limit() is None


def test_training_leases_are_bounded_by_what_the_server_works_off_meanwhile() -> None:
    fake = Fake()
    admission = _admission(fake)
    assert admission.train_lease_limit() is None      # idle: no bound beyond the budgets
    for _ in range(20):
        fake.run(0.25, 0.9)                           # busy (clients joining), nothing merged
        admission.sample()
    assert admission.loaded() and admission.meter.cost() is None
    assert admission.train_lease_limit() == 64        # the merge queue's length, until measured
    _measured(admission, fake, 0.01)                  # 100 updates/s at most
    # no upload seen yet (T = 0): (0 + 0.25 s) / 10 ms = 25 leases
    assert admission.train_lease_limit() in (24, 25)
    for _ in range(200):
        admission.note_upload(0.75)                   # clients compute 0.75 s per task
    assert admission.lease_to_upload == pytest.approx(0.75, rel=1e-3)
    limit = admission.train_lease_limit()
    assert limit is not None and 98 <= limit <= 100    # (0.75 + 0.25) / 0.01
    assert admission.admit_train_lease(limit - 1, 0)
    assert not admission.admit_train_lease(limit, 0)
    assert not admission.admit_train_lease(0, 33)     # more than half the merge queue
    _measured(admission, fake, 1.0)                   # very costly updates: a floor of leases
    assert admission.train_lease_limit() == MIN_TRAIN_LEASES


def test_deferred_requests_wait_longer_the_more_are_deferred() -> None:
    fake = Fake()
    admission = _admission(fake)
    calm = [admission.defer_seconds(2.0) for _ in range(50)]
    assert all(2.0 <= r <= 3.0 for r in calm)          # nothing deferred: about poll_seconds
    _measured(admission, fake, 0.01)
    for step in range(100):                           # 10 leases and 90 deferrals a second
        fake.now += 0.01
        admission.admit_train_lease(0 if step % 10 == 0 else 10_000, 0)
    busy = [admission.defer_seconds(2.0) for _ in range(50)]
    assert min(busy) >= 10.0 and max(busy) <= 22.5     # r = min(15, 2 * (1 + ~9))
    assert admission.deferred.rate(fake.now) > 5 * admission.leased.rate(fake.now)
