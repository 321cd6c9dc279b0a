"""The HTTP server that runs webnn apps: protocol JSON even for requests that are not HTTP.

aiohttp's HTTP parser refuses what it cannot read (an invalid method token, a request line or
header over its size limit, too many headers, raw bytes outside ASCII in the request target, a
bad ``Content-Length``, bad chunked encoding) before any app or middleware sees the request, and
answers with a plain-text 400. `WebnnRunner` (a `web.AppRunner`) serves its app through
`JsonRequestHandler`, which answers those with the documented error shape::

    {"protocol": 1, "error": {"code": "bad_http", "message": "..."}}

(status 400, the connection closed), and a request whose line and headers are not complete
within `HttpLimits.header_timeout` of the connection opening (or of the previous answer) with
``408 header_timeout``. Each is counted in every served model's ``/metrics``
(``webnn_requests_refused_total{code}`` and ``webnn_http_refused_total{reason}``) and
``status.httpRefused`` (by reason, see `refusal_reason`): a request that never became HTTP names
no model, so a process serving several models counts it in each.

Use it in place of ``web.AppRunner`` to embed a model in your own site::

    runner = WebnnRunner(app)            # or WebnnRunner(site_app, models=[model_app])
    await runner.setup()
    await web.TCPSite(runner, host, port).start()

An app run by any other runner (``web.run_app``, gunicorn's aiohttp worker) still answers every
request that reaches it with protocol JSON; requests its HTTP parser refuses get aiohttp's
plain-text 400 and are not counted, and idle or half-sent connections are closed after aiohttp's
keep-alive timeout (3630 s unless you pass ``keepalive_timeout``).

aiohttp has no hooks for this beyond ``handle_error``: the handler also reads a few of aiohttp's
private attributes (``_waiter``: waiting for a request; ``_request_count`` and ``_messages``:
requests parsed; ``_current_request``), each through ``getattr`` with a default. Should a future
aiohttp rename them, the header deadline and the early answer to a bad body stop working (aiohttp's
keep-alive timer, set beyond every idle deadline, still closes such connections) and
``tests/test_hostile_http.py`` fails; nothing else changes.

The handler can also receive the rest of a body straight into a caller's buffer
(`JsonRequestHandler.receive_into`, used by the update ingest): the kernel copies the bytes once,
into their place, instead of aiohttp's three copies and a task wake-up per chunk. That swaps in a
fresh HTTP parser of the same class and options after the body (``_parser``, ``_read_bufsize``,
``_reading_paused``, ``_buffer_paused``, ``_upgraded``, ``_payload_parser``); where any of them
is missing it declines, and the body is read through aiohttp's reader as before
(``tests/test_body_receive.py`` checks that it does not decline with the aiohttp in use).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import http_exceptions, web, web_protocol
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from webnn.server.body_receive import BodyReceiver
from webnn.server.errors import ProtocolError
from webnn.server.wire import PROTOCOL_VERSION, dumps

log = logging.getLogger("webnn.server")
T = TypeVar("T")

CountRefusal = Callable[[str, str], None]
"""``count(code, reason)``: one refused request (`code` as answered, `reason` finer)."""

EVENT_LOOPS = ("auto", "asyncio", "uvloop")
"""The event loops `wnn serve` can run on (`ProcessSettings.loop`, default ``asyncio``):
``asyncio`` (the standard library's), ``uvloop`` (libuv, where installed: ``pip install
uvloop``), ``auto`` (uvloop where it imports, else asyncio). For 4 MB update bodies uvloop
measured no gain (docs/capacity.md): both receive an update body past its first read straight
into the pooled buffer (`JsonRequestHandler.receive_into`), and the rest of the server's work is
the same on either."""


class LoopUnavailable(RuntimeError):
    """The event loop asked for is not installed here (the message says how to get it)."""


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for `name` (one of `EVENT_LOOPS`); None means asyncio's default.

    ``auto`` takes uvloop when it imports and asyncio otherwise; ``uvloop`` raises
    `LoopUnavailable` when it does not import."""
    if name not in EVENT_LOOPS:
        raise ValueError(f"event loop {name!r}: expected one of {', '.join(EVENT_LOOPS)}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise LoopUnavailable("event loop 'uvloop' is not installed: pip install uvloop "
                                  "(not available on Windows), or choose --loop asyncio"
                                  ) from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind of loop `loop` is (for banners and reports)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the event loop `loop` names (`loop_factory`; `main` is closed
    unrun when that loop is not available). Logs ``event loop: uvloop`` (info) when it is
    uvloop, ``event loop: asyncio`` at debug level."""
    try:
        factory = loop_factory(loop)
    except BaseException:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        name = loop_name(runner.get_loop())  # a line at start unless it is the standard loop
        log.log(logging.DEBUG if name == "asyncio" else logging.INFO, "event loop: %s", name)
        return runner.run(main)


MAX_IDLE_EXTENSION = 60.0
"""The most seconds an answer's ``Retry-After`` adds to its connection's idle deadline
(`HttpLimits`); webnn's own busy answers say at most 30."""


