"""Request bodies as `ksrv.http.server` receives them: gathered whole, or streamed.

`IncomingBody` holds one request's body within the server's limit. A body the handler gets
whole is gathered; a large one into a single buffer as it arrives, so each read's chunk is
freed at once (kept as a list, 100 MB of 256 KB chunks fragment the heap, and the process
keeps that memory long after the request). With the server's `stream_body_over` set (the
gateway), a body without a length or longer than that reaches the handler while it still
arrives (`BodyStream`, `Request.body_stream`), so a proxy passes it on without holding it.
Back-pressure: above `_HIGH_WATER_BYTES` unread, the connection stops reading the client
until the handler has taken the chunks. A body that passes the limit, or a client that hangs
up, ends the stream with an error.
"""

from __future__ import annotations

from typing import Protocol

from ksrv.errors import InvalidInput, PayloadTooLarge
from ksrv.http.chunks import ChunkQueue

# The body limit of model servers and of the gateway in front of them: one value, so the
# gateway never takes in a body a replica would refuse.
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024
_HIGH_WATER_BYTES = 1024 * 1024
_LOW_WATER_BYTES = 256 * 1024
_GATHER_OVER_BYTES = 1024 * 1024


class BodyCutOff(InvalidInput):
    """The client closed the connection before the whole body arrived."""


class Reading(Protocol):
    """The connection's side: stop and restart reading the client."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...


class BodyStream(ChunkQueue):
    """The chunks of one request body, in order; `length` is its Content-Length, if any."""

    def __init__(self, reading: Reading, length: int | None) -> None:
        super().__init__(
            reading.pause_body, reading.resume_body, _HIGH_WATER_BYTES, _LOW_WATER_BYTES
        )
        self.length = length
        self.is_started = False  # the handler has taken a chunk: it cannot be replayed
        self.is_received = False  # the last chunk arrived
        self.error: BaseException | None = None

    # -- fed by the connection -------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.push(chunk)

    def finish(self, error: BaseException | None = None) -> None:
        """The body is complete (`error` None) or will never be."""
        if self.is_received or self.error is not None:
            return
        if error is None:
            self.is_received = True
        else:
            self.error = error
            self.chunks.clear()
        self.wake()

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
            await self.wait()
        return self.pop()


class IncomingBody:
    """One request's body, from its head's framing fields: its declared `length` (None when
    chunked or absent), whether it `is_too_large` already, and where its bytes go."""

    def __init__(
        self,
        reading: Reading,
        headers: list[tuple[bytes, bytes]],
        max_bytes: int,
        stream_over: int | None,
    ) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.length: int | None = None
        self.parts: list[bytes] = []
        self.buffer: bytearray | None = None
        self.stream: BodyStream | None = None
        is_chunked = self.expects_continue = False  # `Expect: 100-continue`
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                self.length = int(value)
            elif name == b"transfer-encoding":
                is_chunked = True
            elif name == b"expect":
                self.expects_continue = value.lower() == b"100-continue"
        self.is_too_large = (self.length or 0) > max_bytes
        is_long = is_chunked or (self.length or 0) > (stream_over or 0)
        if stream_over is not None and is_long and not self.is_too_large:
            self.stream = BodyStream(reading, None if is_chunked else self.length)

    def add(self, chunk: bytes) -> bool:
        """Take the next piece; False (and drop what came) once the body passes the limit."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.parts, self.buffer = [], None
            if self.stream is not None:
                self.stream.finish(
                    PayloadTooLarge(f"request body of {self.size} bytes exceeds {self.max_bytes}")
                )
            return False
        if self.stream is not None:
            self.stream.feed(chunk)
        elif self.buffer is not None:
            self.buffer += chunk
        elif self.size > _GATHER_OVER_BYTES:
            self.buffer = bytearray().join(self.parts)
            self.buffer += chunk
            self.parts = []
        else:
            self.parts.append(chunk)
        return True

    def take(self) -> bytes:
        """The whole body gathered (empty for a streamed one)."""
        if self.buffer is not None:
            body, self.buffer = bytes(self.buffer), None
            return body
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)
