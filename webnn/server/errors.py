"""Protocol errors and the middleware that turns every failure into a JSON answer.

Every error answer has the shape ``{"protocol": 1, "error": {"code": ..., "message": ...}}`` (see
docs/protocol.md). Handlers raise `ProtocolError`; anything unexpected becomes a logged JSON 500, so
nothing a client sends can crash the server or leave a request without an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from webnn.server.wire import PROTOCOL_VERSION, json_response

log = logging.getLogger("webnn.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProtocolError(Exception):
    """A refused request: HTTP `status`, a stable `code` and a message saying what is wrong."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def payload(self) -> dict:
        return {"protocol": PROTOCOL_VERSION, "error": {"code": self.code, "message": self.message}}

    def response(self) -> web.Response:
        return json_response(self.payload(), status=self.status, headers=self.headers,
                             envelope=False)


def bad_field(path: str, message: str) -> ProtocolError:
    """A JSON field with the wrong type or value; `path` is a JSON path such as ``$.loss``."""
    return ProtocolError(400, "bad_field", f"{path}: {message}")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    411: "length_required",
    413: "too_large",
    414: "too_large",
    415: "wrong_content_type",
    429: "too_many_requests",
    431: "too_large",
    503: "unavailable",
}
_KEPT_HEADERS = ("Allow", "Retry-After")


def _shown(path: str, limit: int = 200) -> str:
    return path if len(path) <= limit else path[:limit] + "..."


def _count(request: web.Request, response: web.Response, code: str) -> web.Response:
    """Count an error answer in the app's ``webnn_requests_refused_total{code}`` (a parent app
    of several models has no metrics of its own)."""
    from webnn.server.keys import METRICS  # keys imports the coordinator, which imports this

    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.requests_refused.labels(code).inc()
    return response


def _count_http(request: web.Request, code: str, reason: str) -> None:
    from webnn.server.keys import METRICS

    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.count_http_refusal(code, reason)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `ProtocolError`, aiohttp HTTP errors and unexpected exceptions as protocol JSON,
    each counted by code."""
    try:
        return await handler(request)
    except ProtocolError as error:
        return _count(request, error.response(), error.code)
    except HttpProcessingError as error:  # the HTTP parser failed on the body being read
        from webnn.server.runner import malformed_http

        refusal, reason = malformed_http(error)
        _count_http(request, refusal.code, reason)
        response = refusal.response()
        response.force_close()  # the rest of the stream cannot be read as HTTP
        return response
    except web.HTTPRequestEntityTooLarge as error:
        # aiohttp keeps the limit only in its message ("Maximum request body size N exceeded.")
        refusal = ProtocolError(413, "too_large", error.text or "request body is too large")
        return _count(request, refusal.response(), refusal.code)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _HTTP_CODES.get(error.status, "http_error")
        kept = {k: error.headers[k] for k in _KEPT_HEADERS if k in error.headers}
        refusal = ProtocolError(
            error.status, code, f"{error.reason}: {request.method} {_shown(request.path)}", kept)
        return _count(request, refusal.response(), code)
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("unhandled error answering %s %s", request.method, request.path)
        refusal = ProtocolError(
            500, "internal", "the server failed to answer this request; the error is logged")
        return _count(request, refusal.response(), refusal.code)
