"""Simulated volunteers for bench/load.py: one OS process runs many protocol clients on one asyncio
loop over pooled aiohttp sessions, and hands back what it measured.

Real volunteers come from many addresses and a server may limit joins per address, so the clients
are spread over loopback source addresses (127.1.x.y; all of 127/8 is local on Linux), a fixed
number of clients per address, with one pooled session (connector bound to that address) each.

Each client works like a real worker (docs/protocol.md): join; ask for a task (``POST
api/v1/tasks``); fetch its weights (conditional GET, ``If-None-Match`` when it holds that version)
and its batch; "compute" (sleep a think time drawn uniformly from the range); submit the update
frame (the fetched weights with a slice of them perturbed). With follow-up (the default) the update
asks for the next task (``"next"`` + ``Accept: application/vnd.webnn.frame``), so a task costs one
round trip. Evaluate tasks are answered with a JSON evaluation.

The update body is never assembled: it is sent as scatter parts ``[frame prefix, weights before the
slice, perturbed slice, weights after it]``, memoryviews of the received weights plus one small new
array, so making an update costs O(slice), not O(model).

Outcomes are sorted as: `busy` (503, retried after ``Retry-After``), `throttled` (429 with
``Retry-After``, e.g. a join rate limit: retried the same way), `refused` (documented protocol
answers a real worker handles by dropping its task or session: 409 ``too_stale``, ``lease_expired``,
``task_closed``, ``finishing``, 404 ``unknown_task``, 401 ``unknown_session``), `errors` (network
errors, timeouts and any other status). Latencies are recorded for successful requests that
complete inside the measured window; counts cover the whole run (warm-up included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from aiohttp.payload import Payload
from load_encodings import OFFERS, WEIGHT_DTYPES, Held, Slice, UpdateBuilder

from webnn.server.frames import CONTENT_TYPE, FrameError, decode_frame

REFUSALS = frozenset({"too_stale", "lease_expired", "task_closed", "unknown_task", "finishing"})
"""Error codes that drop the task: the client asks for a new one."""
NOISE_SCALE = 1e-3


@dataclass(frozen=True)
class ProcessPlan:
    """What one generator process does (picklable: it crosses a process boundary).

    Times are wall-clock seconds (``time.time()``): clients join spread over
    ``[start, start + ramp]``, latencies count from `measure_from`, everyone stops at `stop_at`.
    """

    base_url: str
    first_client: int
    clients: int
    params: int
    start: float
    ramp: float
    measure_from: float
    stop_at: float
    think: tuple[float, float]
    follow_up: bool
    role: str
    timeout: float
    perturb: int
    seed: int
    clients_per_address: int = 0
    cpus: tuple[int, ...] | None = None
    step_after: float | None = None
    keep_clients: int = 0
    encoding: str = "f32"
    """``--encoding``: what the clients offer at join (`load_encodings.OFFERS`)."""

    def stop_for(self, number: int) -> float:
        """When client `number` stops: `stop_at`, or with a load step (``--step``) the clients
        numbered `keep_clients` and above stop `step_after` seconds into the window."""
        if self.step_after is None or number < self.keep_clients:
            return self.stop_at
        return min(self.stop_at, self.measure_from + self.step_after)


@dataclass
class ProcessResult:
    """What one process measured. `latencies` maps a request kind to seconds (window only);
    `series` maps a name to per-second counts since the plan's start. `answers`/`answer_bytes`:
    the bodies of accepted updates' answers (follow-up frames, or JSON) that finished in the
    window; `weights_bodies`/`weights_bytes` the 200 answers of ``GET weights`` in the window;
    `negotiated` counts joins by the session's pick (``"update/weights"``, e.g. ``"q8/f16"``)."""

    latencies: dict[str, np.ndarray] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    busy: Counter = field(default_factory=Counter)
    throttled: Counter = field(default_factory=Counter)
    accepted_updates: int = 0
    accepted_bytes: int = 0
    answers: int = 0
    answer_bytes: int = 0
    weights_bodies: int = 0
    weights_bytes: int = 0
    negotiated: Counter = field(default_factory=Counter)
    series: dict[str, list[int]] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    window_seconds: float = 0.0


