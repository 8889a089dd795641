"""A request body handed to the handler while it still arrives (`Request.body_stream`).

`ksrv.http.server` streams a body without a length, or one longer than the server's
`stream_body_over`, so a proxy can pass it on without holding it whole: the gateway's memory
then stays flat under large uploads. Back-pressure: above `_HIGH_WATER_BYTES` unread, the
connection stops reading the client until the handler has taken the chunks. A body that
passes the server's limit, or a client that hangs up, ends the stream with an error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from ksrv.errors import InvalidInput, PayloadTooLarge

_HIGH_WATER_BYTES = 1024 * 1024
_LOW_WATER_BYTES = 256 * 1024


class BodyCutOff(InvalidInput):
    """The client closed the connection before the whole body arrived."""


class Reading(Protocol):
    """The connection's side: stop and restart reading the client."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...


class BodyStream:
    """The chunks of one request body, in order; `length` is its Content-Length, if any."""

    def __init__(self, reading: Reading, length: int | None) -> None:
        self.reading = reading
        self.length = length
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.is_paused = False
        self.is_started = False  # the handler has taken a chunk: it cannot be replayed
        self.is_received = False  # the last chunk arrived
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- fed by the connection -------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        if self.buffered > _HIGH_WATER_BYTES and not self.is_paused:
            self.is_paused = True
            self.reading.pause_body()
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        """The body is complete (`error` None) or will never be."""
        if self.is_received or self.error is not None:
            return
        if error is None:
            self.is_received = True
        else:
            self.error = error
            self.chunks.clear()
        self._wake()

    def too_large(self, size: int, limit: int) -> None:
        self.finish(PayloadTooLarge(f"request body of {size} bytes exceeds {limit}"))

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the handler ---------------------------------------------------------------
    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        self.is_started = True
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.is_received:
                raise StopAsyncIteration
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.is_paused and self.buffered <= _LOW_WATER_BYTES:
            self.is_paused = False
            self.reading.resume_body()
        return chunk
