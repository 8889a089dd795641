"""REST's side of the gateway path: one attempt on a replica, as raw bytes, and the answer.

Bodies are never decoded. `dispatch.Dispatcher` chooses the replica and retries; here a
request becomes one upstream write, and a failure before any response byte (refused, a
pooled keep-alive connection closed under us, a replica killed mid-request) is retryable:
inference calls are idempotent, but a response that has begun may not be replayed. A
streamed answer (chunked without a length, or `text/event-stream`) is passed on chunk by
chunk as a `StreamingResponse`; one with a content-length leaves whole, as it came.

Request bodies up to `STREAM_BODY_OVER` arrive whole and keep every retry above. A longer
(or chunked) body is streamed to the replica as it arrives (`Request.body_stream`), so the
gateway never holds it: it goes on a fresh connection (a pooled one may have been closed
under us, and a body already sent cannot be sent again), and is retried on another replica
only when none of it was sent (the connection was refused).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from functools import partial
from types import MappingProxyType

import orjson

from ksrv.errors import KsrvError, Unauthenticated, UpstreamTimeout
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match
from ksrv.http.deadlines import Deadlines
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.http.upstream import ReplicaPool, UpstreamDropped, UpstreamResponse
from ksrv.protocol import status, tokens

_JSON = [(b"content-type", b"application/json")]
NO_HEADERS: Mapping[str, str] = MappingProxyType({})  # what hooks read when there are none
# Bodies above this are streamed to the replica rather than buffered (see the docstring).
STREAM_BODY_OVER = 1024 * 1024

# RFC 9110 7.6.1 hop-by-hop fields, plus the framing we redo ourselves (a whole body leaves
# with a content-length, a streamed one chunked) and the identity headers we set.
_DROP_REQUEST = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"kserve-isvc-name",
        b"kserve-isvc-namespace",
    }
)
_PLAIN_CONNECTION_BYTES = frozenset({b"keep-alive", b"close"})
_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
    }
)


class RESTTransport:
    """HTTP/1.1 keep-alive pools per replica address (`Endpoint.conn`)."""

    def __init__(self) -> None:
        self.deadlines = Deadlines()
        self.balancer: Balancer[ReplicaPool] = Balancer(
            lambda address: ReplicaPool(address, self.deadlines)
        )

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        return backend.http

    async def send(
        self, endpoint: Endpoint[ReplicaPool], call: Call, match: Match
    ) -> UpstreamResponse:
        """The replica's answer to the REST request in `call.payload` (any status)."""
        request: Request = call.payload
        service = match.service
        body_stream = request.body_stream
        if body_stream is None:
            framing = b"content-length: %d" % len(request.body)
        elif body_stream.length is not None:
            framing = b"content-length: %d" % body_stream.length
        else:
            framing = b"transfer-encoding: chunked"
        head = request_head(request, match.target, service.identity, framing)
        timeout_s = match.component.timeout_s or service.timeout_s
        pool = endpoint.conn
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            if body_stream is None:
                answer = await pool.request(head, request.body, deadline)
            else:
                answer = await pool.request_streamed(head, body_stream, deadline)
        except UpstreamTimeout as exc:
            raise timed_out(match, timeout_s, exc) from None
        except UpstreamDropped as exc:
            if exc.is_retryable:
                # Its other idle connections likely died with this one (a restarted
                # replica): the retry should not draw another stale one.
                pool.close_idle()
            raise
        self.took(endpoint, call, answer)
        return answer

    def took(self, endpoint: Endpoint[ReplicaPool], call: Call, answer: UpstreamResponse) -> None:
        """`endpoint` answered `call` (here or on the fast path): its status, and a streamed
        answer keeps the replica counted busy until its body ends."""
        call.code = answer.status
        if answer.stream is not None:
            endpoint.outstanding += 1
            answer.stream.on_close = partial(self.balancer.release, endpoint)

    def close(self) -> None:
        for pool in self.balancer.keep_only(set()):
            pool.close()
        self.deadlines.close()


def error_response(exc: KsrvError) -> Response:
    """A failure as KServe answers it: `{"error": ...}` with its status (`protocol/status.py`)."""
    body = orjson.dumps({"error": status.public_message(exc)})
    headers = [*_JSON, tokens.CHALLENGE] if isinstance(exc, Unauthenticated) else _JSON
    return Response(body, status.http_status(exc), headers)


def timed_out(match: Match, timeout_s: float, exc: UpstreamTimeout) -> UpstreamTimeout:
    """A replica's timeout as the caller reads it: which component of which service."""
    service = match.service
    return UpstreamTimeout(
        f"{match.component.name} of {service.namespace}/{service.name} did not "
        f"answer within {timeout_s:g} s ({exc.message})"
    )


def respond(answer: UpstreamResponse) -> Response | StreamingResponse:
    """The client-facing response for a replica's answer."""
    if answer.stream is not None:
        return StreamingResponse(answer.stream, answer.status, response_headers(answer))
    return Response(answer.body, answer.status, response_headers(answer))


def request_head(
    request: Request,
    target: bytes,
    identity: bytes,
    framing: bytes,
    drop: frozenset[bytes] = _DROP_REQUEST,
) -> bytes:
    """The head to send upstream; `identity` is `Service.identity` (KServe's isvc headers),
    `framing` the body's content-length or transfer-encoding field."""
    parts = [request.method.encode(), b" ", target or b"/", b" HTTP/1.1\r\n"]
    forwarded_for = request.client.encode()
    for key, value in request.raw_headers:
        if key in drop:
            if key == b"x-forwarded-for":
                forwarded_for = value + b", " + forwarded_for
            elif (
                key == b"connection"
                and drop is _DROP_REQUEST
                and value.lower() not in _PLAIN_CONNECTION_BYTES
            ):
                # It names more hop-by-hop fields, possibly ones already kept: start over.
                options = [v for k, v in request.raw_headers if k == b"connection"]
                drop = drop | _connection_options(b",".join(options))
                return request_head(request, target, identity, framing, drop)
            continue
        parts += (key, b": ", value, b"\r\n")
    parts += (
        b"x-forwarded-for: ",
        forwarded_for,
        identity,
        b"\r\n",
        framing,
        b"\r\n\r\n",
    )
    return b"".join(parts)


def _connection_options(value: bytes) -> frozenset[bytes]:
    """Fields a `Connection` header names are hop-by-hop too (RFC 9110 7.6.1)."""
    options = {token.strip().lower() for token in value.split(b",")}
    options -= {b"close", b"keep-alive", b"x-forwarded-for", b""}
    return frozenset(options)


def response_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """The upstream headers a client may see: no hop-by-hop fields, no framing."""
    drop = _DROP_RESPONSE
    kept = []
    for item in response.headers:
        if item[0] in drop:
            if item[0] == b"connection" and item[1].lower() not in _PLAIN_CONNECTION_BYTES:
                # It names more hop-by-hop fields, possibly ones already kept: filter again.
                drop = drop | _connection_options(item[1])
                return [item for item in response.headers if item[0] not in drop]
            continue
        kept.append(item)
    return kept


class LazyHeaders(Mapping[str, str]):
    """A request's headers, decoded only once a hook reads them (the traffic counter, on
    every request, never does)."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __getitem__(self, name: str) -> str:
        # One field (the token check reads `authorization` only), without decoding them all.
        value = self._request.header(name.encode("latin-1"))
        if value is None:
            raise KeyError(name)
        return value.decode("latin-1")

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.headers)

    def __len__(self) -> int:
        return len(self._request.headers)