class Stop(Exception):
    """The run is over (stop time reached, or the server answered ``ended``)."""


class Dropped(Exception):
    """The task is gone (a refusal or a failed request): ask for a new one."""


class SessionLost(Exception):
    """``unknown_session``: join again."""


class ScatterPayload(Payload):
    """A request body sent as several buffers, without joining them (Content-Length = their sum)."""

    def __init__(self, parts: list[memoryview], content_type: str) -> None:
        super().__init__(parts, content_type=content_type)
        self._parts = parts
        self._size = sum(part.nbytes for part in parts)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._parts).decode(encoding, errors)

    async def write(self, writer: Any) -> None:
        for part in self._parts:
            await writer.write(part)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        left = content_length
        for part in self._parts:
            if left is not None:
                part = part[:left]
                left -= part.nbytes
            if part.nbytes:
                await writer.write(part)


class Recorder:
    """Counters and latency samples of one process (see the module docstring for the classes)."""

    def __init__(self, plan: ProcessPlan) -> None:
        self.plan = plan
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.result = ProcessResult()
        seconds = int(plan.stop_at - plan.start) + 2
        self.result.series = {name: [0] * seconds for name in ("updates", "busy", "errors")}

    def _second(self, name: str, when: float) -> None:
        index = int(when - self.plan.start)
        series = self.result.series[name]
        if 0 <= index < len(series):
            series[index] += 1

    def in_window(self, when: float) -> bool:
        return self.plan.measure_from <= when <= self.plan.stop_at

    def done(self, kind: str, started: float, finished: float) -> None:
        if self.in_window(finished):
            self.samples[kind].append(finished - started)

    def accepted(self, nbytes: int, finished: float) -> None:
        self._second("updates", finished)
        if self.in_window(finished):
            self.result.accepted_updates += 1
            self.result.accepted_bytes += nbytes

    def answered(self, nbytes: int, finished: float) -> None:
        """An accepted update's answer body of `nbytes` (window only)."""
        if self.in_window(finished):
            self.result.answers += 1
            self.result.answer_bytes += nbytes

    def weights_body(self, nbytes: int, finished: float) -> None:
        """A ``GET weights`` body of `nbytes` (window only)."""
        if self.in_window(finished):
            self.result.weights_bodies += 1
            self.result.weights_bytes += nbytes

    def joined(self, encodings: dict[str, str]) -> None:
        self.result.negotiated[f"{encodings['update']}/{encodings['weights']}"] += 1

    def busy(self, kind: str) -> None:
        self.result.busy[kind] += 1
        self._second("busy", time.time())

    def throttled(self, kind: str, code: str) -> None:
        self.result.throttled[f"{kind}:{code}"] += 1

    def refused(self, kind: str, code: str) -> None:
        self.result.refused[f"{kind}:{code}"] += 1

    def error(self, kind: str, code: str) -> None:
        self.result.errors[f"{kind}:{code}"] += 1
        self._second("errors", time.time())

    def finish(self) -> ProcessResult:
        self.result.latencies = {kind: np.asarray(values, dtype=np.float64)
                                 for kind, values in self.samples.items()}
        return self.result


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def code(self) -> str:
        """The protocol error code, or ``http_<status>`` when the body has none."""
        try:
            error = self.json().get("error", {})
            return str(error["code"])
        except (ValueError, AttributeError, KeyError, TypeError):
            return f"http_{self.status}"


