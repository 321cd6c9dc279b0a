"""The input layer every route goes through: bounded bodies, bounded JSON, ASCII-only bearer tokens
compared in constant time, strictly decimal path parameters, session lookup and URLs.

Whatever bytes arrive, these helpers either return checked values or raise `ProtocolError` with a
4xx status and a documented code (docs/protocol.md, *Errors*); nothing here raises anything else.
"""

from __future__ import annotations

import asyncio
import re
import secrets

from aiohttp import web

from webnn.server.errors import ProtocolError, bad_field
from webnn.server.ingest import BodyTimeout
from webnn.server.keys import CONFIG, COORDINATOR
from webnn.server.sessions import Session
from webnn.server.wire import MAX_DEPTH, JsonInputError, parse_json

JSON_LIMIT = 64 * 1024
JSON_BODY_TIMEOUT = 10.0
"""Seconds a JSON body may go without a byte (update bodies: `ServeConfig.body_timeout`)."""
SESSION_HEADER = "X-WebNN-Session"
MAX_TOKEN_CHARS = 512
MAX_DECIMAL_DIGITS = 18
_DECIMAL = re.compile(r"[0-9]+", re.ASCII)


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
        try:  # a slow sender is answered 408 body_timeout and closed (see `ingest`)
            async with asyncio.timeout(JSON_BODY_TIMEOUT):
                chunk = await request.content.read(65536)
        except TimeoutError:
            raise BodyTimeout(JSON_BODY_TIMEOUT, len(data)) from None
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
    """A JSON object body: at most `JSON_LIMIT` bytes, nested at most `MAX_DEPTH` levels, UTF-8
    (400 ``bad_json`` otherwise); an empty body is ``{}`` if allowed."""
    if allow_empty and request.content_length in (None, 0) and not request.can_read_body:
        return {}
    data = await read_body(request, JSON_LIMIT)
    if not data and allow_empty:
        return {}
    require_content_type(request, "application/json")
    try:
        body = parse_json(data, what="body", max_depth=MAX_DEPTH)
    except JsonInputError as error:
        raise ProtocolError(400, "bad_json", str(error)) from None
    if not isinstance(body, dict):
        raise bad_field("$", f"must be a JSON object, got {type(body).__name__}")
    return body


def bearer(request: web.Request) -> bytes | None:
    """The ``Authorization: Bearer <token>`` token as ASCII bytes; None when absent, not a bearer
    token, longer than `MAX_TOKEN_CHARS` or not ASCII (no valid token is, so such a header simply
    fails the comparison)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token.encode("ascii") if token.isascii() else None


def _token_matches(request: web.Request, expected: str | None) -> bool:
    """Constant-time comparison of the request's bearer token with `expected` (bytes on both
    sides: `secrets.compare_digest` refuses non-ASCII str)."""
    token = bearer(request)
    if token is None or expected is None:
        return False
    return secrets.compare_digest(token, expected.encode("utf-8"))


def require_admin(request: web.Request) -> None:
    if not _token_matches(request, request.app[CONFIG].admin_token):
        raise ProtocolError(401, "admin_token_required",
                            "this endpoint needs Authorization: Bearer <admin token>")


def require_join_token(request: web.Request) -> None:
    expected = request.app[CONFIG].join_token
    if expected is None:
        return
    if not _token_matches(request, expected):
        raise ProtocolError(401, "join_token_required",
                            "this server needs Authorization: Bearer <join token> to join")


def decimal_param(request: web.Request, name: str, code: str, what: str) -> int:
    """Path parameter `name` as a non-negative integer: ASCII digits ``[0-9]`` only, at most
    `MAX_DECIMAL_DIGITS` of them (``str.isdigit``/``int`` would also take superscripts, circled,
    Arabic-Indic and full-width digits). Anything else is a 404 with `code`."""
    text = request.match_info[name]
    if len(text) > MAX_DECIMAL_DIGITS or not _DECIMAL.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ProtocolError(404, code, f"{shown!r} is not {what} (ASCII digits 0-9, at most "
                            f"{MAX_DECIMAL_DIGITS})")
    return int(text)


def session(request: web.Request) -> Session:
    """The session named by the ``X-WebNN-Session`` header (401 ``unknown_session`` otherwise)."""
    token = request.headers.get(SESSION_HEADER)
    if token is not None and (len(token) > MAX_TOKEN_CHARS or not token.isascii()):
        token = None  # no session token is that long or non-ASCII
    return request.app[COORDINATOR].session(token)


def require_reader(request: web.Request) -> None:
    """With `private_status`, the client list, history and events are for joined sessions and the
    admin: 401 ``private_status`` without a known ``X-WebNN-Session`` or the admin bearer token."""
    if not request.app[CONFIG].private_status:
        return
    if _token_matches(request, request.app[CONFIG].admin_token):
        return
    token = request.headers.get(SESSION_HEADER)
    known = (token and len(token) <= MAX_TOKEN_CHARS and token.isascii()
             and request.app[COORDINATOR].sessions.get(token) is not None)
    if not known:
        raise ProtocolError(401, "private_status",
                            "this server keeps clients, history and events private: send the "
                            "X-WebNN-Session of a joined session or Authorization: Bearer "
                            "<admin token>")


def maybe_session(request: web.Request) -> None:
    """Open endpoints need a session only when the server has a join token."""
    if request.app[CONFIG].join_token is not None:
        session(request)


def url(request: web.Request, name: str, **parts: str) -> str:
    """The absolute path of named route `name` of this app, including any mount prefix."""
    return str(request.app.router[name].url_for(**parts))
