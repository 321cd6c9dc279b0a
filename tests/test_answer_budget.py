"""The budget of model-sized answers in progress (`webnn.server.answer_budget`).

- Accounting: an answer is admitted while its bytes fit (one larger than the whole budget only
  alone), refusals are counted by code, a reservation is released exactly once: when the write
  completes, fails, is cancelled or is aborted by the send watchdog, and when an answer that was
  never written is dropped.
- Over real loopback HTTP (`create_app` with a 4M-parameter model, raw sockets that ask for
  weights and read nothing): with room for two answers, two stalled ``GET weights`` hold the
  budget and the third gets ``503 busy`` with ``Retry-After`` (a conditional GET that is a 304
  still goes); once the stalled connections are closed the budget is free and ``GET weights``
  is served again. An update whose follow-up frame does not fit is answered as JSON with its
  ``next`` task, which stays leased and is completed once the budget frees up. A stalled
  follow-up frame holds the budget until its connection goes. A scale-out front-end (a real
  redis-server) refuses and answers the same way.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support.protocol_client import FRAME_TYPE, ProtocolClient, encode_frame
from support.redis import redis_server  # noqa: F401 (fixture)

from webnn.server import answers
from webnn.server.answer_budget import (
    ADDRESS_SHARE,
    DEFAULT_ANSWERS,
    MAX_ANSWER_BYTES,
    MIN_ANSWER_BYTES,
    MIN_ANSWERS,
    REFUSED_FOLLOW_UP,
    REFUSED_SHARE,
    REFUSED_WEIGHTS,
    RETRY_SECONDS,
    AnswerBudget,
    default_answer_budget,
    requester,
)
from webnn.server.app import create_app
from webnn.server.keys import COORDINATOR

REPO = Path(__file__).resolve().parent.parent
PARAMS = 4_000_000
"""16 MB of float32 weights: more than loopback's socket buffers take from a stalled client."""

# ---------------------------------------------------------------------------------- accounting


def test_answers_are_admitted_while_their_bytes_fit_and_refusals_are_counted() -> None:
    refused: Counter[str] = Counter()
    budget = AnswerBudget(100, refused)
    first, second = budget.reserve(60, "x"), budget.reserve(40, "x")
    assert first is not None and second is not None
    assert (budget.used, budget.count, budget.peak) == (100, 2, 100)
    assert budget.reserve(1, "weights") is None and refused == {"weights": 1}
    first.release()
    first.release()  # idempotent: released once
    assert (budget.used, budget.count) == (40, 1)
    third = budget.reserve(60, "x")
    assert third is not None and budget.used == 100
    second.release()
    third.release()
    assert (budget.used, budget.count, budget.peak) == (0, 0, 100)


def test_an_answer_larger_than_the_budget_goes_only_alone() -> None:
    budget = AnswerBudget(100)
    big = budget.reserve(250, "x")
    assert big is not None and budget.reserve(1, "x") is None
    big.release()
    small = budget.reserve(1, "x")
    assert small is not None and budget.reserve(250, "x") is None


def test_the_default_is_room_for_32_answers_within_its_bounds() -> None:
    assert default_answer_budget(4_000) == MIN_ANSWER_BYTES  # tiny: thousands of answers
    assert default_answer_budget(4_000_000) == MIN_ANSWER_BYTES  # 1M parameters: 134 answers
    assert default_answer_budget(20 << 20) == DEFAULT_ANSWERS * (20 << 20)  # 640 MiB
    assert default_answer_budget(40_000_000) == MAX_ANSWER_BYTES  # 10M parameters: 26 answers
    huge = 400_000_000  # 100M parameters: never fewer than 4 answers
    assert default_answer_budget(huge) == MIN_ANSWERS * huge
    assert AnswerBudget.for_model(None, 4_000_000).capacity == MIN_ANSWER_BYTES
    assert AnswerBudget.for_model(12345, 4_000_000).capacity == 12345


