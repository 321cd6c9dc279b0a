"""Admission control: what the server refuses before it spends memory or time on a request.

Every limit answers with a protocol error before the work starts, so memory stays bounded and the
server refuses work instead of collapsing:

- **update bodies in flight** (`body_budget` bytes): a body is admitted only if its declared
  Content-Length (the endpoint's limit when none is declared) fits in what is left (a body larger
  than the whole budget only when no other is in flight); otherwise ``503 busy`` with
  ``Retry-After``. The bytes stay reserved until the body's merge is over.
- **merge queue** (`merge_queue` updates waiting for the merge lock): ``503 busy`` beyond it.
- **pressure**: while more than half the body budget or half the merge queue is in use, training
  leases are deferred (the task answer is "no task now, ask again after `retryAfter`"), so
  clients stop computing updates the server could not take: back-pressure at the source, before
  anyone uploads a body only to be refused.
- **kept snapshots** (`snapshot_budget` bytes, enforced by the coordinator with the version store):
  new training leases wait (``503 busy``) while snapshots clients still need fill the budget.
- **open tasks per session** (`max_open_tasks`): ``429 too_many_tasks``.
- **live sessions** (`max_sessions`): a join beyond it is ``503 busy``.
- **joins per client address** (`joins_per_minute`, bursts of `join_burst`): a token bucket per
  address, ``429 rate_limited`` with ``Retry-After``. The address is the TCP peer; the
  ``X-Forwarded-For`` header is believed only when the peer is one of `trusted_proxies`, and then
  the client is the right-most address in it that is not itself a trusted proxy.

A busy answer is not the client's fault: it never counts toward the invalid-update cut-off, and the
task stays open for the retry. Nothing here keeps module-level state.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from webnn.server.errors import ProtocolError

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


class BodyBudget:
    """Bytes of update bodies in flight, against a fixed capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    def try_reserve(self, nbytes: int) -> bool:
        """Reserve `nbytes` if they fit; a body larger than the whole budget fits only when
        nothing else is reserved (so it is slow, never impossible)."""
        if self.used + nbytes > self.capacity and self.used:
            return False
        self.used += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.used = max(0, self.used - nbytes)


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


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: frozenset[str]) -> str:
    """The address a request comes from (see the module docstring for X-Forwarded-For)."""
    address = peer or "unknown"
    if not forwarded_for or address not in trusted:
        return address
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else address


class Admission:
    """The limits of one served model, applied; the coordinator asks before doing the work."""

    def __init__(self, limits: AdmissionLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self.bodies = BodyBudget(limits.body_budget)
        self.joins = (TokenBuckets(limits.joins_per_minute / 60.0, limits.join_burst)
                      if limits.joins_per_minute > 0 else None)
        self._jitter = random.Random()
        self.admitted = RateMeter()
        self.refused = RateMeter()

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
        if merge_waiting >= self.limits.merge_queue or not self.bodies.try_reserve(nbytes):
            self.refused.tick(now)
            if merge_waiting >= self.limits.merge_queue:
                raise _busy(f"{merge_waiting} updates are waiting to be merged (limit "
                            f"{self.limits.merge_queue})", self.retry_seconds())
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
            address = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                     trusted)
            try:
                admission.admit_join(address, sessions())
            except ProtocolError as error:
                refused(error.code)
                raise
        return await handler(request)

    return admit_joins