def retry_after_seconds(response: web.StreamResponse) -> float:
    """The ``Retry-After`` of `response` in seconds (delta-seconds form; 0 when absent, an HTTP
    date or malformed), at most `MAX_IDLE_EXTENSION`."""
    value = response.headers.get("Retry-After", "").strip()
    return min(float(value), MAX_IDLE_EXTENSION) if value.isdigit() else 0.0


@dataclass(frozen=True)
class HttpLimits:
    """What the HTTP layer accepts before a request reaches an app (aiohttp's parser limits).

    `max_line_size`: bytes of the request line; `max_field_size`: bytes of one header (name and
    value); `max_headers`: headers per request; past any of them: ``400 bad_http``.
    `header_timeout`: seconds from the connection opening (or the previous answer) within which
    the request line and headers must be complete: a half-sent request is answered ``408
    header_timeout`` and closed, an idle keep-alive connection is closed. After an answer that
    tells the client to come back in R seconds (``Retry-After``, at most `MAX_IDLE_EXTENSION`),
    the connection waits R + `header_timeout`: a client that comes back as told must not meet
    the idle close on its way (a request sent on a connection as the server closes it is a
    network error to the client). Bodies have their own progress timeouts
    (`webnn.server.http.JSON_BODY_TIMEOUT`, ``ServeConfig.body_timeout``)."""

    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 128
    header_timeout: float = 15.0

    def __post_init__(self) -> None:
        for name in ("max_line_size", "max_field_size", "max_headers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"HttpLimits.{name} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not self.header_timeout > 0:
            raise ValueError(f"HttpLimits.header_timeout must be > 0, got {self.header_timeout!r}")

    def handler_options(self) -> dict[str, Any]:
        """The keyword arguments of aiohttp's request handler these limits set. The header
        deadline (`JsonRequestHandler`) closes idle connections; aiohttp's keep-alive timer,
        longer than any idle deadline (twice `header_timeout` plus `MAX_IDLE_EXTENSION`), is only
        a backstop (it must never fire first: it closes silently)."""
        return {"max_line_size": self.max_line_size, "max_field_size": self.max_field_size,
                "max_headers": self.max_headers,
                "keepalive_timeout": 2 * self.header_timeout + MAX_IDLE_EXTENSION}


_REASONS: tuple[tuple[type[BaseException], str, str], ...] = (
    (http_exceptions.BadHttpMethod, "bad_method", "invalid method token"),
    (http_exceptions.LineTooLong, "line_too_long", "line too long"),
    (http_exceptions.InvalidURLError, "bad_target", "invalid request target"),
    (http_exceptions.TransferEncodingError, "bad_transfer_encoding", "bad chunked body"),
    (http_exceptions.ContentLengthError, "bad_content_length", "bad Content-Length"),
    (http_exceptions.BadStatusLine, "bad_request_line", "invalid request line"),
    (http_exceptions.InvalidHeader, "bad_header", "invalid header"),
)
_MESSAGE_REASONS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"too many headers", re.I), "too_many_headers", "too many headers"),
    (re.compile(r"content-length", re.I), "bad_content_length", "bad Content-Length"),
    (re.compile(r"chunk|transfer-encoding", re.I), "bad_transfer_encoding",
     "bad Transfer-Encoding or chunked body"),
    (re.compile(r"header", re.I), "bad_header", "invalid header"),
    (re.compile(r"url|target|path", re.I), "bad_target", "invalid request target"),
)


def refusal_reason(exc: BaseException | None) -> tuple[str, str]:
    """``(reason, summary)`` of a parser error: the `reason` label under which it is counted
    (``bad_method``, ``line_too_long``, ``too_many_headers``, ``bad_target``,
    ``bad_content_length``, ``bad_transfer_encoding``, ``bad_request_line``, ``bad_header``, or
    ``malformed`` for anything else) and a few words for the message."""
    text = getattr(exc, "message", "") or str(exc or "")
    for kind, reason, summary in _REASONS:
        if isinstance(exc, kind) and kind is not http_exceptions.BadStatusLine:
            return reason, summary
    for pattern, reason, summary in _MESSAGE_REASONS:
        if pattern.search(text):
            return reason, summary
    if isinstance(exc, http_exceptions.BadStatusLine):
        return "bad_request_line", "invalid request line"
    return "malformed", "malformed request"


