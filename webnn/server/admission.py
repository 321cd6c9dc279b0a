"""Admission control: what the server refuses before it spends memory or time on a request.

Every limit answers with a protocol error before the work starts, so memory stays bounded and the
server refuses work instead of collapsing:

- **update bodies in flight** (`body_budget` bytes): a body is admitted only if its declared
  Content-Length (the endpoint's limit when none is declared) fits in what is left (a body larger
  than the whole budget only when no other is in flight); otherwise ``503 busy`` with
  ``Retry-After``. The bytes stay reserved until the body's merge is over.
- **merge queue** (`merge_queue` updates waiting for the merge lock): ``503 busy`` beyond it.
- **queueing delay** (`update_latency` seconds, 0: off): the server measures what one accepted
  update costs it, ``c`` = CPU seconds of the process per merged update (`CostMeter`, every
  request and refusal included, exponentially weighted over a few seconds). A body is admitted
  only if the bodies already in flight and it can be worked off within the target,
  ``(in_flight + 1) * c <= update_latency`` (one body is always admitted), so an accepted update
  does not wait behind more work than the target allows: the server refuses rather than queues.
  These bounds apply only while the process is busy (`LOADED_CPU`).
- **training leases** are the source of update bodies, so they are bounded first: a training
  lease is deferred (the task answer is "no task now, ask again after `retryAfter`") while more
  than half the body budget or half the merge queue is in use, or while the open training leases
  exceed what the server can work off while their clients compute, ``open_train >= max(4,
  (T + update_latency / 2) / c)`` with ``T`` the measured time from a lease to its upload. A
  burst of leases handed out in a quiet moment would otherwise come back as a burst of uploads
  the server must refuse. The deferred answer's `retryAfter` grows with the share of deferred
  requests (`Admission.defer_seconds`), so idle clients poll about as often as leases free up.
- **kept snapshots** (`snapshot_budget` bytes, enforced by the coordinator with the version store):
  new training leases wait (``503 busy``) while snapshots clients still need fill the budget.
- **open tasks per session** (`max_open_tasks`): ``429 too_many_tasks``.
- **live sessions** (`max_sessions`): a join beyond it is ``503 busy``.
- **joins per client address** (`joins_per_minute`, bursts of `join_burst`): a token bucket per
  address (an IPv6 address's /64 network: `addresses.address_key`), ``429 rate_limited`` with
  ``Retry-After``. The address is the TCP peer; the ``X-Forwarded-For`` header is believed only
  when the peer is one of `trusted_proxies`, and then the client is the right-most address in it
  that is not itself a trusted proxy (`addresses.client_address`).

A busy answer is not the client's fault: it never counts toward the invalid-update cut-off, and the
task stays open for the retry. Nothing here keeps module-level state.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from webnn.server.addresses import address_key, client_address
from webnn.server.errors import ProtocolError

if TYPE_CHECKING:
    from webnn.server.config import ServeConfig

MIB = 1 << 20
BODY_SLACK = 64 * 1024
"""Bytes beyond the weights an update frame needs for its prefix and JSON header."""
MIN_BODY_SLACK = 4096
"""The smallest body budget is one model's weights plus this (a frame's usual prefix and header)."""
MAX_RETRY_SECONDS = 15
"""The largest base of a busy answer's Retry-After (the answer is at most twice that)."""
MAX_ADDRESSES = 100_000
"""Join buckets remembered at most (least recently used forgotten first)."""


def default_body_budget(model_nbytes: int) -> int:
    """Room for 32 update bodies, at most 512 MiB, but never fewer than 4 bodies."""
    body = model_nbytes + BODY_SLACK
    return max(4 * body, min(32 * body, 512 * MIB))


def default_snapshot_budget(model_nbytes: int) -> int:
    """Room for 64 snapshots, at most 1 GiB, but never fewer than 4 snapshots."""
    return max(4 * model_nbytes, min(64 * model_nbytes, 1024 * MIB))


