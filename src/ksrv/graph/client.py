"""POSTing a step's body to its `serviceUrl`: HTTP/1.1 keep-alive connections per address,
on asyncio Protocols + httptools.

Why not httpx: a step call through it costs more CPU than the router's whole budget per hop
(bench/graph_router.py); here a call is one write of bytes and whatever the parser hands back.
Answers are taken whole (content-length, chunked, or ended by the connection closing): a graph
step's answer is a JSON document the router reads or merges. A failure is raised as
`UpstreamFailed` (unreachable, cut off) or `UpstreamTimeout` (no answer in time), never as a
raw socket error.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from ksrv.errors import UpstreamFailed, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes | None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a `serviceUrl` points, and the request line + Host header to send there."""

    host: str
    port: int
    is_tls: bool
    head: bytes  # "POST /path HTTP/1.1\r\nhost: ...\r\n"

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        is_tls = parts.scheme == "https"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if is_tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n".encode("latin-1")
        return cls(host, port, is_tls, head)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.is_open = True
        self.body: list[bytes] = []
        self.content_type: bytes | None = None
        self.has_length = False
        self.is_headers_done = False
        self.has_bytes = False

    def send(self, data: bytes, waiter: asyncio.Future[Answer]) -> None:
        """Write one request; `waiter` gets its answer.

        Raises:
            UpstreamFailed: the connection is closed already.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            self.is_open = False
            raise UpstreamFailed("the connection closed before the request was sent")
        self.body, self.content_type, self.waiter = [], None, waiter
        self.has_length = self.is_headers_done = self.has_bytes = False
        transport.write(data)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.has_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamFailed(f"malformed response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        if self.is_headers_done and not self.has_length:
            self.on_message_complete()  # a body delimited by the connection closing
            return
        reason = "the connection closed" if exc is None else f"the connection failed: {exc}"
        self._fail(UpstreamFailed(f"{reason} before an answer came"))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name in (b"content-length", b"transfer-encoding"):
            self.has_length = True

    def on_headers_complete(self) -> None:
        self.is_headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self.parser.get_status_code(), body, self.content_type))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()


class StepClient:
    """Idle connections per address; `post` reuses one or opens one."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self,
        target: Target,
        body: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        deadline: float | None,
    ) -> Answer:
        """POST `body` (JSON) with `headers` to `target`; the answer, whatever its status.

        Raises:
            UpstreamFailed: the service could not be reached, or hung up without answering.
            UpstreamTimeout: no whole answer by `deadline` (loop time).
        """
        head = [target.head]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        data = b"".join(head) + body
        if deadline is None:
            return await self._exchange(target, data)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._exchange(target, data)
        except TimeoutError:
            raise UpstreamTimeout("no answer in time") from None

    async def _exchange(self, target: Target, data: bytes) -> Answer:
        idle = self.idle.setdefault((target.host, target.port, target.is_tls), [])
        while idle:
            connection = idle.pop()
            if connection.is_open:
                answer = await self._send(connection, data, idle, is_reused=True)
                if answer is not None:
                    return answer
        answer = await self._send(await self._connect(target), data, idle, is_reused=False)
        assert answer is not None
        return answer

    async def _send(
        self, connection: _Connection, data: bytes, idle: list[_Connection], is_reused: bool
    ) -> Answer | None:
        """The answer on `connection`; None when a kept-alive connection turns out closed by
        the service before answering a byte (the caller tries another)."""
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        try:
            connection.send(data, waiter)
            answer = await waiter
        except UpstreamFailed:
            connection.abort()
            if is_reused and not connection.has_bytes:
                return None
            raise
        except BaseException:
            connection.abort()  # cancelled (deadline, client gone): the connection is mid-answer
            raise
        if connection.is_open:
            idle.append(connection)
        return answer

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = None
        if target.is_tls:
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            _, connection = await loop.create_connection(
                _Connection, target.host, target.port, ssl=tls
            )
        except OSError as exc:
            raise UpstreamFailed(f"cannot connect: {exc}") from None
        return connection

    def close(self) -> None:
        idle, self.idle = self.idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
