"""The volunteer protocol (docs/protocol.md, version 1): join, model, tasks, weights, batches,
updates, evaluations, leave, plus the read-only status, history and client views."""

from __future__ import annotations

import asyncio
import unicodedata

from aiohttp import web

from webnn.server.addresses import party_address
from webnn.server.answer_budget import REFUSED_FOLLOW_UP
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
from webnn.server.coordinator import Coordinator
from webnn.server.encodings import negotiate, parse_offer
from webnn.server.errors import ProtocolError, bad_field
from webnn.server.follow_up import WEIGHT_DTYPES
from webnn.server.frames import CONTENT_TYPE as FRAME_TYPE
from webnn.server.http import (
    SESSION_HEADER,
    decimal_param,
    maybe_session,
    read_json,
    require_content_type,
    require_join_token,
    require_reader,
    session,
    url,
)
from webnn.server.ingest import closing
from webnn.server.keys import CONFIG, COORDINATOR
from webnn.server.static import static_urls
from webnn.server.tasks import ROLES, Task
from webnn.server.wire import json_response

CLIENT_KINDS = ("browser", "node", "python", "other")
MAX_TEXT = 200
FRAME_OVERHEAD = 1 << 20
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _coordinator(request: web.Request) -> Coordinator:
    return request.app[COORDINATOR]


def model_description(request: web.Request) -> dict:
    """The model as clients see it: topology, manifest, training settings, version, URLs."""
    coordinator = _coordinator(request)
    spec = coordinator.spec
    return {
        "name": spec.name,
        "topology": spec.compiled.topology,
        "weightsManifest": coordinator.layout.manifest(),
        "training": {"loss": spec.loss, "optimizer": spec.optimizer,
                     "learningRate": spec.learning_rate, "metrics": list(spec.metrics),
                     "batchSize": coordinator.batch_size, "localSteps": coordinator.local_steps},
        "version": coordinator.model.version,
        "steps": coordinator.current_steps,
        "totalParams": coordinator.layout.size,
        "project": spec.project_public(),
        "urls": {"weights": url(request, "weights"), "tasks": url(request, "tasks"),
                 **static_urls(request)},
    }


def task_payload(request: web.Request, task: Task) -> dict:
    coordinator = _coordinator(request)
    payload: dict = {
        "id": task.id, "kind": task.kind, "version": task.version, "steps": task.steps,
        "examples": task.work.examples, "leaseSeconds": request.app[CONFIG].lease_seconds,
        "leaseExpires": task.expires,
        "urls": {"weights": url(request, "weights_version", version=str(task.version)),
                 "batch": url(request, "batch", task_id=task.id)},
    }
    if task.kind == "train":
        # per task: the spec's values unless task scaling changed them (docs/scaling.md)
        rate = task.learning_rate
        payload.update(localSteps=coordinator.scaled.task_local_steps(task.work.examples),
                       batchSize=coordinator.batch_size,
                       learningRate=coordinator.spec.learning_rate if rate is None else rate)
        payload["urls"]["submit"] = url(request, "update", task_id=task.id)
    else:
        payload["chunk"] = task.work.chunk  # type: ignore[union-attr]
        payload["urls"]["submit"] = url(request, "evaluation", task_id=task.id)
    return payload


def _text(info: dict, key: str) -> str | None:
    """A client-supplied display string: at most `MAX_TEXT` characters, with control, format
    (bidi overrides, zero-width), surrogate, private-use and unassigned characters removed, so
    it shows as plain text on the dashboard and in logs."""
    value = info.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise bad_field(f"$.client.{key}", f"must be a string of at most {MAX_TEXT} characters")
    clean = "".join(c for c in value if unicodedata.category(c) not in _STRIPPED_CATEGORIES)
    return clean.strip() or None


MAX_VOLUNTEER_ID = 64


def _volunteer_id(info: dict) -> str | None:
    """``client.volunteerId``: an opaque id of 1-64 printable ASCII characters that keeps the
    client's data shard across sessions (docs/protocol.md "Join"); None when absent."""
    value = info.get("volunteerId")
    if value is None:
        return None
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_VOLUNTEER_ID
            and all(" " < c <= "~" for c in value)):
        raise bad_field("$.client.volunteerId", f"must be a string of 1-{MAX_VOLUNTEER_ID} "
                        "printable ASCII characters without spaces")
    return value


