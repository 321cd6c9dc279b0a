"""Request helpers shared by the routes: bounded body reading, JSON parsing, tokens, URLs."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from webnn.server.errors import ProtocolError, bad_field
from webnn.server.keys import CONFIG, COORDINATOR
from webnn.server.sessions import Session

JSON_LIMIT = 64 * 1024
SESSION_HEADER = "X-WebNN-Session"


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413 ``too_large``) anything over `limit` bytes before reading it
    all. A body shorter than its Content-Length is answered ``truncated``."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ProtocolError(413, "too_large",
                            f"body of {declared} bytes exceeds this endpoint's limit of "
                            f"{limit} bytes")
    data = bytearray()
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ProtocolError(413, "too_large",
                                f"body exceeds this endpoint's limit of {limit} bytes")
    if declared is not None and len(data) != declared:
        raise ProtocolError(400, "truncated",
                            f"body holds {len(data)} bytes; Content-Length said {declared}")
    return bytes(data)


def require_content_type(request: web.Request, expected: str) -> None:
    if request.content_type != expected:
        raise ProtocolError(415, "wrong_content_type",
                            f"expected Content-Type {expected}, "
                            f"got {request.content_type or 'none'}")


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict:
    """A JSON object body (at most `JSON_LIMIT` bytes); an empty body is ``{}`` if allowed."""
    if allow_empty and request.content_length in (None, 0) and not request.can_read_body:
        return {}
    data = await read_body(request, JSON_LIMIT)
    if not data and allow_empty:
        return {}
    require_content_type(request, "application/json")
    try:
        body = json.loads(data.decode("utf-8"))
    except ValueError as error:  # bad UTF-8, bad JSON, or an integer too long to parse
        raise ProtocolError(400, "bad_json", f"body is not valid UTF-8 JSON: {error}") from None
    if not isinstance(body, dict):
        raise bad_field("$", f"must be a JSON object, got {type(body).__name__}")
    return body


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_admin(request: web.Request) -> None:
    expected = request.app[CONFIG].admin_token
    token = bearer(request)
    if token is None or expected is None or not secrets.compare_digest(token, expected):
        raise ProtocolError(401, "admin_token_required",
                            "this endpoint needs Authorization: Bearer <admin token>")


def require_join_token(request: web.Request) -> None:
    expected = request.app[CONFIG].join_token
    if expected is None:
        return
    token = bearer(request)
    if token is None or not secrets.compare_digest(token, expected):
        raise ProtocolError(401, "join_token_required",
                            "this server needs Authorization: Bearer <join token> to join")


def session(request: web.Request) -> Session:
    """The session named by the ``X-WebNN-Session`` header (401 ``unknown_session`` otherwise)."""
    return request.app[COORDINATOR].session(request.headers.get(SESSION_HEADER))


def maybe_session(request: web.Request) -> None:
    """Open endpoints need a session only when the server has a join token."""
    if request.app[CONFIG].join_token is not None:
        session(request)


def url(request: web.Request, name: str, **parts: str) -> str:
    """The absolute path of named route `name` of this app, including any mount prefix."""
    return str(request.app.router[name].url_for(**parts))


def json_response(payload: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response({"protocol": 1, **payload}, status=status, headers=headers)
