"""HTTP/1.1 keep-alive connections to one upstream replica, on asyncio Protocols + httptools.

Why not httpx: per request it costs several times what the whole proxy hop may spend. Here a
request is one `transport.write` of bytes built by the caller and a response is whatever the
httptools parser hands back. An answer with a content-length arrives whole; one the replica
streams (chunked, delimited by closing, or `text/event-stream`) is handed over at its head,
its body de-chunked piece by piece (`UpstreamStream`). A failure says whether any response
byte had arrived, because only a request with no answer begun may be retried.

A request body still arriving from the client (`ksrv.http.body.BodyStream`) is written as it
comes, at the pace the replica reads, on a connection of its own that is closed afterwards;
once any of it was taken from the client the request is no longer retryable.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, Protocol

import httptools

from ksrv.errors import UpstreamFailed, UpstreamTimeout
from ksrv.http.body import BodyStream
from ksrv.http.chunks import ChunkQueue
from ksrv.http.deadlines import Deadlines

# A streamed body: stop reading the replica above this much unread, resume below the low mark.
_HIGH_WATER_BYTES = 256 * 1024
_LOW_WATER_BYTES = 64 * 1024
# Bodies above this are written separately instead of being copied into one buffer.
_JOIN_MAX_BYTES = 65536


class UpstreamResponse:
    """An upstream answer: status, raw headers (lower-case names) and either the whole body
    or, for an answer the replica streams, `stream` (and an empty `body`)."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        stream: UpstreamStream | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