def test_one_address_holds_at_most_its_share_others_and_loopback_are_not_held_back() -> None:
    refused: Counter[str] = Counter()
    budget = AnswerBudget(800, refused)  # share: 800 // ADDRESS_SHARE = 100 bytes
    assert budget.share == 800 // ADDRESS_SHARE
    first = budget.reserve(60, "weights", "203.0.113.5")
    assert first is not None
    assert budget.reserve(60, "weights", "203.0.113.5") is None  # past its share
    assert refused == {REFUSED_SHARE: 1}
    assert budget.reserve(40, "weights", "203.0.113.5") is not None  # up to the share fits
    other = budget.reserve(100, "weights", "198.51.100.7")  # another address: its own share
    local = [budget.reserve(100, "weights", None) for _ in range(3)]  # loopback: no share
    assert other is not None and all(local) and budget.used == 500
    first.release()
    assert budget.by_address == {"203.0.113.5": 40, "198.51.100.7": 100}
    other.release()
    assert "198.51.100.7" not in budget.by_address  # nothing kept for an address holding none
    alone = AnswerBudget(80)  # a share below one answer: the address's first still fits
    assert alone.reserve(70, "x", "203.0.113.5") is not None
    assert alone.reserve(1, "x", "203.0.113.5") is None


def test_the_share_counts_the_address_admission_counts() -> None:
    proxy = frozenset({"10.0.0.2"})
    assert requester("127.0.0.1", None, frozenset()) is None  # a direct local client
    assert requester("::1", None, frozenset()) is None
    assert requester("203.0.113.5", None, proxy) == "203.0.113.5"
    assert requester("10.0.0.2", "203.0.113.5", proxy) == "203.0.113.5"  # a trusted proxy
    assert requester("203.0.113.9", "198.51.100.1", proxy) == "203.0.113.9"  # not believed
    # a proxy on this host, not trusted: its last hop, as the evaluation quorum counts it
    assert requester("127.0.0.1", "198.51.100.1, 203.0.113.5", frozenset()) == "203.0.113.5"


class Writer:
    """aiohttp's stream writer as `WeightsPayload` uses it: `write` and the `transport`; a write
    past the first piece waits for `release`, then fails with `error` if one is set."""

    def __init__(self) -> None:
        self.transport: object = None
        self.error: BaseException | None = None
        self.release = asyncio.Event()
        self.written = 0

    async def write(self, data: memoryview) -> None:
        if self.written:
            await self.release.wait()
            if self.error is not None:
                raise self.error
        self.written += len(data)


DATA = memoryview(bytes(1 << 18))


async def _payload_write(budget: AnswerBudget, writer: Writer) -> asyncio.Task:
    reservation = budget.reserve(len(DATA), "x")
    payload = answers.WeightsPayload(DATA, reservation)
    task = asyncio.ensure_future(payload.write(writer))  # type: ignore[arg-type]
    async with asyncio.timeout(30):
        while not writer.written:
            await asyncio.sleep(0)
    assert budget.used == len(DATA)  # held while the rest is being written
    return task


async def test_a_written_answer_gives_its_bytes_back() -> None:
    budget, writer = AnswerBudget(1 << 20), Writer()
    task = await _payload_write(budget, writer)
    writer.release.set()
    await task
    assert writer.written == len(DATA) and (budget.used, budget.count) == (0, 0)


async def test_a_failed_write_gives_its_bytes_back() -> None:
    budget, writer = AnswerBudget(1 << 20), Writer()
    task = await _payload_write(budget, writer)
    writer.error = ConnectionResetError("gone")
    writer.release.set()
    with pytest.raises(ConnectionResetError):
        await task
    assert (budget.used, budget.count) == (0, 0)


async def test_a_cancelled_write_gives_its_bytes_back() -> None:
    budget = AnswerBudget(1 << 20)
    task = await _payload_write(budget, Writer())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (budget.used, budget.count) == (0, 0)


class StalledTransport:
    """A connection whose buffered bytes never fall; aborting it fails the pending write."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def get_write_buffer_size(self) -> int:
        return 1 << 24

    def abort(self) -> None:
        self.writer.error = ConnectionResetError("Connection lost")
        self.writer.release.set()


async def test_an_answer_the_watchdog_aborts_gives_its_bytes_back(monkeypatch) -> None:
    monkeypatch.setattr(answers, "SEND_TIMEOUT", 0.01)
    budget = AnswerBudget(1 << 20)
    writer = Writer()
    writer.transport = StalledTransport(writer)  # aiohttp's write fails once it is aborted
    task = await _payload_write(budget, writer)
    with pytest.raises(ConnectionResetError, match="less than"):
        await task
    assert (budget.used, budget.count) == (0, 0)


def test_an_answer_never_written_gives_its_bytes_back_when_dropped() -> None:
    budget = AnswerBudget(1 << 20)
    payload = answers.WeightsPayload(DATA, budget.reserve(len(DATA), "x"))
    assert budget.used == len(DATA)
    del payload
    gc.collect()
    assert (budget.used, budget.count) == (0, 0)


# ------------------------------------------------------------------------- over real HTTP


@pytest.fixture
async def model(load_script: Callable, tmp_path: Path):
    return load_script("load_model", REPO / "bench" / "load_model.py").write_model(
        tmp_path, PARAMS, None)


@pytest.fixture
async def running(model, make_config, serve):
    """A server with room for two (and a half) weights answers."""
    config = make_config(spec=str(model.spec_path), data=str(model.data_path),
                         evaluate_initial=False, answer_budget=5 * model.nbytes // 2)
    return await serve(create_app(config))


async def _until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait for `condition` (checked as the loop turns), failing after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


async def _stalled(url: str, request: bytes) -> socket.socket:
    """A socket with a tiny receive buffer that sends `request` to `url`'s server and then
    reads nothing."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, request)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with a reset (linger 0), as a client that goes away with the answer unread."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _first_task(client: ProtocolClient) -> tuple[dict, np.ndarray]:
    """Join, lease a train task and fetch its weights."""
    await client.join()
    task = (await client.task("train"))["task"]
    return task, await client.weights_array(task["urls"]["weights"])


