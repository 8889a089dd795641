"""Sending a `StreamingResponse`: its body goes out chunk by chunk as the iterator makes it.

Kept apart from the connection (`server.py`), whose hot path is the one-buffer answer: a
streamed body is framed with chunked transfer-encoding (HTTP/1.1; an HTTP/1.0 client gets the
raw bytes and a close), written at the pace the client reads (the connection's `can_write`
event), and its iterator is closed however the answer ends, so a client that hangs up stops
the producer. A failure before the first chunk is still a clean 500; after it, the connection
is cut so the client cannot mistake a partial body for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import Protocol

from ksrv.http.messages import Response, StreamingResponse

logger = logging.getLogger(__name__)

REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Date(Protocol):
    def header(self) -> bytes: ...


class _Server(Protocol):
    @property
    def date(self) -> _Date: ...


class Connection(Protocol):
    """What a connection offers the streamed writer."""

    is_http11: bool
    is_closing: bool
    can_write: asyncio.Event

    @property
    def server(self) -> _Server: ...

    def send(self, data: bytes) -> bool: ...

    def write_response(self, response: Response, keep_alive: bool, is_head: bool) -> None: ...

    def abort(self) -> None: ...


async def send_streamed(
    connection: Connection, response: StreamingResponse, keep_alive: bool, is_head: bool
) -> bool:
    """Send a streamed body; True when the connection may carry another request."""
    chunked = connection.is_http11
    keep_alive = keep_alive and chunked
    status = response.status
    head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))]
    for name, value in response.headers:
        head.append(name + b": " + value + b"\r\n")
    if chunked:
        head.append(b"transfer-encoding: chunked\r\n")
    head.append(connection.server.date.header())
    if not keep_alive:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    whole_head = b"".join(head)
    pending_head: bytes | None = whole_head
    chunks = response.chunks
    try:
        if is_head:
            connection.send(whole_head)
            return keep_alive
        async for chunk in chunks:
            if not chunk:
                continue
            framed = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
            if pending_head is not None:
                framed, pending_head = pending_head + framed, None
            if not connection.send(framed):
                return False
            if not connection.can_write.is_set():
                await connection.can_write.wait()  # the client reads slower than we produce
            if connection.is_closing:
                return False
    except Exception:
        logger.exception("streamed response failed")
        if pending_head is not None:
            connection.write_response(
                Response(b'{"error":"Internal server error"}', 500), False, False
            )
        else:
            connection.abort()  # mid-body: the client must see a cut, not a complete answer
        return False
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    if pending_head is not None:
        connection.send(pending_head)  # an empty body
    if chunked:
        connection.send(b"0\r\n\r\n")
    return keep_alive
