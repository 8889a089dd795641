"""A lean HTTP/1.1 server on asyncio + httptools, made for small, frequent inference calls.

Why not uvicorn: for a 2-row sklearn model the ASGI layer (scope dicts, receive/send
coroutines, per-request cycle objects) costs about as much as the model, so the REST adapter
gets whole requests from here instead. Each connection parses with httptools, answers its
requests in order (pipelining is allowed), keeps alive per HTTP/1.1 rules, enforces the body
limit before buffering (413 from the Content-Length, or once a chunked body passes it; then
close, taking in no more), and on `shutdown` stops accepting, lets in-flight requests finish
within the grace period, then closes. Bodies: `ksrv.http.body` (`stream_body_over`).

A handler may answer with a `StreamingResponse` instead: `streamed.py` sends its body chunk by
chunk as an async iterator produces it, and a client that hangs up cancels the handler.

A server may also have a `FastPath` (the gateway's): a whole request that arrives with nothing
else in flight on its connection is offered to it before any task is made. One it takes is
answered by callbacks (`Connection.fast_done`), or handed back as an awaitable when it needs
to wait after all; requests pipelined behind it wait their turn, as behind any other.

Limits against slow or greedy clients (`limits.py`): a request head must arrive within
`head_timeout_s` of its first byte (bytes do not reset it, so a slowloris is cut off: 408), be
at most 64 KiB with at most 2000 fields (431), and name one Host (400); beyond
`max_connections` a new connection is answered 503 and closed. An `Upgrade` is ignored (the
request is answered over HTTP/1.1, then the connection closed) or, with a body, refused (400).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from ksrv.http import limits
from ksrv.http.body import BodyCutOff, IncomingBody
from ksrv.http.messages import Answer, FastPath, HTTPDate, decode_path

# The message types are re-exported: handlers import them from here with the server.
from ksrv.http.messages import FastReply as FastReply
from ksrv.http.messages import Request as Request
from ksrv.http.messages import Response as Response
from ksrv.http.messages import StreamingResponse as StreamingResponse
from ksrv.http.streamed import REASONS, send_streamed

logger = logging.getLogger(__name__)

_MAX_PIPELINED = 32
_SWEEP_S = 1.0  # how often deadlines are checked: a late head is cut within 31 s
_LINGER_S = 1.0  # how long a refused client may take to read our answer and hang up
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS")}


Handler = Callable[[Request], Awaitable[Answer]]
# What a connection has yet to answer, in order: requests, ready answers (refusals, a fast
# answer that streams) and awaitables (a fast answer that has to wait).
_Pending = Request | Answer | Awaitable[Answer]
TooLarge = Callable[[int], Response]


def _error(status: int, message: bytes) -> Response:
    body = b'{"error":"' + message.replace(b'"', b"'").replace(b"\\", b"/") + b'"}'
    return Response(body, status, [(b"content-type", b"application/json")])


class HTTPServer:
    """Serves `handler` on one listening socket; `shutdown` drains gracefully."""

    def __init__(
        self,
        handler: Handler,
        max_body_bytes: int,
        too_large: TooLarge,
        keep_alive_s: float = 65.0,
        stream_body_over: int | None = None,
        *,
        head_timeout_s: float = limits.HEAD_TIMEOUT_S,
        max_connections: int | None = None,
        fast: FastPath | None = None,
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.max_body_bytes = max_body_bytes
        self.stream_body_over = stream_body_over
        self.too_large = too_large
        self.keep_alive_s = keep_alive_s
        self.head_timeout_s = head_timeout_s
        self.max_connections = max_connections or limits.default_max_connections()
        self.connections: set[_Connection] = set()
        self.is_draining = False
        self.all_closed = asyncio.Event()
        self.date = HTTPDate()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(
        self, host: str, port: int, sock: Any = None, tls: ssl.SSLContext | None = None
    ) -> None:
        """Listen on `sock`, or bind `host:port`; `tls`: serve HTTPS with this context."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: _Connection(self), sock=sock, ssl=tls)
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self), host=host, port=port, reuse_address=True, backlog=2048,
                ssl=tls,
            )  # fmt: skip
        self._sweeper = loop.create_task(self._close_idle_connections())

    @property
    def port(self) -> int:
        """The bound port (what port 0 became), or 0 before `start`."""
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting; answer every request already received; close within `grace_s`."""
        self.is_draining = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close_when_idle()
        if self.connections:
            try:
                await asyncio.wait_for(self.all_closed.wait(), grace_s)
            except TimeoutError:
                logger.warning("grace period over: closing %d connection(s)", len(self.connections))
        for connection in list(self.connections):
            connection.abort()

    async def _close_idle_connections(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_S)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Close connections idle past keep-alive; answer 408 to requests that stopped
        arriving or whose head is late (`now` is `time.monotonic()`'s clock)."""
        for connection in list(self.connections):
            silent_s = now - connection.last_active
            started = connection.head_started
            is_late = started is not None and now - started > self.head_timeout_s
            if connection.is_idle() and (silent_s > self.keep_alive_s or is_late):
                connection.close_when_idle()  # late: bytes that begin no request (CRLFs)
            elif connection.is_stalled() and (silent_s > self.keep_alive_s or is_late):
                # A request that stopped arriving (short body, half a head) or crawls in
                # (slowloris): answer 408 and close rather than hold the connection forever.
                connection.time_out()


