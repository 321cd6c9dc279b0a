"""The budget of model-sized answers being sent at once (``GET weights``, follow-up frames).

Why: an answer the client has not taken yet holds memory until the client reads it or the send
watchdog (`answers.send_within`) cuts the connection, up to two `answers.SEND_TIMEOUT`s after
it stalled: on Python 3.11 ``transport.write`` copies the unsent rest into the transport's
buffer (a model-sized copy per connection), on 3.12 a view keeps that version's snapshot buffer
alive. Without a bound, thousands of connections that ask for weights and never read grow the
server by a model each. With it, the answers in progress hold at most

    max(capacity, the largest single answer)   bytes,

``capacity = answer_budget`` (`default_answer_budget` when not set): an answer is admitted only
if its bytes fit in what is left (one larger than the whole budget only when no other is in
progress, so a huge model is slow, never impossible). Beyond it ``GET weights`` answers ``503
busy`` with ``Retry-After`` (`busy_answer`) and an update's answer goes as JSON without its
follow-up frame: its ``next`` task is still in it, so the client fetches that task's weights
and batch itself (the fetch is under the same budget) and nothing leased is lost.

The bytes stay reserved from the admission until the answer's last write returned (written,
failed, cancelled, or aborted by the watchdog), counted as the answer's full size whatever the
kernel took: an upper bound of what it holds. A `Reservation` is released exactly once
(`release` is idempotent); one that is dropped unreleased (an answer aiohttp never wrote, such
as a connection lost before its headers) is released when it is garbage-collected.

One client address may hold at most a share of the budget (`ADDRESS_SHARE`; its first answer
always fits the share): without it one client opening enough stalled fetches would fill the
budget and turn every other volunteer's fetch away for as long as it kept them open. The address
is the client's (`addresses.party_address`: a trusted proxy's ``X-Forwarded-For``, a local
proxy's last hop), an IPv6 address counted as its /64 network (`addresses.address_key`), as the
join limiter counts it; a direct loopback client (this host's own tools, benchmarks) has no share
limit.

The budget is state of one served model's app (`create_app`) or one scale-out front-end
(`webnn.cluster.frontend`); nothing here is module-level state.
"""

from __future__ import annotations

import random
import weakref
from collections import Counter
from dataclasses import dataclass, field

from webnn.server.addresses import ip_key, parse_address, party_address
from webnn.server.admission import busy
from webnn.server.errors import ProtocolError

MIB = 1 << 20
DEFAULT_ANSWERS = 32
"""Answers of the model's float32 size the default budget has room for, within its bounds."""
MIN_ANSWER_BYTES = 512 * MIB
"""The default budget's least bytes: small models are not held to a few dozen answers that
each cost little (a 1M-parameter model gets 134 float32 answers)."""
MAX_ANSWER_BYTES = 1024 * MIB
"""The default budget's most bytes (unless `MIN_ANSWERS` answers need more)."""
MIN_ANSWERS = 4
"""Answers of the model's float32 size the default always admits at once (huge models)."""
RETRY_SECONDS = 2
"""A refused ``GET weights``'s ``Retry-After`` is drawn from [RETRY_SECONDS, 2 * RETRY_SECONDS]
whole seconds: an honest answer is written within seconds, and the spread keeps refused clients
from coming back in the same second."""
REFUSED_WEIGHTS = "answer_budget"
"""`status.capacity.refused` code of a ``GET weights`` refused for the budget (``503 busy``)."""
REFUSED_FOLLOW_UP = "follow_up_unsent"
"""`status.capacity.refused` code of an update answered without its follow-up frame."""
REFUSED_SHARE = "answer_share"
"""`status.capacity.refused` code of an answer refused (a ``503`` fetch, or a follow-up not
sent) because its client address already holds its share of the budget."""
ADDRESS_SHARE = 8
"""One client address may hold at most ``capacity // ADDRESS_SHARE`` bytes of answers in
progress (16 float32 answers at 1M parameters with the default budget; an honest volunteer
holds one or two)."""


def default_answer_budget(model_nbytes: int) -> int:
    """Room for `DEFAULT_ANSWERS` answers of the model's float32 weights, at least
    `MIN_ANSWER_BYTES` and at most `MAX_ANSWER_BYTES`, but never fewer than `MIN_ANSWERS`:
    ``max(MIN_ANSWERS * M, min(MAX_ANSWER_BYTES, max(MIN_ANSWER_BYTES, DEFAULT_ANSWERS * M)))``
    for M = `model_nbytes`. 1M parameters: 512 MiB (134 answers); 10M: 1 GiB (26); 100M:
    1.6 GB (4).

    Why: honest clients keep answers in progress by the count, whatever the model's size (the
    2-core machine's 1M x 1000 and 10M x 100 loads peaked at 22 and 13 answers, 88 and 520 MB:
    docs/security.md), so the default leaves room for about twice that; the bounds keep a
    hostile crowd of stalled fetches to at most 1 GiB more (0.5 GiB at 1M parameters), inside
    the 2 GB target beside the server's own working set."""
    scaled = max(MIN_ANSWER_BYTES, DEFAULT_ANSWERS * model_nbytes)
    return max(MIN_ANSWERS * model_nbytes, min(MAX_ANSWER_BYTES, scaled))