def _detail(exc: BaseException | None, limits: HttpLimits | None) -> str:
    """aiohttp's explanation on one line, at most about 200 characters (it quotes the offending
    bytes with ``repr``, so nothing the client sent is echoed raw)."""
    if isinstance(exc, http_exceptions.LineTooLong):
        line, limit = (exc.args + (b"", 0))[:2]
        sample = bytes(line)[:40] if isinstance(line, bytes | bytearray) else b""
        which = ("" if limits is None else f" (max_line_size {limits.max_line_size}, "
                 f"max_field_size {limits.max_field_size})")
        return (f"the request line or a header is longer than {limit} bytes, the limit{which}; "
                f"it begins {sample!r}")
    text = getattr(exc, "message", "") or str(exc or "") or "the HTTP parser refused it"
    if limits is not None and "too many headers" in str(text).lower():
        return f"more than {limits.max_headers} headers, the limit (max_headers)"
    lines = [part.strip() for part in str(text).splitlines() if part.strip() and
             set(part.strip()) != {"^"}]
    flat = " ".join(lines)
    return flat if len(flat) <= 200 else flat[:200] + "..."


def malformed_http(exc: BaseException | None,
                   limits: HttpLimits | None = None) -> tuple[ProtocolError, str]:
    """The answer to a request the HTTP parser refused (``400 bad_http``, the message saying what
    was wrong) and the reason it is counted under (`refusal_reason`)."""
    reason, summary = refusal_reason(exc)
    return ProtocolError(400, "bad_http", f"malformed HTTP request ({summary}): "
                                          f"{_detail(exc, limits)}"), reason


def _json_body(code: str, message: str) -> bytes:
    return dumps({"protocol": PROTOCOL_VERSION,
                  "error": {"code": code, "message": message}}).encode()


