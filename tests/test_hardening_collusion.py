"""Colluding evaluators: the replicas of one validation chunk must come from different parties,
not just different sessions. Two sessions of one client address (admission's view: here through
a trusted proxy's X-Forwarded-For) or of one volunteer id never both evaluate a chunk, so one
person cannot validate their own lie; loopback addresses are exempt (local workers all connect
from 127.0.0.1). Real server, real HTTP; the digits validation set (359 examples) is one chunk.
"""

from __future__ import annotations

import asyncio
import time

from support.protocol_client import ProtocolClient

from webnn.server.app import create_app
from webnn.server.evaluation import (
    ANYONE,
    ChunkResult,
    Evaluation,
    Party,
    Replica,
    address_group,
)

LIE = {"loss": 0.01, "accuracy": 0.99}
TRUTH = {"loss": 2.3, "accuracy": 0.1}


def test_address_groups() -> None:
    assert address_group("203.0.113.7") == "203.0.113.7"
    # one IPv6 subscriber holds a /64: its addresses are one party
    assert address_group("2001:db8:1:2::10") == address_group("2001:db8:1:2:ffff::1")
    assert address_group("2001:db8:1:2::10") != address_group("2001:db8:1:3::10")
    assert address_group("::ffff:203.0.113.7") == "203.0.113.7"
    # loopback is exempt, and so is what is not an address
    for exempt in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1", "unknown", "", None):
        assert address_group(exempt) is None, exempt


def test_parties_share_an_address_group_or_a_volunteer_id() -> None:
    a = Party.of("203.0.113.7", None)
    assert a.shares(Party.of("203.0.113.7", "v9"))
    assert Party.of("198.51.100.1", "v1").shares(Party.of("192.0.2.1", "v1"))
    assert not a.shares(Party.of("198.51.100.1", None))
    assert not Party.of("127.0.0.1", None).shares(Party.of("127.0.0.1", None))
    assert Party.of("127.0.0.1", "w1").shares(Party.of("127.0.0.1", "w1"))
    assert not ANYONE.shares(ANYONE)


def test_a_chunk_is_never_handed_to_two_sessions_of_one_party() -> None:
    evaluation = Evaluation(id=1, version=0, steps=0, merges=0, started=0.0,
                            chunk_examples=[100, 100], quorum=2)
    x = Party.of("203.0.113.7", None)
    assert evaluation.chunk_for("a", x) == 0
    evaluation.chunks[0].leased["a"] = x
    # another session from that address gets the other chunk, then nothing
    assert evaluation.chunk_for("b", Party.of("203.0.113.7", "other")) == 1
    evaluation.chunks[1].leased["b"] = Party.of("203.0.113.7", "other")
    assert evaluation.chunk_for("c", Party.of("203.0.113.7", None)) is None
    # a stranger may take either
    assert evaluation.chunk_for("d", Party.of("198.51.100.1", None)) == 0


def test_with_no_independent_session_left_a_chunk_settles_unvalidated() -> None:
    evaluation = Evaluation(id=1, version=0, steps=0, merges=0, started=0.0,
                            chunk_examples=[100], quorum=2)
    x = Party.of("203.0.113.7", None)
    evaluation.chunks[0].replicas.append(
        Replica("a", ChunkResult(0.1, 0.9, 100), x))
    evaluation.chunks[0].since = 0.0
    live = {"a": x, "b": Party.of("203.0.113.7", None)}
    # "b" is live but of a's party: nobody can add a result, so no need to wait
    evaluation.settle(1.0, 600.0, lambda t: t in live, len(live), lambda: live.items())
    assert evaluation.complete and not evaluation.validated
    # with an independent live session it waits for it
    evaluation = Evaluation(id=2, version=0, steps=0, merges=0, started=0.0,
                            chunk_examples=[100], quorum=2)
    evaluation.chunks[0].replicas.append(
        Replica("a", ChunkResult(0.1, 0.9, 100), x))
    evaluation.chunks[0].since = 0.0
    live["c"] = Party.of("198.51.100.1", None)
    evaluation.settle(1.0, 600.0, lambda t: t in live, len(live), lambda: live.items())
    assert not evaluation.complete


# ------------------------------------------------------------------------------ over HTTP


async def join_from(http, url: str, address: str | None, volunteer: str | None = None,
                    name: str = "v") -> ProtocolClient:
    """A session joined from `address` (sent as X-Forwarded-For: the server trusts the loopback
    proxy) with volunteer id `volunteer`."""
    client = ProtocolClient(http, url)
    headers = {"X-Forwarded-For": address} if address else {}
    info: dict = {"kind": "python", "name": name}
    if volunteer:
        info["volunteerId"] = volunteer
    answer = await client.request("POST", "api/v1/join", headers=headers, session=False,
                                  json_body={"client": info})
    assert answer.status == 200, answer.body
    client.token, client.client_id = answer.body["token"], answer.body["clientId"]
    return client


async def evaluate(client: ProtocolClient, figures: dict) -> dict | None:
    """Take an evaluation chunk and report `figures` for it; None when no chunk was given."""
    task = (await client.task("evaluate"))["task"]
    if task is None:
        return None
    answer = await client.submit_evaluation(task, figures["loss"], figures["accuracy"],
                                            task["examples"])
    assert answer.status == 200, answer.body
    return task


async def first_evaluation(client: ProtocolClient, limit: float = 30.0) -> dict:
    deadline = time.monotonic() + limit
    while True:
        history = (await client.get("api/v1/history")).body["history"]
        if history:
            return history[0]
        assert time.monotonic() < deadline, "no evaluation completed"
        await asyncio.sleep(0.05)


