"""HTTP/1.1 keep-alive connections to one upstream replica, on asyncio Protocols + httptools.

Why not httpx: per request it costs several times what the whole proxy hop may spend. Here a
request is one `transport.write` of bytes built by the caller and a response is whatever the
httptools parser hands back (chunked bodies arrive de-chunked). A failure says whether any
response byte had arrived, because only a request with no answer begun may be retried.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httptools

from ksrv.errors import UpstreamFailed, UpstreamTimeout

# How long a replica that refused a connection is skipped, unless no other is left.
_DOWN_S = 2.0
# Bodies above this are written separately instead of being copied into one buffer.
_JOIN_MAX_BYTES = 65536


class UpstreamResponse:
    """A complete upstream answer: status, raw headers (lower-case names) and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class UpstreamDropped(UpstreamFailed):
    """The connection failed or closed; `is_retryable` when no response byte had arrived."""

    def __init__(self, message: str, is_retryable: bool) -> None:
        super().__init__(message)
        self.is_retryable = is_retryable


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.is_open = True
        self._reset()

    def _reset(self) -> None:
        self.is_head = False
        self.has_bytes = False
        self.has_length = False
        self.headers_done = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def send(self, data: bytes, body: bytes, waiter: asyncio.Future[UpstreamResponse]) -> None:
        assert self.transport is not None
        self._reset()
        self.is_head = data.startswith(b"HEAD ")
        self.waiter = waiter
        if body and len(body) > _JOIN_MAX_BYTES:
            self.transport.write(data)
            self.transport.write(body)
        else:
            self.transport.write(data + body if body else data)

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.has_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                UpstreamDropped(f"malformed response from {self.pool.address}: {exc}", False)
            )
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        self.pool.forget(self)
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and not self.has_length:
            self._complete()  # a body delimited by the connection closing
            return
        reason = "connection closed" if exc is None else f"connection failed: {exc}"
        retryable = not self.has_bytes
        self._fail(UpstreamDropped(f"{self.pool.address}: {reason}", retryable))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.has_length = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.is_head:
            # No body follows, but the parser cannot be told so and would wait for one:
            # answer now and do not reuse the connection.
            self.is_open = False
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._complete()

    # -- outcome ---------------------------------------------------------------------------
    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        response = UpstreamResponse(self.parser.get_status_code(), self.headers, body)
        if self.is_open and self.parser.should_keep_alive():
            self.pool.release(self)
        else:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def time_out(self, exc: UpstreamTimeout) -> None:
        """The deadline passed: the answer can no longer be used, nor can the connection."""
        self._fail(exc)
        self.abort()

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()


class ReplicaPool:
    """Idle keep-alive connections to one `host:port`, and its count of requests in flight."""

    def __init__(self, address: str) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.idle: list[_Connection] = []
        self.outstanding = 0
        self.down_until = 0.0
        self.is_closed = False

    async def request(self, head: bytes, body: bytes, deadline: float) -> UpstreamResponse:
        """Send one request (head + body) and wait for its response until `deadline`.

        Raises:
            UpstreamDropped: connect refused or the connection dropped (see `is_retryable`).
            UpstreamTimeout: no complete answer by `deadline` (loop time).
        """
        loop = asyncio.get_running_loop()
        connection = await self._acquire(loop, deadline)
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        timer = loop.call_at(
            deadline,
            connection.time_out,
            UpstreamTimeout(f"{self.address} did not answer in time"),
        )
        self.outstanding += 1
        try:
            connection.send(head, body, waiter)
            return await waiter
        finally:
            self.outstanding -= 1
            timer.cancel()
            if not waiter.done():  # cancelled by the caller: the connection is mid-answer
                connection.abort()

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.is_open:
                return connection
        try:
            async with asyncio.timeout_at(deadline):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {self.address} timed out") from None
        except OSError as exc:
            self.down_until = time.monotonic() + _DOWN_S
            raise UpstreamDropped(f"cannot connect to {self.address}: {exc}", True) from exc
        self.down_until = 0.0
        return protocol

    def release(self, connection: _Connection) -> None:
        if self.is_closed:
            connection.close()
        else:
            self.idle.append(connection)

    def forget(self, connection: _Connection) -> None:
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