class Shared:
    """What the clients of one process share: the HTTP session, the recorder, the noise block,
    the update builder (made from the manifest of the first join answer)."""

    def __init__(self, plan: ProcessPlan, sessions: list[aiohttp.ClientSession]) -> None:
        self.plan = plan
        self.sessions = sessions
        self.record = Recorder(plan)
        self.base = plan.base_url.rstrip("/")
        self.slice = max(1, min(plan.perturb, plan.params))
        rng = np.random.default_rng(plan.seed)
        self.noise = (rng.standard_normal(self.slice + 4096, dtype=np.float32)
                      * np.float32(NOISE_SCALE))
        self.updates_made = 0
        self.builder: UpdateBuilder | None = None

    def learn_model(self, model: dict) -> None:
        """Take the model's manifest from a join answer (once per process)."""
        if self.builder is None:
            self.builder = UpdateBuilder.from_manifest(model["weightsManifest"],
                                                       self.plan.seed + 7)

    def url(self, path: str) -> str:
        return self.base + path if path.startswith("/") else f"{self.base}/{path}"

    def next_slice(self, size: int) -> Slice:
        """The next update's perturbation: a rotating slice of k values plus noise."""
        k = min(self.slice, size)
        self.updates_made += 1
        at = (self.updates_made * k) % (size - k + 1)
        shift = self.updates_made % 4096
        return Slice(at, self.noise[shift:shift + k])

    def update_parts(self, encoding: str, header: dict, held: Held) -> list[memoryview]:
        """Scatter parts of an update frame in `encoding` (`load_encodings.UpdateBuilder`)."""
        if self.builder is None:
            raise RuntimeError("no model manifest yet (a client sends updates after joining)")
        return self.builder.parts(encoding, header, held, self.next_slice(held.weights.size))