@dataclass(frozen=True)
class AdmissionLimits:
    """The limits of one served model; see the module docstring. 0 turns the join rate off."""

    body_budget: int
    snapshot_budget: int
    merge_queue: int = 32
    max_open_tasks: int = 4
    max_sessions: int = 10_000
    joins_per_minute: float = 60.0
    join_burst: int = 60
    trusted_proxies: frozenset[str] = frozenset()
    retry_after: int = 1
    update_latency: float = 0.5

    @classmethod
    def for_model(cls, config: ServeConfig, nbytes: int) -> AdmissionLimits:
        """The limits `config` sets for a model of `nbytes` weight bytes: budgets not given are
        the defaults for that size, and never below one body (or two snapshots)."""
        return cls(
            body_budget=max(config.update_budget or default_body_budget(nbytes),
                            nbytes + MIN_BODY_SLACK),
            snapshot_budget=max(config.snapshot_budget or default_snapshot_budget(nbytes),
                                2 * nbytes),
            merge_queue=config.merge_queue, max_open_tasks=config.max_open_tasks,
            max_sessions=config.max_sessions, joins_per_minute=config.joins_per_minute,
            join_burst=config.join_burst, trusted_proxies=frozenset(config.trusted_proxies),
            update_latency=config.update_latency)


MIN_TRAIN_LEASES = 4
"""Training leases always allowed (so a server whose cost is not known yet, or is large, still
works and measures)."""
LOADED_CPU = 0.5
"""CPU seconds per second (of the whole process) from which the latency bounds apply."""
COST_TAU = 3.0
"""Seconds over which `CostMeter` weights its samples."""


def busy(message: str, retry_after: float) -> ProtocolError:
    """``503 busy`` with ``Retry-After`` (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return _busy(message, seconds)


def _busy(message: str, seconds: int) -> ProtocolError:
    return ProtocolError(503, "busy", f"{message}; retry in {seconds} s",
                         headers={"Retry-After": str(seconds)})


class RateMeter:
    """Events per second, exponentially weighted over `tau` seconds:
    ``rate(t) = sum over events e of exp(-(t - t_e) / tau) / tau``, kept in O(1)."""

    def __init__(self, tau: float = 5.0) -> None:
        self.tau = tau
        self._rate = 0.0
        self._at = 0.0

    def rate(self, now: float) -> float:
        return self._rate * math.exp(-max(0.0, now - self._at) / self.tau)

    def tick(self, now: float) -> None:
        self._rate = self.rate(now) + 1.0 / self.tau
        self._at = now


class CostMeter:
    """What one merged update costs the server: ``c = cpu_rate / update_rate``, the process's CPU
    seconds per second over merged updates per second, each exponentially weighted over `tau`
    seconds from samples taken at least `every` seconds apart (``rate += a * (x / dt - rate)``,
    ``a = 1 - exp(-dt / tau)``). Everything the process does is counted (requests, refusals,
    the merge thread, other models in the same process), so ``1 / c`` is the updates per second
    the process can sustain at the current mix of work; on a machine where the merge thread runs
    on another core it overstates the event loop's share (a conservative bound). None until
    updates were merged recently (``update_rate`` below `min_rate`)."""

    def __init__(self, cpu: Callable[[], float], tau: float = COST_TAU, every: float = 0.2,
                 min_rate: float = 0.5) -> None:
        self.cpu = cpu
        self.tau = tau
        self.every = every
        self.min_rate = min_rate
        self.cpu_rate = 0.0
        self.update_rate = 0.0
        self.updates = 0
        self._last: tuple[float, float, int] | None = None  # time, cpu, updates

    def note_update(self) -> None:
        self.updates += 1

    def sample(self, now: float) -> None:
        """Fold the CPU time and updates since the last sample in (at most every `every` s)."""
        last = self._last
        if last is not None and now - last[0] < self.every:
            return
        cpu = self.cpu()
        if last is None:
            self._last = (now, cpu, self.updates)
            return
        dt = now - last[0]
        weight = 1.0 - math.exp(-dt / self.tau)
        self.cpu_rate += weight * ((cpu - last[1]) / dt - self.cpu_rate)
        self.update_rate += weight * ((self.updates - last[2]) / dt - self.update_rate)
        self._last = (now, cpu, self.updates)

    def cost(self) -> float | None:
        """CPU seconds per merged update, or None when too few updates were merged lately."""
        if self.update_rate < self.min_rate:
            return None
        return self.cpu_rate / self.update_rate


class BodyBudget:
    """Bytes (and count) of update bodies in flight, against a fixed capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.count = 0

    def try_reserve(self, nbytes: int) -> bool:
        """Reserve `nbytes` if they fit; a body larger than the whole budget fits only when
        nothing else is reserved (so it is slow, never impossible)."""
        if self.used + nbytes > self.capacity and self.used:
            return False
        self.used += nbytes
        self.count += 1
        return True

    def release(self, nbytes: int) -> None:
        self.used = max(0, self.used - nbytes)
        self.count = max(0, self.count - 1)


