"""What `ksrv.http.server` hands a handler and takes back: request and response objects (and
the fast path's interface: `server.py` says what it is).

Kept apart from the connection handling so the types read on their own; `Request` decodes
its path and headers lazily, because a proxy that reads neither should not pay for them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import httptools

if TYPE_CHECKING:
    from ksrv.http.body import BodyStream


class Request:
    """One complete HTTP request: method, decoded path, lower-case headers, body.

    `target` (the request line's target, path and query as sent), `raw_headers` (lower-case
    names, values as received, in order) and `client` (the peer's address) let a proxy pass
    a request on without re-encoding it. `path` and `headers` are decoded on first use: a
    proxy that reads neither (the gateway) does not pay for them. `body_stream`, when set,
    yields a body that is still arriving (`body` is then empty).
    """

    __slots__ = (
        "_headers",
        "_path",
        "body",
        "body_stream",
        "client",
        "method",
        "raw_headers",
        "target",
    )

    def __init__(
        self,
        method: str,
        path: str | None,
        headers: dict[str, str] | None,
        body: bytes,
        target: bytes = b"",
        raw_headers: list[tuple[bytes, bytes]] | None = None,
        client: str = "",
        body_stream: BodyStream | None = None,
    ) -> None:
        self.method = method
        self._path = path
        self._headers = headers
        self.body = body
        self.target = target
        self.raw_headers = raw_headers if raw_headers is not None else []
        self.client = client
        self.body_stream = body_stream

    @property
    def path(self) -> str:
        """The target's path, percent-decoded."""
        if self._path is None:
            self._path = decode_path(self.target)
        return self._path

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names to values (the last of repeated fields wins)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers
            }
        return headers

    def header(self, name: bytes) -> bytes | None:
        """The raw value of the last `name` field (lower-case), without decoding all."""
        found = None
        for key, value in self.raw_headers:
            if key == name:
                found = value
        return found


def decode_path(target: bytes) -> str:
    """A request target's path, percent-decoded (httptools refuses a malformed target)."""
    path = httptools.parse_url(target).path.decode("latin-1") if target else "/"
    return unquote(path) if "%" in path else path


class Response:
    """What a handler returns: a status, a body and extra headers (name, value) as bytes."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int = 200, headers: list[Any] | None = None):
        self.body = body
        self.status = status
        self.headers = headers if headers is not None else []


class StreamingResponse:
    """A response whose body an async iterator produces piece by piece (SSE, token streams).

    The head goes out with the first chunk, so an iterator that fails before yielding
    anything is still answered 500 rather than cut off. Empty chunks are skipped (an empty
    chunk would end a chunked body). On HTTP/1.0 the body is sent raw and the connection
    closed, as that version has no chunked encoding.
    """

    __slots__ = ("chunks", "headers", "status")

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.headers = headers if headers is not None else []


Answer = Response | StreamingResponse


class FastReply(Protocol):
    """The connection of a request the fast path took: where its answer goes."""

    fast_cancel: Callable[[], None] | None

    def fast_done(self, answer: Answer | Awaitable[Answer]) -> None: ...


class FastPath(Protocol):
    """Answers some requests without a task (see the module docstring)."""

    def __call__(self, request: Request, reply: FastReply) -> bool:
        """True: taken, and answered through `reply.fast_done` exactly once (maybe before
        returning); while it is not, `reply.fast_cancel` says what to do if the client hangs
        up. False: not taken (nothing was done), the handler gets it."""
        ...


class HTTPDate:
    """A response's Date header, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = (
                b"date: "
                + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
                + b"\r\n"
            )
        return self._value