class SimulatedClient:
    """One volunteer following the protocol until the plan's stop time."""

    def __init__(self, shared: Shared, number: int, rng: random.Random,
                 http: aiohttp.ClientSession) -> None:
        self.shared = shared
        self.http = http
        self.plan = shared.plan
        self.record = shared.record
        self.number = number
        self.rng = rng
        self.token: str | None = None
        self.held: Held | None = None
        self.encodings = {"update": "f32", "weights": "f32"}
        self.stop_at = self.plan.stop_for(number)

    # --- one HTTP exchange -------------------------------------------------------------------
    async def exchange(self, kind: str, method: str, path: str, *, json_body: Any = None,
                       parts: list[memoryview] | None = None,
                       headers: dict[str, str] | None = None) -> Reply:
        """Send one request; retry on 503 (and on 429 other than ``cut_off``) after
        Retry-After; a transport error or timeout is recorded and raises `Dropped`. Other statuses
        are returned for the caller to sort."""
        while True:
            if time.time() >= self.stop_at:
                raise Stop()
            sent = dict(headers or {})
            if self.token is not None:
                sent["X-WebNN-Session"] = self.token
            data: Any = None
            if parts is not None:
                data = ScatterPayload(parts, CONTENT_TYPE)
                sent["Content-Type"] = CONTENT_TYPE
            elif json_body is not None:
                data = json.dumps(json_body).encode()
                sent["Content-Type"] = "application/json"
            started = time.time()
            try:
                async with self.http.request(method, self.shared.url(path), data=data,
                                                    headers=sent) as answer:
                    body = await answer.read()
                    reply = Reply(answer.status, answer.headers, body)
            except TimeoutError:
                self.record.error(kind, "timeout")
                raise Dropped() from None
            except aiohttp.ClientError as error:
                self.record.error(kind, type(error).__name__)
                raise Dropped() from None
            finished = time.time()
            if reply.status == 503:
                self.record.busy(kind)
                await self.pause(retry_after(reply.headers) * self.rng.uniform(1.0, 1.25))
                continue
            if reply.status == 429 and reply.code() != "cut_off":
                self.record.throttled(kind, reply.code())
                await self.pause(retry_after(reply.headers) * self.rng.uniform(1.0, 1.25))
                continue
            if reply.status < 400:
                self.record.done(kind, started, finished)
            return reply

    async def pause(self, seconds: float) -> None:
        """Sleep, but not past the stop time (then raise `Stop`)."""
        left = self.stop_at - time.time()
        if seconds >= left:
            await asyncio.sleep(max(0.0, left))
            raise Stop()
        await asyncio.sleep(seconds)

    def failed(self, kind: str, reply: Reply) -> Exception:
        """Sort a non-success answer; the exception the caller raises."""
        code = reply.code()
        if code in REFUSALS:
            self.record.refused(kind, code)
            return Dropped()
        if code == "unknown_session":
            self.record.refused(kind, code)
            return SessionLost()
        if code == "ended":
            return Stop()
        self.record.error(kind, code)
        return Dropped()

    # --- the protocol steps ------------------------------------------------------------------
    async def join(self) -> None:
        self.token = None
        body: dict[str, Any] = {"client": {"kind": "other", "name": f"load-{self.number}"}}
        offer = OFFERS[self.plan.encoding]
        if offer is not None:
            body["encodings"] = offer
        reply = await self.exchange("join", "POST", "api/v1/join", json_body=body)
        if reply.status != 200:
            raise self.failed("join", reply)
        answer = reply.json()
        self.token = answer["token"]
        self.encodings = dict(answer.get("encodings") or {"update": "f32", "weights": "f32"})
        self.held = None  # weights of another encoding may follow
        self.shared.learn_model(answer["model"])
        self.record.joined(self.encodings)

    async def new_task(self) -> dict | None:
        reply = await self.exchange("task", "POST", "api/v1/tasks",
                                    json_body={"role": self.plan.role})
        if reply.status != 200:
            raise self.failed("task", reply)
        return await self.task_or_wait(reply.json())

    async def task_or_wait(self, answer: dict) -> dict | None:
        """The task of a ``{"task": ...}`` answer; without one, wait its ``retryAfter``."""
        if answer.get("task") is not None:
            return answer["task"]
        if answer.get("state") == "ended":
            raise Stop()
        await self.pause(float(answer.get("retryAfter") or 1.0))
        return None

    async def fetch(self, task: dict) -> Held:
        """The task's weights (conditional GET) and batch."""
        version = int(task["version"])
        headers = {}
        if self.held is not None and self.held.version == version:
            headers["If-None-Match"] = self.held.etag or f'"v{version}"'
        reply = await self.exchange("weights", "GET", task["urls"]["weights"], headers=headers)
        if reply.status == 304 and self.held is not None:
            held = self.held
        elif reply.status == 200:
            dtype = WEIGHT_DTYPES[reply.headers.get("X-WebNN-Encoding", "f32")]
            held = Held(version, np.frombuffer(reply.body, dtype=dtype),
                        reply.headers.get("ETag"))
            self.record.weights_body(len(reply.body), time.time())
        else:
            raise self.failed("weights", reply)
        batch = await self.exchange("batch", "GET", task["urls"]["batch"])
        if batch.status != 200:
            raise self.failed("batch", batch)
        self.held = held
        return held

    async def think(self) -> float:
        low, high = self.plan.think
        seconds = self.rng.uniform(low, high) if high > 0 else 0.0
        if seconds:
            await self.pause(seconds)
        elif time.time() >= self.stop_at:
            raise Stop()
        return seconds

    async def evaluate(self, task: dict, held: Held | None) -> None:
        if held is None:
            await self.fetch(task)
        await self.think()
        reply = await self.exchange("evaluation", "POST", task["urls"]["submit"], json_body={
            "loss": 1.0, "accuracy": 0.5, "examples": int(task["examples"])})
        if reply.status != 200:
            raise self.failed("evaluation", reply)

    async def train(self, task: dict, held: Held) -> tuple[dict | None, Held | None]:
        """Think, submit the update; the follow-up task and its inputs when one came."""
        compute = await self.think()
        header: dict[str, Any] = {
            "baseVersion": int(task["version"]), "steps": int(task["localSteps"]),
            "loss": 1.0, "accuracy": 0.5,
            "timings": {"fetch": 0.0, "compute": compute, "send": 0.0}}
        headers = {}
        if self.plan.follow_up:
            header["next"] = self.plan.role
            headers["Accept"] = CONTENT_TYPE
        parts = self.shared.update_parts(self.encodings["update"], header, held)
        reply = await self.exchange("update", "POST", task["urls"]["submit"], parts=parts,
                                    headers=headers)
        if reply.status != 200:
            raise self.failed("update", reply)
        finished = time.time()
        self.record.accepted(sum(part.nbytes for part in parts), finished)
        self.record.answered(len(reply.body), finished)
        if reply.headers.get("Content-Type", "").startswith(CONTENT_TYPE):
            try:
                frame = decode_frame(reply.body)
            except FrameError as error:
                self.record.error("update", f"follow_up_{error.code}")
                raise Dropped() from None
            follow = frame.header["next"]["task"]
            held = Held(int(follow["version"]), frame.tensors["weights"].reshape(-1),
                        frame.header.get("weightsEtag"))
            self.held = held
            return follow, held
        answer = reply.json()
        if self.plan.follow_up and "next" in answer:
            return await self.task_or_wait(answer["next"]), None
        return None, None

    async def run(self) -> None:
        plan = self.plan
        await asyncio.sleep(max(0.0, plan.start + plan.ramp * self.rng.random() - time.time()))
        task: dict | None = None
        held: Held | None = None
        while time.time() < self.stop_at:
            try:
                if self.token is None:
                    await self.join()
                if task is None:
                    task, held = await self.new_task(), None
                    continue
                if task["kind"] == "evaluate":
                    current, task = task, None
                    await self.evaluate(current, held)
                    continue
                if held is None:
                    held = await self.fetch(task)
                task, held = await self.train(task, held)
            except Stop:
                return
            except SessionLost:
                self.token, task, held = None, None, None
            except Dropped:
                task, held = None, None
                with contextlib.suppress(Stop):
                    await self.pause(self.rng.uniform(0.05, 0.2))


