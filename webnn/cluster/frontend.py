"""A front-end process: the volunteer protocol (docs/protocol.md) with its state in Redis.

Sessions, leases and the batch queue live in Redis and change only through the atomic scripts
of `scripts.py`, so any front-end can answer any request of any session. An update goes:

1. task check (state, owner) before the body is read; body into a pooled buffer after admission
   (`webnn.server.ingest.Ingest`: ``503 busy`` when full); `decode_update` in place;
2. the too-stale cut-off against the newest version this front-end knows; finiteness and the
   delta norm in one pass (`check_weights`) against the task's base version, then the screen;
3. `CLAIM` (open -> claimed); the update is folded into a partial (`Combiner`, combinable
   strategies) or sent alone; `COMMIT` adds the stream entry and marks its tasks done in one
   step; only then is the client answered ``{"accepted": true, "durable": true, ...}``. A retry
   gets the stored answer.

Evaluation tasks come from the evaluation in progress in Redis (`evaluations.py`; the merger
owns the schedule, `controller.py`); the run's state (paused, finishing, ended) is read by the
lease and commit scripts themselves, so every front-end obeys a change at once; the admin
endpoints change it through any front-end, and `api/v1/events` relays the run's event channel
(`relay.py`).

Admission is the single process's, per front-end (`webnn.server.admission.Admission`): bodies
within the latency bound at this front-end's measured cost, training leases bounded by its share
of the run's open leases (`admission_share.py`); status's `capacity` block is this front-end's.
The merger's back-pressure comes on top (`backlog.py`): while the unmerged stream holds more
than ``--merge-backlog`` seconds of the merger's work, bodies are refused (``503 busy``) and,
past half of it, training leases deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
from aiohttp import web

from webnn.cluster import scripts
from webnn.cluster.admission_share import AdmissionShare, TrafficCounts, traffic_summary
from webnn.cluster.backlog import FOLLOW_SECONDS, Backlog
from webnn.cluster.combiner import Combiner, CommitLost
from webnn.cluster.control import GuardedWriter, RunState, event_message
from webnn.cluster.controller import end_commands, eval_chunk_size, finish_seconds
from webnn.cluster.evalstate import stored_from
from webnn.cluster.evaluations import EvalLease, EvaluationDesk
from webnn.cluster.keys import RedisClient, RunKeys
from webnn.cluster.metrics import ProcessMetrics
from webnn.cluster.records import detach, update_fields
from webnn.cluster.relay import EventRelay
from webnn.cluster.settings import ClusterSettings, kept_versions
from webnn.cluster.task_rate import ClusterTaskRate
from webnn.cluster.versions import VersionBoard
from webnn.data.base import shard_batch_indices
from webnn.merge.base import Update
from webnn.merge.screening import Screen, staleness_cutoff
from webnn.server.addresses import address_key, client_address
from webnn.server.admission import (
    BODY_SLACK,
    Admission,
    AdmissionLimits,
    busy,
)
from webnn.server.answer_budget import REFUSED_FOLLOW_UP, AnswerBudget
from webnn.server.answers import (
    SIGNED_LOSSES,
    answer_address,
    check_evaluation_bounds,
    follow_up_bytes,
    follow_up_frame,
    reserve_answer,
    weights_answer,
    weights_etag,
)
from webnn.server.batch_feed import frame_array
from webnn.server.config import ModelParts, ServeConfig
from webnn.server.cut_off import INVALID_UPDATE_CODES, CutOff
from webnn.server.encodings import EncodedUpdate, negotiate, parse_offer
from webnn.server.errors import ProtocolError, bad_field, error_middleware
from webnn.server.evaluation import ANYONE, Party
from webnn.server.events import EventBus, stream_events
from webnn.server.export import model_json
from webnn.server.follow_up import split_frame
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE
from webnn.server.frames import encode_frame
from webnn.server.http import (
    MAX_TOKEN_CHARS,
    SESSION_HEADER,
    decimal_param,
    read_json,
    require_admin,
    require_content_type,
    require_join_token,
    url,
)
from webnn.server.ingest import Ingest, check_weights, closing
from webnn.server.keys import CONFIG, METRICS
from webnn.server.routes import client_info
from webnn.server.shards import MAX_VOLUNTEERS
from webnn.server.static import add_static_routes, static_urls
from webnn.server.tasks import ROLES
from webnn.server.updates import decode_update, not_finite_error
from webnn.server.wire import json_response

log = logging.getLogger("webnn.cluster")
FRAME_OVERHEAD = 1 << 20
TASK_KEEP_SECONDS = 120
"""A finished or expired task's record stays this long (a retried update gets its answer)."""
PAYLOAD_EXPIRY_MS = 600_000
"""An entry's payload is written with this expiry, which `scripts.COMMIT` removes in the same
transaction (or deletes the payload): it only runs out if the script failed to run at all."""
TICK_SECONDS = 1.0
SAMPLE_SECONDS = 0.2
UPLOADS_REMEMBERED = 4096
"""Task ids whose first upload was timed (a retry after 503 busy is not timed again)."""
BATCH_CACHE = 64
HISTORY_TAIL = 64
"""History entries status reads (the last validated one further back only when needed)."""
FRONTEND = web.AppKey("webnn_cluster_frontend", object)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Frontend:
    """One front-end process's view of a run; see the module docstring."""

    def __init__(self, config: ServeConfig, parts: ModelParts, settings: ClusterSettings,
                 redis: RedisClient, keys: RunKeys, label: str) -> None:
        self.config = config
        self.parts = parts
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.label = label
        self.spec = parts.spec
        self.layout = parts.spec.compiled.layout
        self.strategy = parts.strategy
        training = parts.spec.training
        self.batch_size = int(training.batch_size)
        self.local_steps = int(training.local_steps)
        self.examples = self.batch_size * self.local_steps
        self.task_rate = ClusterTaskRate.for_run(config, self.spec.learning_rate, keys)
        """Train tasks' learning rate from the run's live trainers (`task_rate.py`)."""
        self.versions = VersionBoard(redis, keys)
        self.metrics = ProcessMetrics(label)
        self.screen = (Screen(parts.screening, self.layout)
                       if parts.screening is not None and parts.screening.checks_norm else None)
        self.max_staleness = staleness_cutoff(config.max_staleness, parts.screening)
        nbytes = self.layout.nbytes
        self.keep_versions = kept_versions(settings.keep_versions, nbytes)
        self.limits = AdmissionLimits.for_model(config, nbytes)
        self.admission = Admission(self.limits, time.monotonic)
        self.share = AdmissionShare()
        """This front-end's share of the run's open training leases (`admission_share.py`)."""
        self.backlog = Backlog(settings.merge_backlog)
        """The unmerged stream and the merger's pace, read every `FOLLOW_SECONDS`."""
        self.refused: Counter[str] = Counter()
        """Requests turned away by admission here (status ``capacity.refused``)."""
        self.answers = AnswerBudget.for_model(config.answer_budget, nbytes, self.refused,
                                              frozenset(config.trusted_proxies))
        """Model-sized answers being sent by this process (`answer_budget`)."""
        self.traffic = TrafficCounts()
        self.ingest = Ingest(self.admission, limit=nbytes + FRAME_OVERHEAD,
                             pool_size=nbytes + BODY_SLACK, timeout=config.body_timeout)
        self.scripts = {name: redis.register_script(getattr(scripts, name))
                        for name in ("LEASE", "RECLAIM", "CLAIM", "UNCLAIM", "GIVE_BACK",
                                     "COMMIT", "LEAVE", "NOTE_INVALID", "JOIN", "STATE",
                                     "ASSIGN", "FORGET")}
        self.desk = EvaluationDesk(parts, redis, keys, eval_chunk_size(config, training))
        self.writer = GuardedWriter(redis, keys)
        self.bus = EventBus()
        self.relay = EventRelay(redis, keys, self.bus, self._on_event)
        self.versions.on_version = self._on_version
        self.run = RunState()
        """The run's state as last read (each tick and on every ``state`` event); the lease and
        commit scripts read Redis's own, so this only shapes answers and early refusals."""
        self.started = time.time()
        self.combiner = (Combiner(self.strategy, self._commit, settings.combine_max,
                                  settings.combine_ms / 1000.0, label, self._on_their_way)
                         if self.strategy.combinable else None)
        self.in_flight = 0
        self._arriving: set[str] = set()
        """Task ids of bodies read and not yet handed to the combiner (nor refused)."""
        self._reading = 0
        """Update bodies being read."""
        self.shards = parts.shards  # None: iid (one shared sequence)
        self._batches: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._tick: asyncio.Task | None = None
        self._sampler: asyncio.Task | None = None
        self._follower: asyncio.Task | None = None
        self._uploaded: OrderedDict[str, None] = OrderedDict()
        self._reads: set[asyncio.Future] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.metrics.register(self.redis, self.keys, "frontend")
        await self.desk.load()
        self.relay.start()
        await self.versions.start()
        await self._read_run()
        self._tick = asyncio.create_task(self._ticker())
        self._sampler = asyncio.create_task(self._sample())
        self._follower = asyncio.create_task(self._follow_backlog())

    async def stop(self) -> None:
        for task in (self._tick, self._sampler, self._follower):
            if task is not None:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.traffic.flush(self.redis, self.keys.stats)
            await self.share.leave(self.redis, self.keys, self.label)
        await self.relay.stop()
        await self.versions.stop()
        await self.redis.delete(self.keys.metrics(self.label))
        await self.redis.hdel(self.keys.processes, self.label)
        await self.redis.aclose()

    async def _ticker(self) -> None:
        """Every second: reclaim due leases, forget idle sessions, publish this process's
        metrics (so any front-end's /metrics shows every process)."""
        while True:
            try:
                await self.scripts["RECLAIM"](
                    keys=[self.keys.leases, self.keys.returned, self.keys.stats],
                    args=[self.keys.task_prefix, self.keys.session_tasks_prefix,
                          TASK_KEEP_SECONDS])
                await self._forget_idle_sessions()
                await self._read_run()
                await self.share.read(self.redis, self.keys, self.label)
                await self.traffic.flush(self.redis, self.keys.stats)
                self._observe()
                await self.metrics.publish(self.redis, self.keys)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("%s: tick failed: %s", self.label, error)
            await asyncio.sleep(TICK_SECONDS)

    async def _sample(self) -> None:
        """Every `SAMPLE_SECONDS`: a `CostMeter` sample (CPU seconds of this process per
        update worked off), which the latency bounds of admission read."""
        while True:
            self.admission.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    async def _follow_backlog(self) -> None:
        """Every `FOLLOW_SECONDS`: the run's unmerged stream and the merger's pace (so the
        back-pressure costs nothing per request)."""
        while True:
            try:
                await self.backlog.read(self.redis, self.keys)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("%s: backlog read failed: %s", self.label, error)
            await asyncio.sleep(FOLLOW_SECONDS)

    async def _forget_idle_sessions(self) -> None:
        """Sessions idle past `session_timeout` leave the live set (`scripts.FORGET`)."""
        await self.scripts["FORGET"](
            keys=[self.keys.sessions, self.keys.parties, self.keys.shard_load],
            args=[self.keys.session_prefix, time.time() - self.config.session_timeout, 1000])

    async def _read_run(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.control)
        pipe.hget(self.keys.meta, "started")
        control, started = await pipe.execute()
        self.run = RunState.from_hash(control)
        if started:
            self.started = float(_text(started))

    def _on_event(self, event: str, data: dict) -> None:
        if event == "state":
            task = asyncio.ensure_future(self._read_run())
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)

    def _on_version(self, info: Any) -> None:
        self.bus.publish("merge", {"version": info.version, "steps": info.steps,
                                   "merges": info.merges})

    def elapsed(self, run: RunState | None = None) -> float:
        """Seconds since the run started (frozen at its end); every front-end computes it from
        the start time in Redis."""
        run = run or self.run
        if run.ended_elapsed is not None:
            return run.ended_elapsed
        return max(0.0, time.time() - self.started)

    def _observe(self) -> None:
        current = self.versions.current
        if current is not None:
            self.metrics.base.version.set(current.version)
            self.metrics.base.steps.set(current.steps)
        self.metrics.base.body_bytes.set(self.admission.bodies.used)

    # -- sessions ----------------------------------------------------------------------------
    async def session(self, request: web.Request) -> dict[str, str]:
        """The session of the request's ``X-WebNN-Session`` (401 ``unknown_session``); touches
        it (its expiry and last-seen time)."""
        token = request.headers.get(SESSION_HEADER)
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise _unknown_session()
        key = self.keys.session(token)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.zscore(self.keys.sessions, token)
        pipe.expire(key, self._session_keep())
        pipe.zadd(self.keys.sessions, {token: time.time()}, xx=True)
        fields, seen, _, _ = await pipe.execute()
        if not fields or seen is None:  # never joined, left, or forgotten when idle
            raise _unknown_session()
        found = {_text(k): _text(v) for k, v in fields.items()}
        found["token"] = token
        return found

    def check_cut_off(self, found: dict[str, str]) -> None:
        """``429 cut_off`` while the session serves its cut-off (`NOTE_INVALID`; the answer is
        the single process's, `CutOff.check`)."""
        CutOff(self.config.max_invalid_updates, self.config.cut_off_seconds).check(
            float(found.get("cut_off_until") or 0), time.time())

    async def note_invalid(self, token: str, code: str) -> None:
        """A refused submission: counted for the run; one of `INVALID_UPDATE_CODES` counts
        toward the session's cut-off (shared by every front-end: the streak is in Redis)."""
        self.metrics.base.updates_rejected.labels(code).inc()
        await self.scripts["NOTE_INVALID"](
            keys=[self.keys.session(token), self.keys.stats],
            args=[code, "1" if code in INVALID_UPDATE_CODES else "0",
                  self.config.max_invalid_updates, self.config.cut_off_seconds])

    def _party(self, found: dict[str, str]) -> Party:
        if not self.config.eval_distinct_parties:
            return ANYONE
        return Party.of(found.get("address"), found.get("volunteer"))

    def _session_keep(self) -> int:
        """Seconds a session's hash outlives its last request: past the idle timeout by a few
        ticks, so the front-end that forgets it (`scripts.FORGET`) still reads its shard."""
        return math.ceil(self.config.session_timeout + 10 * TICK_SECONDS)

    async def join(self, request: web.Request) -> web.Response:
        require_join_token(request)
        address = address_key(client_address(request.remote,
                                             request.headers.get("X-Forwarded-For"),
                                             frozenset(self.config.trusted_proxies)))
        if await self.redis.zcard(self.keys.sessions) >= self.config.max_sessions:
            raise busy(f"the run holds its cap of {self.config.max_sessions} sessions", 30)
        if self.config.joins_per_minute > 0:
            wait = float(_text(await self.scripts["JOIN"](
                keys=[self.keys.joins(address)],
                args=[self.config.joins_per_minute / 60.0, self.config.join_burst])))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                await self.redis.hincrby(self.keys.stats, "refused:rate_limited", 1)
                raise ProtocolError(
                    429, "rate_limited",
                    f"too many joins from {address} (limit {self.config.joins_per_minute:g} "
                    f"per minute); retry in {seconds} s", headers={"Retry-After": str(seconds)})
        body = await read_json(request, allow_empty=True)
        info = client_info(body)
        encodings = negotiate(parse_offer(body.get("encodings")), self.config.update_encoding,
                              self.config.weights_encoding,
                              exact_base=self.strategy.needs_base_weights)
        token = secrets.token_urlsafe(24)
        number = await self.redis.hincrby(self.keys.stats, "joined", 1)
        client_id = f"c-{number}"
        now = time.time()
        record: dict[str, str] = {"clientId": client_id, "kind": info["kind"], "joined": repr(now),
                  "update": encodings.update, "weights": encodings.weights,
                  "frontend": self.label, "updates": "0"}
        for key in ("name", "userAgent", "backend"):
            if info.get(key):
                record[key] = info[key]
        record["address"] = address
        if info.get("volunteerId"):
            record["volunteer"] = info["volunteerId"]
        party = Party.of(address, info.get("volunteerId"))
        clients = await self.redis.zcard(self.keys.sessions) + 1
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.session(token), mapping=record)
        pipe.expire(self.keys.session(token), self._session_keep())
        pipe.zadd(self.keys.sessions, {token: now})
        pipe.hset(self.keys.parties, token, json.dumps([party.address, party.volunteer]))
        pipe.publish(self.keys.events, event_message("client", {
            "event": "join", "clientId": client_id, "kind": info["kind"], "clients": clients}))
        await pipe.execute()
        return json_response({
            "token": token, "clientId": client_id, "model": self.model_description(request),
            "leaseSeconds": self.config.lease_seconds, "pollSeconds": self.config.poll_seconds,
            "state": self.run.state, "encodings": encodings.public()})

    async def leave(self, request: web.Request) -> web.Response:
        if request.headers.get(SESSION_HEADER):
            found = await self.session(request)
            token = found["token"]
        else:
            value = (await read_json(request, allow_empty=True)).get("token")
            if not isinstance(value, str) or not await self.redis.exists(
                    self.keys.session(value)):
                raise _unknown_session()
            token = value
        client_id = await self.redis.hget(self.keys.session(token), "clientId")
        await self.scripts["LEAVE"](
            keys=[self.keys.session_tasks(token), self.keys.returned, self.keys.leases,
                  self.keys.session(token), self.keys.sessions, self.keys.eval_leases,
                  self.keys.parties, self.keys.shard_load],
            args=[self.keys.task_prefix, token, TASK_KEEP_SECONDS])
        # after the session is gone: an update of it accepted meanwhile cannot add it again
        await self.task_rate.left(self.redis, token)
        await self.redis.publish(self.keys.events, event_message("client", {
            "event": "leave", "clientId": _text(client_id or ""),
            "clients": await self.redis.zcard(self.keys.sessions)}))
        return json_response({"left": True})

    # -- model, tasks, weights, batches -----------------------------------------------------
    def model_description(self, request: web.Request) -> dict:
        current = self.versions.current
        assert current is not None
        spec = self.spec
        return {
            "name": spec.name, "topology": spec.compiled.topology,
            "weightsManifest": self.layout.manifest(),
            "training": {"loss": spec.loss, "optimizer": spec.optimizer,
                         "learningRate": spec.learning_rate, "metrics": list(spec.metrics),
                         "batchSize": self.batch_size, "localSteps": self.local_steps},
            "version": current.version, "steps": current.steps,
            "totalParams": self.layout.size, "project": spec.project_public(),
            "urls": {"weights": url(request, "weights"), "tasks": url(request, "tasks"),
                     **static_urls(request)},
        }

    async def model(self, request: web.Request) -> web.Response:
        if self.config.join_token is not None:
            await self.session(request)
        return json_response(self.model_description(request))

    async def tasks(self, request: web.Request) -> web.Response:
        found = await self.session(request)
        body = await read_json(request, allow_empty=True)
        role = body.get("role", "any")
        if role not in ROLES:
            raise bad_field("$.role", f"must be one of {list(ROLES)}, got {role!r}")
        self.check_cut_off(found)
        return json_response(await self.lease(request, found, role))

    async def lease(self, request: web.Request, found: dict[str, str], role: str) -> dict:
        """A task request's answer: a chunk of the evaluation in progress first (roles
        ``evaluate`` and ``any``), else a training task, else ``{"task": null, ...}`` (paused,
        finishing or ended runs hand out no training; under ingest pressure training is
        deferred)."""
        token = found["token"]
        run = self.run
        none = {"task": None, "retryAfter": self.config.poll_seconds, "state": run.state}
        if run.state != "running":
            return none
        if role in ("evaluate", "any"):
            chunk = await self.desk.lease(token, self._party(found), self.config.lease_seconds,
                                          self.config.max_open_tasks)
            if chunk is not None:
                self.metrics.base.tasks_issued.labels("evaluate").inc()
                return {"task": self._eval_payload(request, chunk)}
        if role == "evaluate" or run.finishing is not None:
            return none
        deferred = self.backlog.deferring()  # the merger is behind: fewer uploads to come
        if deferred:
            self.admission.deferred.tick(self.admission.clock())
        if deferred or not self.admission.admit_train_lease(self.share.open_here(),
                                                             self.in_flight):
            self.refused["deferred"] += 1  # no task now: the client asks again later
            return {**none, "retryAfter": self.admission.defer_seconds(
                self.config.poll_seconds)}
        current = self.versions.current
        assert current is not None
        shard = await self._shard(found)
        task_id = "t-" + secrets.token_hex(8)
        answer = await self.scripts["LEASE"](
            keys=[self.keys.leases, self.keys.returned, self.keys.next_batch, self.keys.stats,
                  self.keys.session(token), self.keys.session_tasks(token), self.keys.control],
            args=[self.keys.task_prefix, self.keys.session_tasks_prefix, TASK_KEEP_SECONDS,
                  task_id, current.version, current.steps, token, self.config.lease_seconds,
                  self.config.max_open_tasks, shard])
        status = _text(answer[0])
        if status == "unknown_session":
            raise _unknown_session()
        if status == "idle":  # paused, finishing or ended since this process last looked
            await self._read_run()
            return {**none, "state": self.run.state}
        if status == "too_many_tasks":
            raise ProtocolError(429, "too_many_tasks",
                                f"this session holds its cap of {self.config.max_open_tasks} "
                                "open tasks; finish or wait for one",
                                {"Retry-After": str(max(1, round(self.config.poll_seconds)))})
        self.metrics.base.tasks_issued.labels("train").inc()
        expires = float(_text(answer[2]))
        self.share.leased(int(answer[3]) if len(answer) > 3 else None)
        return {"task": {
            "id": task_id, "kind": "train", "version": current.version, "steps": current.steps,
            "examples": self.examples, "leaseSeconds": self.config.lease_seconds,
            "leaseExpires": expires, "localSteps": self.local_steps,
            "batchSize": self.batch_size,
            "learningRate": await self.task_rate.leased(self.redis, token),
            "urls": {"weights": url(request, "weights_version", version=str(current.version)),
                     "batch": url(request, "batch", task_id=task_id),
                     "submit": url(request, "update", task_id=task_id)}}}

    async def _shard(self, found: dict[str, str]) -> int:
        """The session's data shard (0 without a partition): kept once given, a volunteer's
        own across sessions (`scripts.ASSIGN`, the single process's `ShardAssigner` rule)."""
        if self.shards is None:
            return 0
        if found.get("shard"):
            return int(found["shard"])
        shard = int(_text(await self.scripts["ASSIGN"](
            keys=[self.keys.volunteers, self.keys.shard_load, self.keys.session(found["token"])],
            args=[found.get("volunteer", ""), len(self.shards), MAX_VOLUNTEERS])))
        found["shard"] = str(shard)
        return shard

    def _eval_payload(self, request: web.Request, lease: EvalLease) -> dict:
        return {"id": lease.id, "kind": "evaluate", "version": lease.version,
                "steps": lease.steps, "examples": lease.examples,
                "leaseSeconds": self.config.lease_seconds, "leaseExpires": lease.expires,
                "chunk": lease.chunk,
                "urls": {"weights": url(request, "weights_version", version=str(lease.version)),
                         "batch": url(request, "batch", task_id=lease.id),
                         "submit": url(request, "evaluation", task_id=lease.id)}}

    async def _wire(self, version: int | None, encoding: str) -> tuple[Any, bytes]:
        """A version's info and bytes in a weights encoding (``f32``, or ``f16``)."""
        info, blob = await self.versions.weights(version)
        if encoding == "f16":
            blob = await self.versions.half(info, blob)
        return info, blob

    async def _weights_encoding(self, request: web.Request) -> str:
        """The weights encoding of the request's session (``f32`` without one)."""
        if self.config.join_token is not None:
            return (await self.session(request)).get("weights", "f32")
        token = request.headers.get(SESSION_HEADER)
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return "f32"
        found = await self.redis.hget(self.keys.session(token), "weights")
        return _text(found) if found else "f32"

    async def weights(self, request: web.Request, version: int | None) -> web.Response:
        """A version's weights (`weights_answer`, the single process's answer) under an ETag
        that also names their digest: a new run in the same Redis numbers its versions from 0
        again, so the number alone could name other weights."""
        encoding = await self._weights_encoding(request)
        info, blob = await self._wire(version, encoding)
        reservation = reserve_answer(request, self.answers,  # 503 busy beyond the budget
                                     weights_etag(info.version, encoding, info.digest), len(blob))
        response, sent = weights_answer(request, version=info.version, steps=info.steps,
                                        data=blob, encoding=encoding, tag=info.digest,
                                        reservation=reservation)
        if sent:
            self.traffic.weights(encoding, len(blob))
        return response

    async def _task(self, token: str, task_id: str) -> dict[str, str]:
        fields = await self.redis.hgetall(self.keys.task(task_id))
        if not fields:
            raise ProtocolError(404, "unknown_task", f"no task {task_id!r} (never issued, or "
                                "finished long ago)")
        task = {_text(k): _text(v) for k, v in fields.items()}
        if task["session"] != token:
            raise ProtocolError(403, "not_your_task", f"task {task_id} was handed to another "
                                "session")
        return task

    async def batch(self, request: web.Request) -> web.Response:
        found = await self.session(request)
        task_id = request.match_info["task_id"]
        task = await self._task(found["token"], task_id)
        if task["state"] == "expired":
            raise _lease_expired(task_id)
        if task["state"] == "done":
            raise ProtocolError(409, "task_closed", f"task {task_id} is finished")
        if task.get("kind") == "evaluate":
            return web.Response(body=self.desk.frames[int(task["chunk"])],
                                content_type=FRAME_TYPE)
        return web.Response(body=self._batch_frame(int(task["index"]),
                                                   int(task.get("shard") or 0)),
                            content_type=FRAME_TYPE)

    def _batch_frame(self, index: int, shard: int = 0) -> bytes:
        """Batch `index` of the run's data sequence (the same for every front-end: the data
        module's `train_batches` from `start=index`; with a partition, shard `shard`'s batch
        `index`, ``shard_batch_indices`` read through ``train_examples``, as the single
        process's `BatchFeed`), encoded once and cached."""
        frame = self._batches.get((shard, index))
        if frame is None:
            dataset = self.parts.dataset
            if self.shards is None:
                batches = iter(dataset.train_batches(self.examples, self.parts.seed,
                                                     start=index))
            else:
                positions = shard_batch_indices(self.shards[shard], self.examples,
                                                self.parts.seed, shard, index)
                batches = (dataset.train_examples(p) for p in positions)
            batch = next(batches)
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            x, y = frame_array(batch.x), frame_array(batch.y)
            frame = encode_frame({"kind": "train", "index": index, "examples": int(x.shape[0])},
                                 {"x": x, "y": y})
            self._batches[(shard, index)] = frame
            while len(self._batches) > BATCH_CACHE:
                self._batches.popitem(last=False)
        return frame

    # -- updates -----------------------------------------------------------------------------
    async def update(self, request: web.Request) -> web.StreamResponse:
        try:  # refused before its body is read: close, never read (and discard) the body
            found = await self.session(request)
            token, task_id = found["token"], request.match_info["task_id"]
            task = await self._task(token, task_id)
            if task.get("kind") == "evaluate":
                raise ProtocolError(404, "unknown_task", f"task {task_id} is an evaluate task, "
                                    "not a train task")
            if task["state"] == "done":
                return json_response(json.loads(task["answer"]))
            if task["state"] == "expired":
                raise _lease_expired(task_id)
            self._check_can_merge()
            if task["state"] == "claimed":
                raise busy(f"task {task_id}'s update is being written; repeat the request", 1)
            self.check_cut_off(found)
        except ProtocolError as error:
            raise closing(error, request.content_length) from None
        self._note_upload(task_id, task)
        try:
            require_content_type(request, FRAME_TYPE)
            self._check_backlog(request.content_length)
            self._reading += 1
            try:
                body = await self.ingest.read(request, self.in_flight)
            finally:
                self._reading -= 1
        except ProtocolError as error:
            if error.code == "busy":
                self.refused["busy"] += 1
            await self._refused(error.code, token)
            raise
        self.in_flight += 1
        self._arriving.add(task_id)
        encoding = found.get("update", "f32")
        try:
            answer = await self._accept(found, task_id, task, body.data)
            self.metrics.base.update_bytes.labels(encoding).inc(body.length)
            self.metrics.base.update_bodies.labels(encoding).inc()
            self.traffic.update(encoding, body.length)
        finally:
            self.in_flight -= 1
            self._arriving.discard(task_id)
            self.admission.note_merged()  # worked off, accepted or refused
            body.release()
        role = answer.pop("_next", None)
        if role is not None:
            answer["next"] = await self.lease(request, found, role)
            task = answer["next"].get("task")
            if task is not None and FRAME_TYPE in request.headers.get("Accept", ""):
                return await self._follow_up(request, answer, task, found)
        return json_response(answer)

    def _on_their_way(self) -> int:
        """Update bodies being read here, or read and still being decoded, screened or claimed:
        the combiner keeps its group open for them (`combiner.py`)."""
        return self._reading + len(self._arriving)

    def _check_backlog(self, declared: int | None) -> None:
        """``503 busy`` before the body is read while the unmerged stream holds more than the
        budget of the merger's work (`backlog.py`); counted as admission's refusals."""
        if not self.backlog.over():
            return
        admission = self.admission
        admission.refused.tick(admission.clock())
        raise closing(self.backlog.refusal(admission.retry_seconds()), declared)

    def _note_upload(self, task_id: str, task: dict[str, str]) -> None:
        """The first upload of an open task: its lease-to-upload time (the lease's start is
        its deadline less `lease_seconds`, Redis's clock) feeds admission's lease bound."""
        if task_id in self._uploaded:
            return
        self._uploaded[task_id] = None
        while len(self._uploaded) > UPLOADS_REMEMBERED:
            self._uploaded.popitem(last=False)
        with contextlib.suppress(KeyError, ValueError):
            issued = float(task["expires"]) - self.config.lease_seconds
            self.admission.note_upload(time.time() - issued)

    async def _follow_up(self, request: web.Request, answer: dict, task: dict,
                         found: dict[str, str]) -> web.StreamResponse:
        """The update's answer as a frame carrying its follow-up task's weights (in the
        session's weights encoding) and batch (`follow_up_pieces`, as the single process)."""
        encoding = found.get("weights", "f32")
        try:
            info, wire = await self._wire(int(task["version"]), encoding)
        except ProtocolError:  # the version went meanwhile: the answer goes as JSON
            return json_response(answer)
        if task["kind"] == "evaluate":
            frame = self.desk.frames[int(task["chunk"])]
        else:
            fields = await self.redis.hmget(self.keys.task(task["id"]), "index", "shard")
            frame = self._batch_frame(int(_text(fields[0])), int(_text(fields[1] or b"0")))
        reservation = self.answers.reserve(follow_up_bytes(len(wire), frame), REFUSED_FOLLOW_UP,
                                           answer_address(request, self.answers))
        if reservation is None:  # model-sized answers fill their budget: JSON, `next` included
            return json_response(answer)
        return await follow_up_frame(request, {"protocol": 1, **answer}, memoryview(wire),
                                     split_frame(frame), encoding,
                                     weights_etag(info.version, encoding, info.digest),
                                     reservation)

    def _check_can_merge(self) -> None:
        """``409 finishing`` / ``409 ended`` as this process last saw the run (COMMIT checks
        Redis's own state in the same step as the write)."""
        run = self.run
        if run.state == "ended":
            raise _ended(run.end_reason)
        if run.finishing is not None:
            raise _finishing(run.end_reason)

    async def _accept(self, found: dict[str, str], task_id: str, task: dict[str, str],
                      data: memoryview) -> dict:
        version, steps = int(task["version"]), int(task["steps"])
        encoding = found.get("update", "f32")
        try:
            weights, header = decode_update(data, self.layout, task_id=task_id,
                                            task_version=version, max_steps=self.local_steps,
                                            encoding=encoding)
        except ProtocolError as error:
            await self._refused(error.code, found["token"])
            raise
        current = self.versions.current
        assert current is not None
        staleness = max(0, current.version - version)
        try:
            if self.max_staleness is not None and staleness > self.max_staleness:
                raise ProtocolError(409, "too_stale", f"the update is {staleness} versions "
                                    f"behind; at most {self.max_staleness} are merged")
            try:
                base = await self.versions.array(version)
            except ProtocolError:
                raise ProtocolError(409, "too_stale", f"version {version} is no longer held "
                                    f"(the run keeps {self.keep_versions})") from None
        except ProtocolError as error:
            await self._give_back(task_id)
            await self._refused(error.code, found["token"])
            raise
        if isinstance(weights, EncodedUpdate):
            weights = weights.decode_into(np.empty(self.layout.size, np.float32), self.layout,
                                          base)
        try:
            clipped = await asyncio.to_thread(self._screen, weights, base)
        except ProtocolError as error:
            await self._refused(error.code, found["token"])
            raise
        claim = await self.scripts["CLAIM"](
            keys=[self.keys.task(task_id), self.keys.leases, self.keys.returned,
                  self.keys.stats, self.keys.session_tasks(found["token"])],
            args=[task_id, found["token"], self.label, self.settings.claim_seconds,
                  TASK_KEEP_SECONDS])
        status = _text(claim[0])
        if status == "done":
            return json.loads(_text(claim[1]))
        if status == "lease_expired":
            raise _lease_expired(task_id)
        if status == "claimed":
            raise busy(f"task {task_id}'s update is being written; repeat the request", 1)
        if status != "ok":
            raise ProtocolError(404, "unknown_task", f"no task {task_id!r}")
        update = Update(weights=weights, base_version=version, base_steps=steps,
                        local_steps=header.steps, staleness=staleness, client=found["clientId"],
                        base_weights=base if self.strategy.needs_base_weights else None,
                        examples=self.examples)
        answer: dict[str, Any] = {"accepted": True, "version": current.version, "merged": False,
                  "durable": True, "staleness": staleness, "steps": current.steps,
                  "merges": current.merges, "clipped": clipped}
        try:
            if self.combiner is not None:
                self._arriving.discard(task_id)
                await self.combiner.add(task_id, update, json.dumps(answer))
            else:
                pin = version if self.strategy.needs_base_weights else None
                await self._commit([task_id], [json.dumps(answer)],
                                   update_fields([task_id], update, self.label), pin)
        except CommitLost as lost:
            # another task of the combined group lost its claim, so nothing of the group was
            # written (its weights were folded away): this one goes back to open, and the
            # client sends the same upload again
            if str(lost) != task_id and await self.scripts["UNCLAIM"](
                    keys=[self.keys.task(task_id)], args=[self.label]):
                raise busy(f"task {task_id}'s update was not written (another update of its "
                           "group lost its claim); repeat the request", 1) from None
            raise _lease_expired(task_id) from None
        self.metrics.base.updates_accepted.inc()
        self.metrics.base.staleness.observe(staleness)
        await self.redis.hincrby(self.keys.session(found["token"]), "updates", 1)
        await self.task_rate.accepted(self.redis, found["token"],
                                      self.keys.session(found["token"]))
        if header.next_role in ("train", "any"):
            answer["_next"] = header.next_role
        return answer

    def _screen(self, weights: np.ndarray, base: np.ndarray) -> bool:
        """Finiteness and the delta norm in one pass, then the screen (in a worker thread);
        True when the update was clipped. Raises the refusal."""
        check = check_weights(weights, base, norm=self.screen is not None)
        if not check.finite:
            raise not_finite_error(check.bad, check.first, self.layout)
        if self.screen is None:
            return False
        verdict = self.screen.check(weights, base, norm=check.norm)
        if verdict.refused:
            raise ProtocolError(400, verdict.reason or "norm_too_large", verdict.message)
        return verdict.action == "clipped"

    async def _commit(self, tasks: list[str], answers: list[str],
                      fields: list[bytes | str], base_version: int | None = None) -> str:
        """Add one stream entry for `tasks` and mark them done (`scripts.COMMIT`), pinning
        `base_version` (kept until the merger applied the entry); raises `CommitLost` when one
        of them is no longer claimed by this process, and ``409 too_stale`` (the task given
        back) when the base version was dropped since it was read."""
        pin = "" if base_version is None else str(base_version)
        # the model-sized array goes in a plain SET and only the small fields through the
        # script, in one MULTI/EXEC: the script keeps the payload with the entry or deletes it
        payload = self.keys.payload(f"{self.label}:{secrets.token_hex(8)}")
        small, data = detach(fields, payload)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(payload, data, px=PAYLOAD_EXPIRY_MS)
        await self.scripts["COMMIT"](
            keys=[self.keys.stream, self.keys.leases, self.keys.stats, self.keys.control,
                  self.keys.bases,
                  "" if base_version is None else self.keys.version(base_version),
                  self.keys.checkpoint, payload],
            args=[self.label, self.keys.task_prefix, self.keys.session_tasks_prefix,
                  TASK_KEEP_SECONDS, len(tasks), pin, *tasks, *answers, *small],
            client=pipe)
        _, result = await pipe.execute()
        status = _text(result[0])
        if status == "too_stale":
            for task_id in tasks:
                await self._give_back(task_id)
            raise ProtocolError(409, "too_stale", f"version {base_version} is no longer held "
                                f"(the run keeps {self.keep_versions})")
        if status in ("finishing", "ended"):
            await self._read_run()
            await self.redis.hincrby(self.keys.stats, f"rejected:{status}", len(tasks))
            reason = self.run.end_reason
            raise _ended(reason) if status == "ended" else _finishing(reason)
        if status == "no_payload":  # written in the same transaction: Redis lost it
            raise RuntimeError(f"stream entry payload {_text(result[1])} missing in COMMIT")
        if status != "ok":
            raise CommitLost(_text(result[1]))
        self.metrics.entries.inc()
        self.metrics.entry_bytes.inc(sum(len(f) for f in fields))
        self.backlog.note_written()
        return _text(result[1])

    async def _give_back(self, task_id: str) -> None:
        """A refused-too-stale task: its batch goes back to the queue now (expired), unless the
        task moved on meanwhile (`scripts.GIVE_BACK`, one step)."""
        await self.scripts["GIVE_BACK"](keys=[self.keys.task(task_id), self.keys.leases],
                                        args=[task_id, self.label])

    async def _refused(self, code: str, token: str) -> None:
        await self.note_invalid(token, code)

    async def evaluation(self, request: web.Request) -> web.Response:
        """An evaluation result: checked at the door (impossible values refused and counted
        toward the cut-off), then recorded for its chunk (`EvaluationDesk.record`)."""
        found = await self.session(request)
        token, task_id = found["token"], request.match_info["task_id"]
        task = await self._task(token, task_id)
        if task.get("kind") != "evaluate":
            raise ProtocolError(404, "unknown_task", f"task {task_id} is a train task, not an "
                                "evaluate task")
        if task["state"] == "done":
            return json_response(json.loads(task["answer"]))
        if task["state"] == "expired":
            raise _lease_expired(task_id)
        self.check_cut_off(found)
        try:
            body = await read_json(request)
            check_evaluation_bounds(body, signed_loss=self.spec.loss in SIGNED_LOSSES)
            result = self.desk.parse(task, body)
        except ProtocolError as error:
            await self.note_invalid(token, error.code)
            raise
        return json_response(await self.desk.record(token, task_id, task, result))

    # -- admin -------------------------------------------------------------------------------
    async def set_state(self, request: web.Request, before: str, after: str) -> web.Response:
        """Pause (running -> paused) or resume (paused -> running) for every front-end."""
        require_admin(request)
        await self.scripts["STATE"](
            keys=[self.keys.control, self.keys.events],
            args=[before, after, event_message("state", {"state": after})])
        await self._read_run()
        return json_response(await self.status())

    async def end(self, request: web.Request) -> web.Response:
        """End the run now, without a final evaluation (the admin's end)."""
        require_admin(request)
        await self._read_run()
        await self.writer.write(
            expected="*", json_text="",
            guards=[("ne", self.keys.control, "state", "ended")],
            commands=end_commands(self.keys, "ended by the admin", self.elapsed()))
        await self._read_run()
        return json_response(await self.status())

    async def require_reader(self, request: web.Request) -> None:
        """With `private_status`: a joined session (in Redis) or the admin token."""
        if not self.config.private_status:
            return
        try:
            require_admin(request)
            return
        except ProtocolError:
            pass
        token = request.headers.get(SESSION_HEADER)
        if not (token and len(token) <= MAX_TOKEN_CHARS and token.isascii()
                and await self.redis.exists(self.keys.session(token))):
            raise ProtocolError(401, "private_status",
                                "this server keeps clients, history and events private: send "
                                "the X-WebNN-Session of a joined session or Authorization: "
                                "Bearer <admin token>")

    async def history(self) -> list[dict]:
        """The run's history (the merger appends; every front-end reads the same list)."""
        return [json.loads(h) for h in await self.redis.lrange(self.keys.history, 0, -1)]

    # -- status, history, clients, metrics ---------------------------------------------------
    async def status(self) -> dict:
        """The run's status, computed from Redis only (the same on every front-end)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.current)
        pipe.hgetall(self.keys.stats)
        pipe.zcard(self.keys.sessions)
        pipe.zcard(self.keys.leases)
        pipe.hgetall(self.keys.meta)
        pipe.xlen(self.keys.stream)
        pipe.hget(self.keys.checkpoint, "applied")
        pipe.hgetall(self.keys.control)
        pipe.lrange(self.keys.history, -HISTORY_TAIL, -1)
        pipe.hgetall(self.keys.evaluation)
        pipe.zcard(self.keys.eval_leases)
        pipe.hgetall(self.keys.shard_load)
        pipe.hlen(self.keys.volunteers)
        (current, stats, clients, leases, meta, length, applied, control, history,
         evaluation, eval_leases, load, volunteers) = await pipe.execute()
        stats = {_text(k): int(v) for k, v in stats.items()}
        meta = {_text(k): _text(v) for k, v in meta.items()}
        if meta.get("started"):
            self.started = float(meta["started"])
        run = RunState.from_hash(control)
        entries = [json.loads(h) for h in history]
        last = entries[-1] if entries else None
        validated = _last_validated(entries)
        if validated is None and len(entries) == HISTORY_TAIL:  # look further back
            validated = _last_validated(await self.history())
        in_progress = stored_from(evaluation).evaluation
        return {
            "protocol": 1, "name": self.spec.name, "state": run.state,
            "endReason": run.end_reason, "finishing": run.finishing is not None,
            "finishingDeadline": (None if run.finishing is None
                                  else run.finishing + finish_seconds(self.config)),
            "version": int(current.get(b"version", 0)), "steps": int(current.get(b"steps", 0)),
            "merges": int(current.get(b"merges", 0)), "clients": clients,
            "elapsed": round(self.elapsed(run), 3),
            "lastEvaluation": last, "lastValidatedEvaluation": validated,
            "evaluating": None if in_progress is None else {
                "version": in_progress.version, "chunks": len(in_progress.chunk_examples),
                "done": len(in_progress.results), "quorum": in_progress.quorum},
            "strategy": {"name": self.strategy.name, "params": self.strategy.effective_params(),
                         "report": json.loads(meta.get("report") or "{}")},
            "project": self.spec.project_public(),
            "endConditions": {"targetAccuracy": self.config.target_accuracy,
                              "maxMerges": self.config.max_merges,
                              "maxSeconds": self.config.max_seconds},
            "partition": self._partition_status(load, volunteers),
            "openTasks": {"train": leases, "evaluate": eval_leases},
            "rejected": {k.split(":", 1)[1]: v for k, v in sorted(stats.items())
                         if k.startswith("rejected:")},
            "traffic": traffic_summary(stats),
            "capacity": self.capacity(),
            "httpRefused": dict(self.metrics.base.http_refusals),
            "cluster": {"run": self.keys.run, "tasksIssued": stats.get("tasks_issued", 0),
                        "leasesExpired": stats.get("leases_expired", 0),
                        "updatesDurable": stats.get("updates_durable", 0),
                        "streamEntries": stats.get("stream_entries", 0),
                        "streamLength": length,
                        "checkpointEntry": _text(applied) if applied else None,
                        "merger": _text(meta.get("merger", "")) or None},
        }

    def capacity(self) -> dict:
        """Status's ``capacity`` block: this front-end's admission figures (the single
        process's fields, less the merge queue and snapshots, which are the merger's; `process`
        names the front-end that answered, `trainLeases` is its share of the run's;
        `mergeBacklog` the merger's back-pressure as this front-end last read it)."""
        a = self.admission
        return {
            "process": self.label, "bodyBytes": a.bodies.used,
            "bodyBudget": self.limits.body_budget, "bodiesInFlight": a.bodies.count,
            "updateCost": _rounded(a.meter.cost(), 5),
            "expectedWait": _rounded(a.expected_wait(0), 4),
            "updateLatency": self.limits.update_latency,
            "trainLeases": self.share.open_here(), "trainLeasesRun": self.share.open_run,
            "frontends": self.share.frontends,
            "trainLeaseLimit": a.train_lease_limit(),
            "leaseToUpload": _rounded(a.lease_to_upload, 4), "refused": dict(self.refused),
            "mergeBacklog": self.backlog.public(), **self.answers.public()}

    def _partition_status(self, load: dict, volunteers: int) -> dict:
        """The partition's settings, its shard count and, per shard, its load (volunteer ids
        assigned plus live anonymous sessions) and examples."""
        partition = self.parts.partition
        public = {"kind": "iid"} if partition is None else partition.public()
        count = 1 if self.shards is None else len(self.shards)
        public["shards"] = count
        loads = {int(_text(k)): int(v) for k, v in load.items()}
        public["perShard"] = None if self.shards is None or count > 256 else [
            {"shard": i, "examples": int(len(self.shards[i])), "load": loads.get(i, 0)}
            for i in range(count)]
        public["volunteers"] = volunteers
        return public

    async def clients(self) -> list[dict]:
        tokens = await self.redis.zrange(self.keys.sessions, 0, 999)
        pipe = self.redis.pipeline(transaction=False)
        for token in tokens:
            pipe.hgetall(self.keys.session(_text(token)))
        out = []
        for fields in await pipe.execute():
            if not fields:
                continue
            found = {_text(k): _text(v) for k, v in fields.items()}
            out.append({"clientId": found.get("clientId"), "kind": found.get("kind"),
                        "name": found.get("name"), "joined": float(found.get("joined", 0)),
                        "updatesAccepted": int(found.get("updates", 0)),
                        "frontend": found.get("frontend")})
        return out


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _unknown_session() -> ProtocolError:
    return ProtocolError(401, "unknown_session", "no session with that X-WebNN-Session token "
                         "(expired, never joined, or not ASCII): join again")


def _last_validated(entries: list[dict]) -> dict | None:
    """The newest history entry of a validated evaluation (as the single process)."""
    return next((h for h in reversed(entries)
                 if h.get("validated") and h.get("evaluated", True)), None)


def _finishing(reason: str | None) -> ProtocolError:
    return ProtocolError(409, "finishing", f"training is finishing ({reason}) with a final "
                         "evaluation; no more updates are merged. Ask for a task: the "
                         "evaluation's chunks are handed to every role")


def _ended(reason: str | None) -> ProtocolError:
    return ProtocolError(409, "ended", f"training has ended ({reason}); no more updates are "
                         "merged")


def _lease_expired(task_id: str) -> ProtocolError:
    return ProtocolError(409, "lease_expired", f"task {task_id}'s lease ran out; its batch was "
                         "handed out again")


def create_frontend_app(frontend: Frontend) -> web.Application:
    """The aiohttp app of one front-end: the protocol routes, /metrics and the static client."""
    app = web.Application(middlewares=[error_middleware, frontend.metrics.base.middleware()],
                          client_max_size=frontend.layout.nbytes + FRAME_OVERHEAD)
    app[CONFIG] = frontend.config
    app[METRICS] = frontend.metrics.base
    app[FRONTEND] = frontend
    f = frontend

    async def weights(request: web.Request) -> web.Response:
        return await f.weights(request, None)

    async def weights_version(request: web.Request) -> web.Response:
        version = decimal_param(request, "version", "unknown_version", "a model version number")
        return await f.weights(request, version)

    async def status(request: web.Request) -> web.Response:
        return json_response(await f.status())

    async def history(request: web.Request) -> web.Response:
        await f.require_reader(request)
        return json_response({"history": await f.history()})

    async def clients(request: web.Request) -> web.Response:
        await f.require_reader(request)
        return json_response({"clients": await f.clients(), "now": time.time()})

    async def events(request: web.Request) -> web.StreamResponse:
        await f.require_reader(request)
        return await stream_events(request, f.bus, await f.status())

    async def pause(request: web.Request) -> web.Response:
        return await f.set_state(request, "running", "paused")

    async def resume(request: web.Request) -> web.Response:
        return await f.set_state(request, "paused", "running")

    async def export_model_json(request: web.Request) -> web.Response:
        require_admin(request)
        current = f.versions.current
        assert current is not None
        return json_response(model_json(f.spec, "weights.bin"),
                             headers={"X-WebNN-Version": str(current.version)}, envelope=False)

    async def export_weights(request: web.Request) -> web.Response:
        require_admin(request)
        info, blob = await f.versions.weights(None)
        return web.Response(body=blob, content_type="application/octet-stream",
                            headers={"X-WebNN-Version": str(info.version),
                                     "X-WebNN-Steps": str(info.steps)})

    async def metrics(request: web.Request) -> web.Response:
        f._observe()
        text = await f.metrics.cluster_text(f.redis, f.keys)
        return web.Response(body=text, content_type="text/plain", charset="utf-8",
                            headers={"X-WebNN-Process": f.label})

    r = app.router
    r.add_post("/api/v1/join", f.join, name="join")
    r.add_get("/api/v1/model", f.model, name="model")
    r.add_post("/api/v1/tasks", f.tasks, name="tasks")
    r.add_get("/api/v1/weights", weights, name="weights")
    r.add_get("/api/v1/weights/{version}", weights_version, name="weights_version")
    r.add_get("/api/v1/tasks/{task_id}/batch", f.batch, name="batch")
    r.add_post("/api/v1/tasks/{task_id}/update", f.update, name="update")
    r.add_post("/api/v1/tasks/{task_id}/evaluation", f.evaluation, name="evaluation")
    r.add_post("/api/v1/leave", f.leave, name="leave")
    r.add_get("/api/v1/status", status, name="status")
    r.add_get("/api/v1/history", history, name="history")
    r.add_get("/api/v1/clients", clients, name="clients")
    r.add_post("/api/v1/admin/pause", pause, name="admin_pause")
    r.add_post("/api/v1/admin/resume", resume, name="admin_resume")
    r.add_post("/api/v1/admin/end", f.end, name="admin_end")
    r.add_get("/api/v1/export/model.json", export_model_json, name="export_model")
    r.add_get("/api/v1/export/weights.bin", export_weights, name="export_weights")
    r.add_get("/api/v1/events", events, name="events")
    r.add_get("/metrics", metrics, name="metrics")
    assert frontend.config.client_dir is not None
    add_static_routes(app, frontend.config.client_dir)
    return app