def client_info(body: dict) -> dict:
    """The join body's ``client`` object, checked (400 ``bad_field`` naming the JSON path) and
    cleaned: ``kind``, ``name``, ``userAgent``, ``backend``, ``volunteerId``."""
    info = body.get("client", {})
    if not isinstance(info, dict):
        raise bad_field("$.client", "must be an object")
    kind = info.get("kind", "browser")
    if kind not in CLIENT_KINDS:
        raise bad_field("$.client.kind", f"must be one of {list(CLIENT_KINDS)}, got {kind!r}")
    return {"kind": kind, **{k: _text(info, k) for k in ("name", "userAgent", "backend")},
            "volunteerId": _volunteer_id(info)}


async def join(request: web.Request) -> web.Response:
    require_join_token(request)
    body = await read_json(request, allow_empty=True)
    clean = client_info(body)
    config = request.app[CONFIG]
    # what the client offers, and the server's pick (f32 when it offers nothing: old clients)
    encodings = negotiate(parse_offer(body.get("encodings")), config.update_encoding,
                          config.weights_encoding,
                          exact_base=_coordinator(request).strategy.needs_base_weights)
    address = party_address(request.remote, request.headers.get("X-Forwarded-For"),
                            frozenset(config.trusted_proxies))
    joined = _coordinator(request).join(clean, encodings, address=address)
    return json_response({
        "token": joined.token, "clientId": joined.client_id, "model": model_description(request),
        "leaseSeconds": config.lease_seconds, "pollSeconds": config.poll_seconds,
        "state": _coordinator(request).state, "encodings": encodings.public(),
    })


async def model(request: web.Request) -> web.Response:
    maybe_session(request)
    return json_response(model_description(request))


async def tasks(request: web.Request) -> web.Response:
    coordinator = _coordinator(request)
    client = session(request)
    body = await read_json(request, allow_empty=True)
    role = body.get("role", "any")
    if role not in ROLES:
        raise bad_field("$.role", f"must be one of {list(ROLES)}, got {role!r}")
    coordinator.check_cut_off(client)
    return json_response(tasks_answer(request, coordinator.next_task(client, role)))


def tasks_answer(request: web.Request, task: Task | None) -> dict:
    """A task request's answer: ``{"task": Task}`` or ``{"task": null, "retryAfter", "state"}``."""
    if task is None:
        coordinator = _coordinator(request)
        return {"task": None, "retryAfter": coordinator.idle_retry_after(),
                "state": coordinator.state}
    return {"task": task_payload(request, task)}


def _weights_bytes(coordinator: Coordinator, encoding: str) -> int:
    """Bytes of the model's weights in a weights `encoding` (a weights answer's body)."""
    return coordinator.layout.size * WEIGHT_DTYPES[encoding][1]


def _weights_response(request: web.Request, version: int | None) -> web.Response:
    """A version's weights in the session's weights encoding (``f32`` without a session) under
    an ETag naming the run and the encoding (`answers.weights_etag`); ``503 busy`` beyond the
    answer budget, checked before the fetch ends its lease's hold on the version (so the
    retry finds it)."""
    maybe_session(request)
    coordinator = _coordinator(request)
    token = request.headers.get(SESSION_HEADER)
    encoding = coordinator.weights_encoding(token)
    shown = coordinator.model.version if version is None else version
    reservation = reserve_answer(request, coordinator.answers,
                                 weights_etag(shown, encoding, coordinator.run_id),
                                 _weights_bytes(coordinator, encoding))
    try:
        version, steps, data = coordinator.weights(version, token, encoding)
    except BaseException:
        if reservation is not None:
            reservation.release()
        raise
    response, sent = weights_answer(request, version=version, steps=steps, data=data,
                                    encoding=encoding, tag=coordinator.run_id,
                                    reservation=reservation)
    if sent:
        coordinator.note_weights_bytes(encoding, len(data))
    return response


async def weights(request: web.Request) -> web.Response:
    return _weights_response(request, None)


async def weights_version(request: web.Request) -> web.Response:
    version = decimal_param(request, "version", "unknown_version", "a model version number")
    return _weights_response(request, version)


async def batch(request: web.Request) -> web.Response:
    client = session(request)
    frame = _coordinator(request).batch(client, request.match_info["task_id"])
    return web.Response(body=frame, content_type=FRAME_TYPE)