def retry_after(headers: Any) -> float:
    """Seconds of a ``Retry-After`` header (delta-seconds form); 1 s when absent or unreadable."""
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one (a socket per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loopback_address(index: int) -> str:
    """The `index`-th simulated volunteer address: 127.1.0.1, ..., 127.1.0.250, 127.1.1.1, ..."""
    high, low = divmod(index, 250)
    return f"127.1.{high}.{low + 1}"


KEEPALIVE_SECONDS = 10.0
"""How long a simulated client keeps an idle connection for reuse: less than ``wnn serve``'s idle
close (``header_timeout``, 15 s by default), as browsers' and Node's fetch do (undici: 4 s). A
client that reuses a connection at the moment the server closes it gets a network error
(`bench/load_keepalive.py`: 1-17 of 300 requests in five runs when clients wait 0.97-1.03 s
against a 1 s idle close with a 120 s client keep-alive, none with 0.8 s); with 120 s, as before,
waits of about 15 s (a `Retry-After` of 15, common under overload) could make such errors in the
load runs (`ClientOSError` on an update, `ServerDisconnectedError`)."""


async def run_clients(plan: ProcessPlan) -> ProcessResult:
    """Run the plan's clients (client n speaks from address n // clients_per_address)."""
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    numbers = range(plan.first_client, plan.first_client + plan.clients)
    per = plan.clients_per_address
    async with contextlib.AsyncExitStack() as stack:
        sessions: dict[str | None, aiohttp.ClientSession] = {}
        for address in dict.fromkeys(loopback_address(n // per) if per else None
                                     for n in numbers):
            connector = aiohttp.TCPConnector(
                limit=0, keepalive_timeout=KEEPALIVE_SECONDS,
                local_addr=(address, 0) if address is not None else None)
            sessions[address] = await stack.enter_async_context(aiohttp.ClientSession(
                connector=connector, timeout=timeout, read_bufsize=1 << 20))
        shared = Shared(plan, list(sessions.values()))
        clients = [SimulatedClient(shared, n, random.Random(plan.seed * 1_000_003 + n),
                                   sessions[loopback_address(n // per) if per else None])
                   for n in numbers]
        cpu = asyncio.create_task(cpu_in_window(plan))
        await asyncio.gather(*(client.run() for client in clients))
        result = shared.record.finish()
        result.cpu_seconds, result.window_seconds = await cpu
        return result


async def cpu_in_window(plan: ProcessPlan) -> tuple[float, float]:
    """This process's CPU seconds (user + system) between measure_from and stop_at."""
    await asyncio.sleep(max(0.0, plan.measure_from - time.time()))
    cpu0, wall0 = time.process_time(), time.time()
    await asyncio.sleep(max(0.0, plan.stop_at - time.time()))
    return time.process_time() - cpu0, time.time() - wall0


def process_main(plan: ProcessPlan, results: Any) -> None:
    """Entry point of a generator process: pin, run the clients, put the result on `results`."""
    if plan.cpus:
        os.sched_setaffinity(0, plan.cpus)
    raise_fd_limit()
    results.put(asyncio.run(run_clients(plan)))