def collusion_config(make_config, **overrides):
    return make_config(eval_quorum=2, eval_chunk_size=400, eval_quorum_wait=600.0,
                       trusted_proxies=("127.0.0.1",), **overrides)


async def test_two_sessions_of_one_address_cannot_validate_a_lie(make_config, serve, http):
    served = await serve(create_app(collusion_config(make_config)))
    liar, accomplice = [await join_from(http, served.url, "203.0.113.7", name=n)
                        for n in ("liar", "accomplice")]
    honest = [await join_from(http, served.url, a) for a in ("198.51.100.1", "192.0.2.9")]

    assert await evaluate(liar, LIE) is not None
    assert await evaluate(accomplice, LIE) is None  # the chunk is the liar's party's already
    assert await evaluate(honest[0], TRUTH) is not None  # disagrees: a third result is wanted
    assert await evaluate(accomplice, LIE) is None  # still not for the liar's party
    assert await evaluate(honest[1], TRUTH) is not None

    entry = await first_evaluation(liar)
    assert entry["validated"] is True
    assert abs(entry["valAccuracy"] - TRUTH["accuracy"]) < 1e-9
    status = (await liar.get("api/v1/status")).body
    assert status["rejected"] == {"evaluation_disagrees": 1}


async def test_two_sessions_of_one_volunteer_id_are_one_party(make_config, serve, http):
    served = await serve(create_app(collusion_config(make_config)))
    first = await join_from(http, served.url, "203.0.113.7", volunteer="v-same")
    second = await join_from(http, served.url, "198.51.100.1", volunteer="v-same")
    other = await join_from(http, served.url, "192.0.2.9", volunteer="v-other")
    assert await evaluate(first, LIE) is not None
    assert await evaluate(second, LIE) is None
    assert await evaluate(other, LIE) is not None  # an independent party agrees: validated
    entry = await first_evaluation(first)
    assert entry["validated"] is True and abs(entry["valAccuracy"] - LIE["accuracy"]) < 1e-9


async def test_one_party_alone_gets_an_unvalidated_result_at_once(make_config, serve, http):
    """Only sessions of one address are live: nobody could confirm the chunk, so it is accepted
    unvalidated without waiting out `eval_quorum_wait` (600 s here), and a target accuracy does
    not fire on it."""
    served = await serve(create_app(collusion_config(make_config, target_accuracy=0.5)))
    liar, accomplice = [await join_from(http, served.url, "203.0.113.7", name=n)
                        for n in ("liar", "accomplice")]
    assert await evaluate(liar, LIE) is not None
    entry = await first_evaluation(liar)
    assert entry["validated"] is False
    status = (await accomplice.get("api/v1/status")).body
    assert status["state"] == "running"  # the lie did not end the run


async def test_loopback_sessions_are_exempt(make_config, serve, http):
    """Local workers (`wnn serve --local-workers`) all connect from 127.0.0.1: they validate
    each other's chunks."""
    served = await serve(create_app(collusion_config(make_config)))
    first, second = [await join_from(http, served.url, None, name=n) for n in ("w1", "w2")]
    assert await evaluate(first, TRUTH) is not None
    assert await evaluate(second, TRUTH) is not None
    entry = await first_evaluation(first)
    assert entry["validated"] is True


async def test_the_rule_can_be_turned_off_for_volunteers_behind_one_nat(make_config, serve,
                                                                        http):
    """`eval_distinct_parties = false` (``--eval-any-sessions``): a class behind one NAT shares
    one address, and its sessions validate each other's chunks again."""
    served = await serve(create_app(collusion_config(make_config,
                                                     eval_distinct_parties=False)))
    first, second = [await join_from(http, served.url, "203.0.113.7", name=n)
                     for n in ("pupil-1", "pupil-2")]
    assert await evaluate(first, TRUTH) is not None
    assert await evaluate(second, TRUTH) is not None
    entry = await first_evaluation(first)
    assert entry["validated"] is True


def test_a_local_proxy_is_not_loopback_for_the_quorum() -> None:
    from webnn.server.addresses import client_address, party_address

    untrusted: frozenset[str] = frozenset()
    # a reverse proxy on this host, not named as trusted: the proxy's last hop is the party
    assert party_address("127.0.0.1", "10.0.0.9, 203.0.113.7:51234", untrusted) == "203.0.113.7"
    assert party_address("::1", "[2001:db8::5]:443", untrusted) == "2001:db8::5"
    # ... but the rate limits still see the peer (an untrusted header is not believed there)
    assert client_address("127.0.0.1", "203.0.113.7", untrusted) == "127.0.0.1"
    # a remote peer's header is never taken; without a header loopback stays loopback
    assert party_address("198.51.100.1", "203.0.113.7", untrusted) == "198.51.100.1"
    assert party_address("127.0.0.1", None, untrusted) == "127.0.0.1"
    # a trusted proxy's hops lose their ports too
    assert client_address("127.0.0.1", "203.0.113.7:8080", frozenset({"127.0.0.1"})) \
        == "203.0.113.7"


async def test_two_tabs_behind_an_untrusted_local_proxy_are_one_party(make_config, serve, http):
    """nginx on the same host, `trusted_proxies` not set: every request comes from 127.0.0.1,
    but the proxy's X-Forwarded-For still tells two tabs of one address apart from strangers."""
    served = await serve(create_app(make_config(eval_quorum=2, eval_chunk_size=400,
                                                eval_quorum_wait=600.0)))
    liar, accomplice = [await join_from(http, served.url, "203.0.113.7", name=n)
                        for n in ("liar", "accomplice")]
    stranger = await join_from(http, served.url, "198.51.100.1")
    assert await evaluate(liar, LIE) is not None
    assert await evaluate(accomplice, LIE) is None
    assert await evaluate(stranger, TRUTH) is not None