async def update(request: web.Request) -> web.StreamResponse:
    """Read the body into a pooled buffer (after admission: ``503 busy`` when full, not counted
    against the client), merge it, answer; a retry gets the first answer, follow-up included."""
    coordinator = _coordinator(request)
    try:  # refused before its body is read: close, never read (and discard) the body
        client = session(request)
        task = coordinator.task(client, request.match_info["task_id"], "train")
        coordinator.note_upload(task)
        read = coordinator.check_update_task(client, task)
    except ProtocolError as error:
        raise closing(error, request.content_length) from None
    body = None
    if read:
        try:
            require_content_type(request, FRAME_TYPE)
            body = await coordinator.ingest.read(request, coordinator.merge_waiting)
        except ProtocolError as error:
            if error.code == "busy":
                coordinator.note_busy()
            else:
                coordinator.note_invalid(client, error.code)
            if error.code in ("wrong_content_type", "too_large"):
                raise closing(error, request.content_length) from None
            raise
    if body is None and task.pending is not None:
        # a copy of this update is being merged: share its verdict (awaited now, before the
        # merge can end and clear `pending`, which would leave this copy without a body)
        answer = await asyncio.shield(task.pending)
    else:
        merge = asyncio.ensure_future(
            coordinator.submit_update(client, task, None if body is None else body.data))
        if body is not None:  # the merge owns the buffer until it is over, even if cancelled
            merge.add_done_callback(lambda _: body.release())
        answer = await asyncio.shield(merge)
    follow = task.follow_up
    if follow is None:
        return json_response(answer)
    if not follow.answer:  # rendered once: a retry gets this very answer
        follow.answer = {**answer, "next": tasks_answer(request, follow.task)}
    inputs = reservation = None
    if (follow.task is not None and follow.task.state == "open"
            and FRAME_TYPE in request.headers.get("Accept", "")):
        # the frame's bytes in the answer budget before its inputs are taken (which ends the
        # lease's hold on its version); beyond it the answer goes as JSON, `next` included
        encoding = coordinator.weights_encoding(follow.task.session)
        reservation = coordinator.answers.reserve(follow_up_bytes(
            _weights_bytes(coordinator, encoding), coordinator.leases.batch_frame(follow.task)),
            REFUSED_FOLLOW_UP, answer_address(request, coordinator.answers))
        if reservation is not None:
            inputs = coordinator.follow_up_inputs(follow.task)
            if inputs is None:
                reservation.release()
    if inputs is None:  # no next task, JSON asked for, its inputs are gone (a late retry), or
        return json_response(follow.answer)  # model-sized answers fill their budget
    assert follow.task is not None  # inputs exist only for a next task
    encoding = coordinator.weights_encoding(follow.task.session)
    return await follow_up_frame(request, follow.answer, *inputs, encoding,
                                 weights_etag(follow.task.version, encoding, coordinator.run_id),
                                 reservation)


async def evaluation(request: web.Request) -> web.Response:
    coordinator = _coordinator(request)
    client = session(request)
    task = coordinator.task(client, request.match_info["task_id"], "evaluate")
    if task.result is not None:
        return json_response(task.result)
    coordinator.check_cut_off(client)
    try:
        body = await read_json(request)
        check_evaluation_bounds(body, signed_loss=coordinator.spec.loss in SIGNED_LOSSES)
    except ProtocolError as error:
        coordinator.note_invalid(client, error.code)
        raise
    return json_response(coordinator.submit_evaluation(client, task, body))


async def leave(request: web.Request) -> web.Response:
    """Leave; the token comes from the session header or, for `navigator.sendBeacon` (which cannot
    set headers), from a JSON body ``{"token": ...}``."""
    coordinator = _coordinator(request)
    if request.headers.get(SESSION_HEADER):
        client = session(request)
    else:
        token = (await read_json(request, allow_empty=True)).get("token")
        client = coordinator.session(token if isinstance(token, str) else None)
    coordinator.leave(client)
    return json_response({"left": True})


async def status(request: web.Request) -> web.Response:
    return json_response(_coordinator(request).status())


async def history(request: web.Request) -> web.Response:
    require_reader(request)
    return json_response({"history": _coordinator(request).history})


async def clients(request: web.Request) -> web.Response:
    require_reader(request)
    coordinator = _coordinator(request)
    now = coordinator.clock()
    return json_response({"clients": [s.public(now) for s in coordinator.sessions], "now": now})


def add_protocol_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/join", join, name="join")
    r.add_get("/api/v1/model", model, name="model")
    r.add_post("/api/v1/tasks", tasks, name="tasks")
    r.add_get("/api/v1/weights", weights, name="weights")
    r.add_get("/api/v1/weights/{version}", weights_version, name="weights_version")
    r.add_get("/api/v1/tasks/{task_id}/batch", batch, name="batch")
    r.add_post("/api/v1/tasks/{task_id}/update", update, name="update")
    r.add_post("/api/v1/tasks/{task_id}/evaluation", evaluation, name="evaluation")
    r.add_post("/api/v1/leave", leave, name="leave")
    r.add_get("/api/v1/status", status, name="status")
    r.add_get("/api/v1/history", history, name="history")
    r.add_get("/api/v1/clients", clients, name="clients")