def requester(peer: str | None, forwarded_for: str | None,
              trusted: frozenset[str]) -> str | None:
    """What an answer counts under for its share: the client's address (`party_address`) as a
    per-address limit counts it (`address_key`: an IPv6 address's /64 network), or None for a
    direct loopback client, which has no share limit."""
    address = party_address(peer, forwarded_for, trusted)
    ip = parse_address(address)  # parsed once: this runs for every model-sized answer
    if ip is None:
        return address
    return None if ip.is_loopback else ip_key(ip)


@dataclass(eq=False)
class Reservation:
    """`nbytes` of `budget` held by one answer of `address` until `release()` (idempotent)."""

    budget: AnswerBudget
    nbytes: int
    address: str | None = None
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.budget.give_back(self.nbytes, self.address)


@dataclass(eq=False)
class AnswerBudget:
    """Bytes (and count) of model-sized answers in progress against `capacity`; refusals are
    counted by code in `refused` (the owner's admission counter, ``status.capacity.refused``)."""

    capacity: int
    refused: Counter[str] = field(default_factory=Counter)
    trusted: frozenset[str] = frozenset()
    """Proxies whose ``X-Forwarded-For`` is believed (`requester`)."""
    used: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    """Bytes in progress per client address (`requester`), against `share`."""
    count: int = 0
    peak: int = 0
    """The most bytes in progress at once since the start."""
    jitter: random.Random = field(default_factory=random.Random)

    @classmethod
    def for_model(cls, configured: int | None, model_nbytes: int,
                  refused: Counter[str] | None = None,
                  trusted: frozenset[str] = frozenset()) -> AnswerBudget:
        """The budget `configured` sets (bytes; None: `default_answer_budget`)."""
        capacity = configured if configured is not None else default_answer_budget(model_nbytes)
        return cls(capacity, refused if refused is not None else Counter(), trusted)

    @property
    def share(self) -> int:
        """The most bytes one client address may hold in progress (`ADDRESS_SHARE`)."""
        return max(1, self.capacity // ADDRESS_SHARE)

    def over_share(self, nbytes: int, address: str | None) -> bool:
        """Whether `address` holds answers already and one more of `nbytes` would take it past
        its `share` (never for None: a loopback client)."""
        held = self.by_address.get(address, 0) if address is not None else 0
        return bool(held) and held + nbytes > self.share

    def reserve(self, nbytes: int, code: str, address: str | None = None) -> Reservation | None:
        """Hold `nbytes` for one answer to `address`, or None when they do not fit: past the
        address's share (counted under `REFUSED_SHARE`) or past the budget (under `code`). An
        answer larger than the whole budget fits only when no other is in progress."""
        if self.over_share(nbytes, address):
            self.refused[REFUSED_SHARE] += 1
            return None
        if self.used and self.used + nbytes > self.capacity:
            self.refused[code] += 1
            return None
        self.used += nbytes
        self.count += 1
        self.peak = max(self.peak, self.used)
        if address is not None:
            self.by_address[address] += nbytes
        return Reservation(self, nbytes, address)

    def give_back(self, nbytes: int, address: str | None = None) -> None:
        """An answer of `nbytes` to `address` is over (`Reservation.release`)."""
        self.used = max(0, self.used - nbytes)
        self.count = max(0, self.count - 1)
        if address is not None:
            left = self.by_address[address] - nbytes
            if left > 0:
                self.by_address[address] = left
            else:
                del self.by_address[address]  # no entry kept per address once it holds nothing

    def retry_seconds(self) -> int:
        """A refused fetch's ``Retry-After`` (`RETRY_SECONDS`)."""
        return self.jitter.randint(RETRY_SECONDS, 2 * RETRY_SECONDS)

    def public(self) -> dict:
        """The status ``capacity`` fields: ``answerBytes`` (in progress), ``answerBudget``,
        ``answersInFlight``, ``answerBytesPeak``."""
        return {"answerBytes": self.used, "answerBudget": self.capacity,
                "answersInFlight": self.count, "answerBytesPeak": self.peak}


def release_when_dropped(owner: object, reservation: Reservation) -> None:
    """Release `reservation` when `owner` (the payload that would have written the answer) is
    garbage-collected, in case it never is written."""
    weakref.finalize(owner, reservation.release)


def busy_answer(budget: AnswerBudget, nbytes: int, address: str | None = None) -> ProtocolError:
    """The ``503 busy`` (with ``Retry-After``) of a ``GET weights`` beyond the budget or its
    address's share, in admission's shape (`admission.busy`)."""
    if address is not None and budget.over_share(nbytes, address):
        return busy(f"answers being sent to {address} fill its share of the answer budget "
                    f"({budget.by_address[address]} of {budget.share} bytes; this one needs "
                    f"{nbytes})", budget.retry_seconds())
    return busy(f"model-sized answers being sent fill their budget of {budget.capacity} bytes "
                f"({budget.used} in use by {budget.count}, this one needs {nbytes})",
                budget.retry_seconds())