def _update_asking_next(task: dict, weights: np.ndarray) -> bytes:
    """An update frame for `task` whose header asks for the next train task."""
    header = {"baseVersion": task["version"], "steps": task["localSteps"], "loss": 1.0,
              "accuracy": 0.5, "next": "train"}
    return encode_frame(header, {"weights": weights})


def _get(path: str, forwarded_for: str | None = None) -> bytes:
    forwarded = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{forwarded}\r\n".encode()


async def test_stalled_weight_fetches_hold_the_budget_and_the_next_gets_503(running, model,
                                                                            http):
    budget = running.app[COORDINATOR].answers
    client = ProtocolClient(http, running.url)
    etag = (await client.weights()).headers["ETag"]
    assert budget.used == 0
    path = f"{client.url('api/v1/weights').path}"
    stalled = [await _stalled(running.url, _get(path)) for _ in range(2)]
    try:
        await _until(lambda: budget.count == 2)
        refused = await client.weights()
        assert refused.status == 503 and refused.code == "busy", refused.body
        assert RETRY_SECONDS <= int(refused.headers["Retry-After"]) <= 2 * RETRY_SECONDS
        assert "budget" in refused.body["error"]["message"]
        assert (await client.weights(etag=etag)).status == 304  # no body: not refused
        capacity = (await client.get("api/v1/status")).body["capacity"]
        assert capacity["refused"] == {REFUSED_WEIGHTS: 1}
        assert capacity["answersInFlight"] == 2 and capacity["answerBytes"] == budget.used
    finally:
        for sock in stalled:
            _reset(sock)
    await _until(lambda: budget.used == 0 and budget.count == 0)
    served = await client.weights()
    assert served.status == 200 and len(served.raw) == model.nbytes
    assert budget.used == 0


@pytest.mark.parametrize("hostile, neighbour, stranger, named", [
    ("203.0.113.5", "203.0.113.5", "198.51.100.7", "203.0.113.5"),
    # an IPv6 client counts as its /64: another address of it shares the share
    ("2001:db8:1:2::5", "2001:db8:1:2:ffff::9", "2001:db8:1:3::5", "2001:db8:1:2::/64"),
])
async def test_one_address_cannot_fill_the_budget_for_everyone(model, make_config, serve, http,
                                                                 hostile, neighbour, stranger,
                                                                 named):
    # room for eight answers, an address's share one: stalled fetches from one address (behind
    # a trusted proxy on loopback) hold one answer and are refused beyond it, while another
    # address is served
    config = make_config(spec=str(model.spec_path), data=str(model.data_path),
                         evaluate_initial=False, answer_budget=8 * model.nbytes,
                         trusted_proxies=["127.0.0.1"])
    running = await serve(create_app(config))
    budget = running.app[COORDINATOR].answers
    client = ProtocolClient(http, running.url)
    path = f"{client.url('api/v1/weights').path}"
    stalled = await _stalled(running.url, _get(path, hostile))
    try:
        await _until(lambda: budget.count == 1)
        refused = await client.request("GET", "api/v1/weights",
                                       headers={"X-Forwarded-For": neighbour})
        assert refused.status == 503 and refused.code == "busy", refused.body
        assert named in refused.body["error"]["message"]
        served = await client.request("GET", "api/v1/weights",
                                      headers={"X-Forwarded-For": stranger})
        assert served.status == 200 and len(served.raw) == model.nbytes
        status = (await client.get("api/v1/status")).body
        assert status["capacity"]["refused"] == {REFUSED_SHARE: 1}
    finally:
        _reset(stalled)
    await _until(lambda: budget.used == 0 and not budget.by_address)