class JsonRequestHandler(RequestHandler):
    """aiohttp's request handler, answering what its parser refuses (and a handler failure that
    escaped the app's middleware) as protocol JSON, counted, and bounding the time to a complete
    request line and headers (`HttpLimits.header_timeout`) with a JSON 408."""

    def __init__(self, manager: Server, *, count: CountRefusal, limits: HttpLimits,
                 **kwargs: Any) -> None:
        super().__init__(manager, **{**kwargs, **limits.handler_options()})
        self._count = count
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_pending = False  # waiting for a request line and headers
        self._head_bytes = 0  # bytes of it received so far
        self._previous_body: Any = None  # the body of the request answered last
        # the options aiohttp made its parser with, for a fresh one after a body received
        # around it (`receive_into`)
        self._parser_options: dict[str, Any] = {
            "max_line_size": limits.max_line_size, "max_field_size": limits.max_field_size,
            "max_headers": limits.max_headers,
            "payload_exception": web_protocol.RequestPayloadError,
            "auto_decompress": kwargs.get("auto_decompress", True)}
        queue = getattr(web_protocol, "MAX_MSG_QUEUE_SIZE", None)
        if queue is not None:
            self._parser_options["max_msg_queue_size"] = queue
        self._out_of_step = False  # a body read around the parser did not complete

    # --------------------------------------------------------------- request line and headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._await_request(None)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        # the last body's reader refers back to this handler: a cycle that would keep the
        # connection (socket, reader and its unread bytes) until the cyclic collector runs
        self._previous_body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._out_of_step:  # the parser lost step with the stream: closing after the answer
            return
        messages: Sequence[Any] = getattr(self, "_messages", ())  # aiohttp's parsed requests
        queued, parsed = len(messages), getattr(self, "_request_count", 0)
        draining = self._previous_body is not None and not self._previous_body.is_eof()
        super().data_received(data)
        if len(messages) > queued and not self._waiting_for_request():
            self._fail_body(messages[-1][0])
        if getattr(self, "_request_count", 0) != parsed:  # a request line and headers complete
            self._head_pending = False
            self._cancel_header_timer()
        elif self._head_pending and not draining:
            if not self._head_bytes and data:
                self._request_began()
            self._head_bytes += len(data)  # part of the next request (not the last one's body)

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        answer = await super().finish_response(request, resp, start_time)
        if self._out_of_step:
            self.force_close()  # the answer is written (closing flushes it), nothing more
        else:
            self._await_request(request.content, retry_after_seconds(resp))
        return answer

    # ------------------------------------------------------------ bodies straight into place

    async def receive_into(self, request: BaseRequest, view: memoryview, received: int,
                           progress: Callable[[int], None]) -> bool:
        """Receive the rest of `request`'s body, the `len(view)` bytes after the `received`
        ones already read from its ``content``, from the socket straight into `view`
        (`BodyReceiver`); `progress(filled)` after every socket read. True once the body is
        whole (its ``content`` is then at EOF); False at once, nothing done, when it cannot be
        done now: the body is not one of known length without content or transfer coding, the
        reader has not consumed every byte the parser passed on, or the transport is not
        reading (flow control) — read on through ``content`` and ask again.

        The body's end failing (the connection lost, the read cancelled, e.g. by its progress
        deadline) raises as a ``content`` read would (``ConnectionResetError`` or the
        cancellation); the connection then drops what else arrives and closes after its
        answer."""
        receiver = self._receiver(request, view, received, progress)
        if receiver is None:
            return False
        try:
            await receiver.done
        except BaseException:
            receiver.abort()
            receiver.done.cancel()
            raise
        finally:  # an error's traceback keeps this frame, and the receiver holds the error
            del receiver
        return True

    def _receiver(self, request: BaseRequest, view: memoryview, received: int,
                  progress: Callable[[int], None]) -> BodyReceiver | None:
        content = request.content
        transport = self.transport
        headers = request.headers
        if (transport is None or self._out_of_step or not len(view)
                or request is not getattr(self, "_current_request", None)
                or type(content) is not StreamReader or content.is_eof()
                or content.total_bytes != received
                or request.content_length != received + len(view)
                or "Transfer-Encoding" in headers or "Content-Encoding" in headers
                or getattr(self, "_parser", None) is None
                or getattr(self, "_read_bufsize", None) is None
                or getattr(self, "_reading_paused", True) or getattr(self, "_buffer_paused", True)
                or getattr(self, "_upgraded", True)
                or getattr(self, "_payload_parser", True) is not None
                or transport.get_protocol() is not self or not transport.is_reading()):
            return None
        parser: Any = type(getattr(self, "_parser", None))  # aiohttp's parser class in use

        def finish() -> None:
            # the old parser still expects the bytes that went around it: a fresh one reads
            # the next request, and the body's reader ends here
            try:
                self._parser = parser(self, self._loop, self._read_bufsize,
                                      **self._parser_options)
            except TypeError:  # an aiohttp without the message queue option
                options = dict(self._parser_options)
                options.pop("max_msg_queue_size", None)
                self._parser = parser(self, self._loop, self._read_bufsize, **options)
            content.feed_eof()

        def lost() -> None:
            self._out_of_step = True
            content.feed_eof()

        # nothing here refers back to the receiver: once its body is done, it goes with the read
        receiver = BodyReceiver(self, transport, view,  # type: ignore[arg-type]
                                progress, finish, lost)
        receiver.start()
        return receiver

    def _await_request(self, previous_body: Any, retry_after: float = 0.0) -> None:
        """The connection opened or an answer went out: the next request's line and headers
        must be complete within `header_timeout` from now (`retry_after` seconds more after an
        answer that asked the client to wait that long). Bytes of the previous request's body
        still arriving (aiohttp reads an unread body after the answer) do not count as begun."""
        self._cancel_header_timer()
        self._head_pending, self._head_bytes = True, 0
        self._previous_body = previous_body
        loop = asyncio.get_running_loop()
        self._header_timer = loop.call_at(
            loop.time() + retry_after + self._limits.header_timeout, self._header_deadline)

    def _request_began(self) -> None:
        """The first byte of the next request arrived: its line and headers must complete
        within `header_timeout` of it, however long the idle wait before it could have been (a
        Retry-After extends only the idle wait, never a slow sender's time)."""
        if self._header_timer is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.header_timeout
        if deadline < self._header_timer.when():
            self._header_timer.cancel()
            self._header_timer = loop.call_at(deadline, self._header_deadline)

    def _fail_body(self, message: Any) -> None:
        """The parser failed on the body of the request being answered (a bad chunk size after
        the headers arrived): aiohttp queues the error as a next request and the handler would
        wait for body bytes that never come; fail its body read now instead, which the app's
        error middleware answers ``400 bad_http``."""
        exc = getattr(message, "exc", None)
        request = getattr(self, "_current_request", None)
        if (isinstance(exc, http_exceptions.HttpProcessingError) and request is not None
                and not request.content.is_eof()):
            request.content.set_exception(exc)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp logs a body read failing after the answer (the parser error `_fail_body`
        passed on, met again while it drains the body) as unhandled: it was answered; debug."""
        if isinstance(kw.get("exc_info"), http_exceptions.HttpProcessingError):
            self.logger.debug(*args, **kw)
        else:
            super().log_exception(*args, **kw)

    def _waiting_for_request(self) -> bool:
        waiter = getattr(self, "_waiter", None)  # aiohttp's "waiting for the next request"
        return waiter is not None and not waiter.done()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        """The request line and headers did not complete in time: answer 408 and close."""
        self._header_timer = None
        if self.transport is None or not self._head_pending or not self._waiting_for_request():
            return  # a request arrived in time
        if not self._head_bytes:  # an idle connection: closed without an answer
            self.force_close()
            return
        seconds = self._limits.header_timeout
        body = _json_body("header_timeout",
                          f"the request line and headers did not complete within {seconds:g} s "
                          "(header_timeout); the connection is closed")
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        self._count("header_timeout", "header_timeout")
        self.force_close()

    # ---------------------------------------------------------------------------- refusals

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp could not hand to the app (status 400 and the parser's exception),
        or a handler failure that escaped the app's middleware (500; 504 for a timeout): a JSON
        answer, counted, and the connection closed."""
        if request.writer.output_size > 0:  # part of an answer is out: nothing more can be said
            raise ConnectionError("an answer was already started; cannot send an error")
        if isinstance(exc, http_exceptions.HttpProcessingError) or (status < 500 and message):
            refusal, reason = malformed_http(exc, self._limits)
            code, text, status = refusal.code, refusal.message, refusal.status
            log.debug("refused a malformed request from %s: %s", request.remote, text)
        elif status == 504:
            reason, code = "timeout", "timeout"
            text = "the server timed out answering this request"
            log.warning("handler timed out answering %s %s", request.method, request.path)
        else:
            reason, code, status = "internal", "internal", 500
            text = "the server failed to answer this request; the error is logged"
            log.error("unhandled error answering %s %s", request.method, request.path,
                      exc_info=exc)
        self._count(code, reason)
        response = web.Response(body=_json_body(code, text), status=status,
                                content_type="application/json")
        response.force_close()
        return response