class Waiter(Protocol):
    """Who hears a request's outcome: an `asyncio.Future`, or the gateway's fast path, which
    answers from the callback itself (no task waits on a future)."""

    def done(self) -> bool: ...

    def set_result(self, result: UpstreamResponse, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class UpstreamDropped(UpstreamFailed):
    """The connection failed or closed; `is_retryable` when no response byte had arrived.

    `is_refused` says the replica could not be reached at all (the balancer puts it last for
    a while). `answer`, when set, is what the replica itself said: if no other replica is
    left to try, the caller gets that rather than a held request.
    """

    def __init__(
        self,
        message: str,
        is_retryable: bool,
        is_refused: bool = False,
        answer: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.is_retryable = is_retryable
        self.is_refused = is_refused
        self.answer = answer


class UpstreamStream(ChunkQueue):
    """The body of a streamed answer, chunk by chunk as the replica sends it.

    Back-pressure: once more than `_HIGH_WATER_BYTES` wait unread, the connection stops
    reading from the replica until the reader has taken them. `aclose` before the end (the
    client hung up) aborts the connection, so the replica sees the hang-up too.
    `on_close`, when the caller sets it, runs once: when the body ended or was abandoned.
    """

    def __init__(self, connection: UpstreamConnection) -> None:
        super().__init__(
            connection.pause_reading, connection.resume_reading, _HIGH_WATER_BYTES, _LOW_WATER_BYTES
        )
        self.connection = connection
        self.on_close: Callable[[], None] | None = None
        self.is_done = False
        self.is_closed = False
        self.error: BaseException | None = None

    # -- fed by the connection -------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        if not self.is_closed:
            self.push(chunk)

    def finish(self, error: BaseException | None = None) -> None:
        if self.is_done:
            return
        self.is_done = True
        self.error = error
        self.wake()

    # -- read by the client side -----------------------------------------------------------
    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> bytes:
        while not self.chunks:
            if self.is_done:
                self._release()
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            if self.is_closed:
                raise StopAsyncIteration
            await self.wait()
        return self.pop()

    async def aclose(self) -> None:
        """Stop reading; before the end, that cuts the replica's connection."""
        if not self.is_done:
            self.is_done = True
            self.connection.abort()
        self._release()

    def _release(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        self.chunks.clear()
        if self.on_close is not None:
            self.on_close()


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: Waiter | None = None
        self.stream: UpstreamStream | None = None
        self.body_stream: BodyStream | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.is_open = True
        self._reset()

    def _reset(self) -> None:
        self.is_head = False
        self.has_bytes = False
        self.has_length = False
        self.has_content_length = False
        self.is_event_stream = False
        self.headers_done = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.stream = None

    def send(self, data: bytes, body: bytes, waiter: Waiter) -> None:
        assert self.transport is not None
        self._reset()
        self.is_head = data.startswith(b"HEAD ")
        self.waiter = waiter
        if body and len(body) > _JOIN_MAX_BYTES:
            self.transport.write(data)
            self.transport.write(body)
        else:
            self.transport.write(data + body if body else data)

    async def send_streamed(
        self, data: bytes, body: BodyStream, waiter: asyncio.Future[UpstreamResponse]
    ) -> None:
        """Write the head, then the body as the client sends it; stop once answered."""
        assert self.transport is not None
        self._reset()
        self.is_open = False  # the replica may answer before reading it all: never reused
        self.body_stream = body
        self.waiter = waiter
        transport = self.transport
        transport.write(data)
        is_chunked = body.length is None
        try:
            async for chunk in body:
                if waiter.done() or transport.is_closing():
                    return  # answered (say 413) or failed: the rest is not wanted
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if is_chunked else chunk)
                if not self.can_write.is_set():
                    await self.can_write.wait()  # the replica reads slower than the client
            if is_chunked and not transport.is_closing():
                transport.write(b"0\r\n\r\n")
        except Exception as exc:  # the client's body failed: too large, or cut off
            self._fail(exc)
            self.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.has_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            error = UpstreamDropped(f"malformed response from {self.pool.address}: {exc}", False)
            self._fail(error)
            if self.stream is not None:
                self.stream.finish(error)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self.can_write.set()
        self.pool.forget(self)
        stream = self.stream
        if stream is not None:
            if self.headers_done and not self.has_length:
                stream.finish()  # a body delimited by the connection closing
            else:
                stream.finish(UpstreamDropped(f"{self.pool.address}: stream cut off", False))
            return
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.has_length:
            self._complete()  # a body delimited by the connection closing
            return
        reason = "connection closed" if exc is None else f"connection failed: {exc}"
        body = self.body_stream
        retryable = not self.has_bytes and (body is None or not body.is_started)
        self._fail(UpstreamDropped(f"{self.pool.address}: {reason}", retryable))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.has_length = self.has_content_length = True
        elif name == b"transfer-encoding":
            self.has_length = True
        elif name == b"content-type" and value.startswith(b"text/event-stream"):
            self.is_event_stream = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.is_head:
            # No body follows, but the parser cannot be told so and would wait for one:
            # answer now and do not reuse the connection.
            self.is_open = False
            self._complete()
        elif self.is_event_stream or not self.has_content_length:
            status = self.parser.get_status_code()
            if status >= 200 and status != 204 and status != 304:
                self._start_stream(status)

    def on_body(self, body: bytes) -> None:
        if self.stream is not None:
            self.stream.feed(body)
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        stream = self.stream
        if stream is None:
            self._complete()
            return
        stream.finish()
        stream.unpause()  # the rest of the body is buffered: the socket may read again
        self.stream = None
        self._recycle()

    # -- outcome ---------------------------------------------------------------------------
    def _start_stream(self, status: int) -> None:
        """The answer is streamed (chunked or ends with the connection, or SSE): hand the
        head over now and the body as it comes."""
        waiter, self.waiter = self.waiter, None
        self.stream = UpstreamStream(self)
        if waiter is not None and not waiter.done():
            waiter.set_result(UpstreamResponse(status, self.headers, b"", self.stream))

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        response = UpstreamResponse(self.parser.get_status_code(), self.headers, body)
        self._recycle()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _recycle(self) -> None:
        if self.is_open and self.parser.should_keep_alive():
            self.pool.release(self)
        else:
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def time_out(self) -> None:
        """The deadline passed: the answer can no longer be used, nor can the connection."""
        self._fail(UpstreamTimeout(f"{self.pool.address} did not answer in time"))
        self.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()


class ReplicaPool:
    """Idle keep-alive connections to one `host:port`."""

    def __init__(
        self, address: str, deadlines: Deadlines | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls`: speak TLS with this context (the control plane's API, when it has TLS)."""
        self.address = address
        self.deadlines = deadlines if deadlines is not None else Deadlines()
        self.tls = tls
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.idle: list[UpstreamConnection] = []
        self.is_closed = False

    async def request(self, head: bytes, body: bytes, deadline: float) -> UpstreamResponse:
        """Send one request (head + body) and wait for its response until `deadline`.

        A streamed answer returns once its head is in (the deadline covers only that far),
        its `stream` yielding the body.

        Raises:
            UpstreamDropped: connect refused or the connection dropped (see `is_retryable`).
            UpstreamTimeout: no answer (no head, for a streamed one) by `deadline` (loop time).
        """
        loop = asyncio.get_running_loop()
        connection = self.take_idle()
        if connection is None:
            connection = await self._connect(loop, deadline)
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        deadlines = self.deadlines
        deadlines.watch(connection, deadline)
        try:
            connection.send(head, body, waiter)
            return await waiter
        finally:
            deadlines.unwatch(connection)
            if not waiter.done():  # cancelled by the caller: the connection is mid-answer
                connection.abort()

    def take_idle(self) -> UpstreamConnection | None:
        """An open idle connection (now the caller's, to `send` on once), or None."""
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.is_open:
                return connection
        return None

    async def request_streamed(
        self, head: bytes, body: BodyStream, deadline: float
    ) -> UpstreamResponse:
        """`request` for a body still arriving: on a new connection, closed afterwards."""
        loop = asyncio.get_running_loop()
        connection = await self._connect(loop, deadline)
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self.deadlines.watch(connection, deadline)
        sending = loop.create_task(connection.send_streamed(head, body, waiter))
        try:
            return await waiter
        finally:
            self.deadlines.unwatch(connection)
            if not sending.done():
                sending.cancel()
            if not waiter.done():
                connection.abort()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> UpstreamConnection:
        try:
            async with asyncio.timeout_at(deadline):
                _, protocol = await loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port, ssl=self.tls
                )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {self.address} timed out") from None
        except OSError as exc:
            raise UpstreamDropped(f"cannot connect to {self.address}: {exc}", True, True) from exc
        return protocol

    def release(self, connection: UpstreamConnection) -> None:
        if self.is_closed:
            connection.close()
        else:
            self.idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)

    def close(self) -> None:
        """Close the idle connections; requests in flight finish on theirs, then close them."""
        self.is_closed = True
        self.close_idle()

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()