async def test_an_update_beyond_the_budget_is_answered_without_its_follow_up(running, http):
    coordinator = running.app[COORDINATOR]
    budget = coordinator.answers
    client = ProtocolClient(http, running.url)
    task, weights = await _first_task(client)
    path = f"{client.url('api/v1/weights').path}"
    stalled = [await _stalled(running.url, _get(path)) for _ in range(2)]
    try:
        await _until(lambda: budget.count == 2)
        answer = await client.request(
            "POST", task["urls"]["submit"], content_type=FRAME_TYPE,
            headers={"Accept": FRAME_TYPE}, data=_update_asking_next(task, weights + 0.01))
        assert answer.status == 200 and answer.headers["Content-Type"].startswith(
            "application/json"), answer.body
        assert answer.body["accepted"]
        follow = answer.body["next"]["task"]  # leased, handed over, not lost
        assert follow is not None and follow["version"] == answer.body["version"]
        status = (await client.get("api/v1/status")).body
        assert status["capacity"]["refused"] == {REFUSED_FOLLOW_UP: 1}
        assert status["openTasks"] == 1
        await client.batch(follow)  # its batch is there while the budget is full
    finally:
        for sock in stalled:
            _reset(sock)
    await _until(lambda: budget.used == 0)
    # the follow-up's version is still held for it: fetched and sent like any task
    weights = await client.weights_array(follow["urls"]["weights"])
    second = await client.submit_update(follow, weights + 0.01)
    assert second.status == 200 and second.body["accepted"] and second.body["staleness"] == 0
    assert budget.used == 0


async def test_a_stalled_follow_up_frame_holds_the_budget_until_its_connection_goes(
        running, model, http):
    coordinator = running.app[COORDINATOR]
    budget = coordinator.answers
    client = ProtocolClient(http, running.url)
    task, weights = await _first_task(client)
    body = _update_asking_next(task, weights + 0.01)
    submit = client.url(task["urls"]["submit"]).path
    request = (f"POST {submit} HTTP/1.1\r\nHost: x\r\nX-WebNN-Session: {client.token}\r\n"
               f"Content-Type: {FRAME_TYPE}\r\nAccept: {FRAME_TYPE}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sock = await _stalled(running.url, request)
    try:
        await _until(lambda: budget.count == 1)
        assert budget.used > model.nbytes  # the frame's weights and batch
    finally:
        _reset(sock)
    await _until(lambda: budget.used == 0 and budget.count == 0)
    assert coordinator.merges == 1


# ------------------------------------------------------------- a scale-out front-end


@pytest.mark.slow
async def test_a_front_end_applies_the_same_budget(
        redis_server, model, make_config, serve, http):  # noqa: F811
    from webnn.cluster.frontend import FRONTEND
    from webnn.cluster.settings import ClusterSettings

    config = make_config(spec=str(model.spec_path), data=str(model.data_path),
                         evaluate_initial=False, answer_budget=5 * model.nbytes // 2)
    served = await serve(create_app(config, cluster=ClusterSettings(
        redis_url=redis_server.url, run="answers")))
    budget = served.app[FRONTEND].answers
    client = ProtocolClient(http, served.url)
    task, weights = await _first_task(client)
    path = f"{client.url('api/v1/weights').path}"
    stalled = [await _stalled(served.url, _get(path)) for _ in range(2)]
    try:
        await _until(lambda: budget.count == 2)
        refused = await client.weights()
        assert refused.status == 503 and refused.code == "busy", refused.body
        assert int(refused.headers["Retry-After"]) >= RETRY_SECONDS
        answer = await client.request(
            "POST", task["urls"]["submit"], content_type=FRAME_TYPE,
            headers={"Accept": FRAME_TYPE}, data=_update_asking_next(task, weights + 0.01))
        assert answer.status == 200 and answer.body["accepted"], answer.body
        follow = answer.body["next"]["task"]  # as JSON, the next task in it
        assert follow is not None
        refused_codes = (await client.get("api/v1/status")).body["capacity"]["refused"]
        assert refused_codes[REFUSED_WEIGHTS] == 1 and refused_codes[REFUSED_FOLLOW_UP] == 1
    finally:
        for sock in stalled:
            _reset(sock)
    await _until(lambda: budget.used == 0)
    served_weights = await client.weights(follow["urls"]["weights"])
    assert served_weights.status == 200 and len(served_weights.raw) == model.nbytes
