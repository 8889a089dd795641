"""Where the model server records payloads for the logger: around REST and gRPC inference.

The REST handler and gRPC's `ModelInfer` are wrapped only when a logger is configured, so a
server without one runs exactly the code it ran before. As KServe's agent does, the request
is recorded before it is answered and the response only when it is a 200, both under one
event id. What counts as inference on REST: every POST except the repository extension
(health and metadata GETs, the platform's probes among them, are never logged). gRPC
messages are logged as their V2 REST JSON, encoded on the sender thread.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.protocol import grpc_codec, rest_codec
from ksrv.server import payload_events
from ksrv.server.payload_events import JSON, REQUEST_TYPE, RESPONSE_TYPE, Payload
from ksrv.server.payload_log import PayloadLog

STATUS_PATH: Final = "/ksrv/server/payload-logger"
_NOT_LOGGED_PREFIX: Final = "/v2/repository/"

Handler = Callable[[Request], Awaitable[Response | StreamingResponse]]
GRPCMethod = Callable[[Any, Any], Awaitable[Any]]


class LoggedREST:
    """A REST handler that hands the payloads of inference calls to a `PayloadLog`, and
    answers `GET /ksrv/server/payload-logger` with the log's counts."""

    def __init__(self, handler: Handler, log: PayloadLog) -> None:
        self._handler = handler
        self._log = log
        self._names = log.settings.metadata_headers

    async def handle(self, request: Request) -> Response | StreamingResponse:
        if request.method != "POST" or request.path.startswith(_NOT_LOGGED_PREFIX):
            if request.method == "GET" and request.path == STATUS_PATH:
                body = rest_codec.dumps(self._log.stats().as_dict())
                return Response(body, 200, [(b"content-type", b"application/json")])
            return await self._handler(request)
        log = self._log
        ce_id = request_id = content_type = None
        for key, value in request.raw_headers:  # one pass, no dict of every header
            if key == b"ce-id":
                ce_id = value
            elif key == b"x-request-id":
                request_id = value
            elif key == b"content-type":
                content_type = value
        event_id = payload_events.caller_id(_text(ce_id), _text(request_id)) or log.ids.next()
        metadata = (
            payload_events.selected_headers(_decoded(request.raw_headers), self._names)
            if self._names
            else {}
        )
        if log.is_logging_requests:
            log.submit(
                Payload(
                    REQUEST_TYPE, event_id, request.body, _text(content_type) or JSON, metadata,
                    time.time(),
                )
            )  # fmt: skip
        response = await self._handler(request)
        if log.is_logging_responses and response.status == 200:
            answered_as = _content_type(response.headers)
            if isinstance(response, StreamingResponse):
                response.chunks = _teed(response.chunks, log, event_id, answered_as, metadata)
            else:
                log.submit(
                    Payload(
                        RESPONSE_TYPE, event_id, response.body, answered_as, metadata, time.time()
                    )
                )
        return response


async def _teed(
    chunks: AsyncIterator[bytes],
    log: PayloadLog,
    event_id: str | int,
    content_type: str,
    metadata: dict[str, list[str]],
) -> AsyncIterator[bytes]:
    """A streamed body passed on chunk by chunk, logged whole once it has ended."""
    sent: list[bytes] = []
    is_complete = False
    try:
        async for chunk in chunks:
            sent.append(chunk)
            yield chunk
        is_complete = True
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        if is_complete:
            body = b"".join(sent)
            log.submit(Payload(RESPONSE_TYPE, event_id, body, content_type, metadata, time.time()))


def logged_infer(method: GRPCMethod, log: PayloadLog) -> GRPCMethod:
    """gRPC `ModelInfer` that hands its request and (successful) response to `log`."""
    names = log.settings.metadata_headers

    async def infer(request: Any, context: Any) -> Any:
        pairs = [
            (key, value)
            for key, value in (context.invocation_metadata() or ())
            if isinstance(value, str)
        ]
        found = dict(pairs)
        event_id = (
            payload_events.caller_id(found.get("ce-id"), found.get("x-request-id"))
            or log.ids.next()
        )
        metadata = payload_events.selected_headers(pairs, names)
        if log.is_logging_requests:
            log.submit(
                Payload(
                    REQUEST_TYPE, event_id, request, JSON, metadata, time.time(),
                    encode=_request_json,
                )
            )  # fmt: skip
        response = await method(request, context)  # an aborted call raises: no response
        if log.is_logging_responses:
            log.submit(
                Payload(
                    RESPONSE_TYPE, event_id, response, JSON, metadata, time.time(),
                    encode=_response_json,
                )
            )  # fmt: skip
        return response

    return infer


def _request_json(message: Any, event_id: str) -> bytes:
    """A `ModelInferRequest` as its V2 REST JSON; without an id of its own, the event's."""
    request = grpc_codec.decode_request(message)
    request.id = request.id or event_id
    return rest_codec.encode_request(request)


def _response_json(message: Any, event_id: str) -> bytes:
    response = grpc_codec.decode_response(message)
    for output in response.outputs:
        output.parameters.pop("binary_data", None)
    return rest_codec.encode_response(response)[0]


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _decoded(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in raw_headers]


def _content_type(headers: list[Any]) -> str:
    for key, value in headers:
        if key == b"content-type":
            return str(value.decode("latin-1"))
    return JSON