class JsonServer(Server):
    """aiohttp's low-level server, making a `JsonRequestHandler` per connection."""

    def __init__(self, handler: Any, *, count: CountRefusal, limits: HttpLimits,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._count = count
        self._limits = limits
        self._handler_kwargs = {k: v for k, v in kwargs.items()
                                if k not in ("request_factory", "handler_cancellation", "loop")}

    def __call__(self) -> RequestHandler:
        return JsonRequestHandler(self, loop=asyncio.get_running_loop(), count=self._count,
                                  limits=self._limits, **self._handler_kwargs)


def served_models(app: web.Application) -> list[web.Application]:
    """The model apps (`create_app`) that `app` is or mounts (`create_multi_app`)."""
    from webnn.server.keys import COORDINATOR
    from webnn.server.multi import MODELS

    if COORDINATOR in app:
        return [app]
    return [mounted.app for mounted in app.get(MODELS, ())]


def count_in(models: Iterable[web.Application]) -> CountRefusal:
    """A `CountRefusal` that counts in each model app's metrics (and so its status)."""
    from webnn.server.keys import METRICS

    targets = [m[METRICS] for m in models if METRICS in m]

    def count(code: str, reason: str) -> None:
        for metrics in targets:
            metrics.count_http_refusal(code, reason)

    return count


class WebnnRunner(web.AppRunner):
    """A ``web.AppRunner`` whose server answers malformed HTTP with protocol JSON, counts it, and
    applies `HttpLimits` (parser limits and the header timeout).

    `models`: the model apps to count refusals in (default: `app` itself, or the models a
    `create_multi_app` parent mounts; pass them when `app` is your own site with a model mounted
    in it). Other keyword arguments go to ``web.AppRunner`` (e.g. ``handle_signals``)."""

    def __init__(self, app: web.Application, *, limits: HttpLimits | None = None,
                 models: Sequence[web.Application] | None = None, **kwargs: Any) -> None:
        self.limits = limits or HttpLimits()
        for key in self.limits.handler_options():
            if key in kwargs:
                raise TypeError(f"set {key} through HttpLimits, not as a runner option")
        super().__init__(app, **kwargs, **self.limits.handler_options())
        self._count = count_in(served_models(app) if models is None else models)
        self._options = kwargs

    async def _make_server(self) -> Server:
        plain = await super()._make_server()  # starts the app up and freezes it
        options = {k: v for k, v in self._options.items()
                   if k not in ("handle_signals", "shutdown_timeout")}
        return JsonServer(plain.request_handler, request_factory=plain.request_factory,
                          handler_cancellation=plain.handler_cancellation, count=self._count,
                          limits=self.limits, **options)