class TokenBuckets:
    """One token bucket per key: `rate` tokens per second, holding at most `burst`.

    ``take(key, now)`` spends a token and answers 0, or answers the seconds until one is there.
    Keys are kept in least-recently-used order and at most `max_keys` are remembered (a forgotten
    key starts full again, as a key never seen).
    """

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_ADDRESSES) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str, now: float) -> float:
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class Admission:
    """The limits of one served model, applied; the coordinator asks before doing the work."""

    def __init__(self, limits: AdmissionLimits, clock: Callable[[], float],
                 cpu: Callable[[], float] = time.process_time) -> None:
        self.limits = limits
        self.clock = clock
        self.bodies = BodyBudget(limits.body_budget)
        self.joins = (TokenBuckets(limits.joins_per_minute / 60.0, limits.join_burst)
                      if limits.joins_per_minute > 0 else None)
        self._jitter = random.Random()
        self.admitted = RateMeter()
        self.refused = RateMeter()
        self.leased = RateMeter()
        self.deferred = RateMeter()
        self.meter = CostMeter(cpu)
        self.lease_to_upload: float | None = None  # T: seconds from a lease to its upload (EWMA)

    def sample(self) -> None:
        """Take a `CostMeter` sample (the coordinator calls this on its tick: reading the process
        CPU clock sums every thread's time in the kernel, which profiled at milliseconds per
        call on a busy machine while the merge thread ran, too costly per merge)."""
        self.meter.sample(self.clock())

    def note_merged(self) -> None:
        """One update merged (or refused after its body was read: work done either way)."""
        self.meter.note_update()

    def note_upload(self, lease_age: float) -> None:
        """An update arrived `lease_age` seconds after its lease was handed out."""
        if not math.isfinite(lease_age) or lease_age < 0:
            return
        last = self.lease_to_upload
        self.lease_to_upload = lease_age if last is None else last + 0.05 * (lease_age - last)

    def loaded(self) -> bool:
        """Whether the process is busy (`LOADED_CPU` of a core or more, over the last seconds):
        only then do the latency bounds apply. An idle server's cost per update is mostly its
        idle work divided by few updates, which says nothing about what it can take."""
        return self.meter.cpu_rate >= LOADED_CPU

    def train_lease_limit(self) -> int | None:
        """The open training leases the server can work off while their clients compute,
        ``max(MIN_TRAIN_LEASES, (T + update_latency / 2) / c)``; `merge_queue` while loaded with
        no cost measured yet (a start with many clients); None without a latency target or while
        not loaded (then only the budget and queue pressure defer leases)."""
        target = self.limits.update_latency
        if target <= 0 or not self.loaded():
            return None
        cost = self.meter.cost()
        if cost is None or cost <= 0:
            return max(MIN_TRAIN_LEASES, self.limits.merge_queue)
        horizon = (self.lease_to_upload or 0.0) + target / 2
        return max(MIN_TRAIN_LEASES, int(horizon / cost))

    def expected_wait(self, extra: int = 1) -> float | None:
        """Seconds to work off the bodies in flight and `extra` more: ``(in_flight + extra) * c``
        (None while the cost is not known or the server is not loaded)."""
        cost = self.meter.cost()
        if cost is None or not self.loaded():
            return None
        return (self.bodies.count + extra) * cost

    def retry_seconds(self) -> int:
        """A busy answer's ``Retry-After``, growing with the overload and spread out:
        ``r = retry_after * (1 + refused rate / admitted rate)`` (bodies per second over the last
        few seconds; at most `MAX_RETRY_SECONDS`, well inside a lease), then uniform in [r, 2r]
        whole seconds, so refused clients come back at about the rate the server admits, not all
        in the same second."""
        now = self.clock()
        ratio = self.refused.rate(now) / max(self.admitted.rate(now), 0.2)
        base = max(1, min(MAX_RETRY_SECONDS, math.ceil(self.limits.retry_after * (1 + ratio))))
        return self._jitter.randint(base, 2 * base)

    def under_pressure(self, merge_waiting: int) -> bool:
        """More than half the body budget or half the merge queue in use: defer new leases."""
        return (2 * self.bodies.used > self.bodies.capacity
                or 2 * merge_waiting > self.limits.merge_queue)

    def admit_train_lease(self, open_train: int, merge_waiting: int) -> bool:
        """Whether one more training lease may be handed out now (see the module docstring);
        counts the answer either way for `defer_seconds`."""
        now = self.clock()
        if self.deferring(open_train, merge_waiting):
            self.deferred.tick(now)
            return False
        self.leased.tick(now)
        return True

    def deferring(self, open_train: int, merge_waiting: int) -> bool:
        """Whether training leases are deferred now (`admit_train_lease` without counting)."""
        limit = self.train_lease_limit()
        return self.under_pressure(merge_waiting) or (limit is not None and open_train >= limit)

    def defer_seconds(self, poll: float) -> float:
        """The `retryAfter` of a deferred task request: ``r = poll * (1 + deferred / leased)``
        (requests per second over the last few seconds; r at most `MAX_RETRY_SECONDS`), drawn
        uniformly from [r, 1.5 r]: the more clients wait for a lease, the less often each asks,
        so polling stays near the rate leases free up instead of growing with the clients."""
        now = self.clock()
        ratio = self.deferred.rate(now) / max(self.leased.rate(now), 0.2)
        base = min(float(MAX_RETRY_SECONDS), poll * (1.0 + ratio))
        return round(self._jitter.uniform(base, 1.5 * base), 2)

    def admit_join(self, address: str, sessions: int) -> None:
        """Refuse a join over the session cap (503 busy) or the address's join rate (429)."""
        if sessions >= self.limits.max_sessions:
            raise busy(f"the server holds its maximum of {self.limits.max_sessions} sessions",
                       30)
        if self.joins is not None:
            wait = self.joins.take(address, self.clock())
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise ProtocolError(
                    429, "rate_limited",
                    f"too many joins from {address} (limit {self.limits.joins_per_minute:g} per "
                    f"minute); retry in {seconds} s", headers={"Retry-After": str(seconds)})

    def admit_lease(self, open_tasks: int, retry_after: float) -> None:
        """Refuse one more task to a session that holds `max_open_tasks` (429 too_many_tasks)."""
        if open_tasks >= self.limits.max_open_tasks:
            seconds = max(1, math.ceil(retry_after))
            raise ProtocolError(
                429, "too_many_tasks",
                f"this session holds {open_tasks} open tasks, the limit is "
                f"{self.limits.max_open_tasks}; finish one first",
                headers={"Retry-After": str(seconds)})

    def admit_body(self, nbytes: int, merge_waiting: int) -> None:
        """Reserve `nbytes` of the body budget, or refuse (503 busy) when the budget or the merge
        queue is full. The caller must `release_body(nbytes)` once the body is no longer needed."""
        now = self.clock()
        target = self.limits.update_latency
        wait = self.expected_wait() if target > 0 and self.bodies.count else None
        if (merge_waiting >= self.limits.merge_queue or (wait is not None and wait > target)
                or not self.bodies.try_reserve(nbytes)):
            self.refused.tick(now)
            if merge_waiting >= self.limits.merge_queue:
                raise _busy(f"{merge_waiting} updates are waiting to be merged (limit "
                            f"{self.limits.merge_queue})", self.retry_seconds())
            if wait is not None and wait > target:
                raise _busy(f"{self.bodies.count} updates in flight would take {wait:.2f} s "
                            f"to work off (target {target:g} s)", self.retry_seconds())
            raise _busy(f"update bodies in flight fill the budget of {self.bodies.capacity} "
                        f"bytes ({self.bodies.used} in use, this one needs {nbytes})",
                        self.retry_seconds())
        self.admitted.tick(now)

    def release_body(self, nbytes: int) -> None:
        self.bodies.release(nbytes)


def join_middleware(admission: Admission, sessions: Callable[[], int],
                    refused: Callable[[str], None]) -> Callable:
    """An aiohttp middleware applying `admission`'s join limits to the route named ``join``
    before its handler reads anything; `sessions()` is the live session count, `refused(code)`
    counts a refusal."""
    trusted = admission.limits.trusted_proxies

    @web.middleware
    async def admit_joins(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        if request.match_info.route.name == "join":
            address = address_key(client_address(
                request.remote, request.headers.get("X-Forwarded-For"), trusted))
            try:
                admission.admit_join(address, sessions())
            except ProtocolError as error:
                refused(error.code)
                raise
        return await handler(request)

    return admit_joins