class _Connection(asyncio.Protocol):
    """One client connection: parse, queue, answer in order."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.pending: deque[tuple[_Pending, bool]] = deque()
        self.is_http11 = True
        self.worker: asyncio.Task[None] | None = None
        self.last_active = time.monotonic()
        self.is_closing = False
        self.is_reading = True
        self.has_failed = False
        self.is_head_done, self.head_bytes = False, 0
        self.is_body_paused = False
        self.head_started: float | None = None  # when the head being read began to arrive
        self.can_write = asyncio.Event()
        self.can_write.set()
        # A request the fast path took: its keep-alive and HEAD-ness, and what to do if the
        # client hangs up before its answer (None when none is in flight).
        self.fast_cancel: Callable[[], None] | None = None
        self.fast_keep_alive = self.fast_is_head = False
        self._reset_message()

    def _reset_message(self) -> None:
        self.url = b""
        self.header_list: list[tuple[bytes, bytes]] = []
        self.body: IncomingBody | None = None
        self.in_message = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client = str(peer[0])
        if len(self.server.connections) >= self.server.max_connections:
            self._turn_away()
            return
        self.server.connections.add(self)

    def _turn_away(self) -> None:
        """Over the cap: say 503 and close, rather than let connections (and descriptors)
        pile up."""
        self.has_failed = True
        self.write_response(_error(503, b"too many connections, try again later"), False, False)
        self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.server.is_draining and not self.server.connections:
            self.server.all_closed.set()
        self.is_closing = True
        self.can_write.set()
        if self.body is not None and self.body.stream is not None:
            self.body.stream.finish(BodyCutOff("the client closed the connection mid-body"))
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        cancel, self.fast_cancel = self.fast_cancel, None
        if cancel is not None:
            cancel()

    def data_received(self, data: bytes) -> None:
        self.last_active = now = time.monotonic()
        if self.has_failed:
            return
        if not self.is_head_done:
            self.head_bytes += len(data)
            if self.head_started is None:
                self.head_started = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp stops at an upgrade. The request before it is answered as HTTP/1.1 and
            # the connection closed (on_message_complete); what follows is not read.
            self.has_failed = True
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # what a callback raised to stop the parser
            if isinstance(refused, limits.Refused):
                self._fail(refused.status, refused.message)
            else:
                self._fail(400, f"Malformed HTTP request: {exc}".encode())
            return
        if not self.is_head_done and self.head_bytes > limits.MAX_HEAD_BYTES:
            # httptools buffers an unfinished header itself: count raw bytes instead.
            self._fail(431, b"request line and headers exceed %d bytes" % limits.MAX_HEAD_BYTES)

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset_message()
        self.in_message = True
        if self.head_started is None:  # a pipelined head, begun in the read of the last one
            self.head_started = self.last_active

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.is_head_done, self.head_started = True, None
        # Raising stops the parser; data_received answers the refusal.
        limits.check_head(self.url, self.header_list, self.parser.should_upgrade())
        server, headers = self.server, self.header_list
        body = IncomingBody(self, headers, server.max_body_bytes, server.stream_body_over)
        self.body = body
        if body.is_too_large:
            # Answer now, without reading a body we would refuse anyway, then close.
            self._reject(server.too_large(body.length or 0))
            return
        if body.stream is not None:
            self._queue(self._request())  # answered while its body still arrives
        if body.expects_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        body = self.body
        if not self.has_failed and body is not None and not body.add(chunk):
            # A chunked body past the limit: 413 now (a streamed one's reader raises it).
            self._reject(None if body.stream else self.server.too_large(body.size))

    def on_message_complete(self) -> None:
        self.in_message = False
        self.is_head_done, self.head_bytes = False, 0
        if self.has_failed:
            return  # already answered (413) and closing
        if self.body is not None and self.body.stream is not None:
            self.body.stream.finish()  # its request is queued already
            return
        request = self._request()
        fast = self.server.fast
        if (
            fast is not None
            and self.worker is None
            and self.fast_cancel is None
            and not self.pending
            and self.can_write.is_set()
        ):
            self.fast_keep_alive = self.parser.should_keep_alive() and not (
                self.parser.should_upgrade()
            )
            self.fast_is_head = request.method == "HEAD"
            try:
                if fast(request, self):
                    return
            except Exception:  # not the parser's failure: that would answer 400
                logger.exception("unhandled error answering %s %s", request.method, request.path)
                self.fast_done(_error(500, b"Internal server error"))
                return
        self._queue(request)

    def _request(self) -> Request:
        method = self.parser.get_method()
        body = self.body
        self.is_http11 = self.parser.get_http_version() == "1.1"
        return Request(
            _METHODS.get(method) or method.decode("ascii"),
            # An origin-form target ("/...") always parses: decode it when first read.
            # Any other is checked now, so a malformed one is still answered 400.
            None if self.url[:1] == b"/" else decode_path(self.url),
            None,
            body.take() if body is not None else b"",
            self.url,
            self.header_list,
            self.client,
            body.stream if body is not None else None,
        )

    def _queue(self, item: Request | Response) -> None:
        # After an upgrade the parser reads nothing more: close once answered.
        keep_alive = self.parser.should_keep_alive() and not self.parser.should_upgrade()
        self.pending.append((item, keep_alive))
        if len(self.pending) > _MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
            self.is_reading = False
        if self.worker is None and self.fast_cancel is None:  # else: once the fast one ends
            self.worker = asyncio.get_running_loop().create_task(self._answer_pending())

    def fast_done(self, answer: Answer | Awaitable[Answer]) -> None:
        """The answer to the request the fast path took: sent now when whole, else (a
        stream, or an awaitable for an answer that has to wait) first in line for the worker,
        as is whatever was pipelined behind it."""
        self.fast_cancel = None
        if self.is_closing:  # the client is gone
            if inspect.iscoroutine(answer):
                answer.close()
            return
        keep_alive = self.fast_keep_alive and not self.server.is_draining
        if type(answer) is Response:
            self.write_response(answer, keep_alive, self.fast_is_head)
            self.last_active = time.monotonic()
            if not keep_alive:
                self._close()
                return
            if self.server.is_draining and self.is_idle():
                self._close()
                return
        else:
            self.pending.appendleft((answer, keep_alive))
        if self.pending and self.worker is None and not self.is_closing:
            self.worker = asyncio.get_running_loop().create_task(self._answer_pending())

    def pause_body(self) -> None:
        """Stop reading the client: a streamed body's reader is behind."""
        self.is_body_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_body(self) -> None:
        self.is_body_paused = False
        if self.is_reading and self.transport is not None and not self.has_failed:
            self.transport.resume_reading()

    # -- answering -------------------------------------------------------------------------
    async def _answer_pending(self) -> None:
        try:
            while self.pending and not self.is_closing:
                item, keep_alive = self.pending.popleft()
                response: Response | StreamingResponse
                if isinstance(item, Request):
                    response = await self._handle(item)
                    is_head = item.method == "HEAD"
                    if item.body_stream is not None and not item.body_stream.is_received:
                        keep_alive = False  # answered before its body ended: read no more
                elif isinstance(item, Response | StreamingResponse):
                    response, is_head = item, False
                else:  # the fast path's answer that had to wait
                    response, is_head = await self._handle(item), self.fast_is_head
                keep_alive = keep_alive and not self.server.is_draining
                if type(response) is StreamingResponse:
                    keep_alive = await send_streamed(self, response, keep_alive, is_head)
                else:
                    self.write_response(response, keep_alive, is_head)  # type: ignore[arg-type]
                if not keep_alive:
                    self._close()
                    return
                if not self.can_write.is_set():
                    await self.can_write.wait()
                if not self.is_reading and self.transport is not None:
                    self.is_reading = True
                    if not self.is_body_paused:
                        self.transport.resume_reading()
        finally:
            self.worker = None
            self.last_active = time.monotonic()
        if self.server.is_draining and self.is_idle():
            self._close()

    async def _handle(self, request: Request | Awaitable[Answer]) -> Answer:
        try:
            if isinstance(request, Request):
                return await self.server.handler(request)
            return await request
        except Exception:
            what = "a request"
            if isinstance(request, Request):
                what = f"{request.method} {request.path}"
            logger.exception("unhandled error answering %s", what)
            return Response(b'{"error":"Internal server error"}', 500)

    def write_response(self, response: Response, keep_alive: bool, is_head: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        status = response.status
        head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))]
        for name, value in response.headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: %d\r\n" % len(response.body))
        head.append(self.server.date.header())
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if not is_head:
            head.append(response.body)
        self.transport.write(b"".join(head))

    def send(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def _fail(self, status: int, message: bytes) -> None:
        self._reject(_error(status, message))

    def _reject(self, response: Response | None) -> None:
        """Queue a final error answer (unless the handler gives it); what arrives after it
        is dropped unread (see `_close`)."""
        self.has_failed = True
        if response is None:
            return
        self.pending.append((response, False))
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._answer_pending())

    # -- closing ---------------------------------------------------------------------------
    def is_idle(self) -> bool:
        return self._has_nothing_to_answer() and not self.in_message

    def is_stalled(self) -> bool:
        """Mid-request with nothing left to answer: waiting on the client alone."""
        return self.in_message and self._has_nothing_to_answer()

    def _has_nothing_to_answer(self) -> bool:
        return self.worker is None and not self.pending and self.fast_cancel is None

    def time_out(self) -> None:
        self.in_message = False
        self._fail(408, b"the request did not arrive in full in time")

    def close_when_idle(self) -> None:
        """Close now if nothing is in flight; otherwise after the current answers."""
        if self.is_idle():
            self._close()

    def _close(self) -> None:
        self.is_closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.has_failed and transport.can_write_eof():
            # The client may still be sending (a crawling head, a refused body): closing on
            # unread bytes would reset the connection and could lose our answer. So send
            # ours and a FIN, drop what arrives, and close when the client does or after
            # _LINGER_S (nginx's lingering close).
            transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER_S, transport.abort)
        else:
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
