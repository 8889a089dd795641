"""The gateway's spans, wired in once at start when tracing is on.

With tracing off nothing here runs and the request path is untouched. On, each request gets
a SERVER span (parent: the caller's `traceparent`) that takes the InferenceService,
component and revision attributes once routed, and each attempt on a replica a CLIENT span
whose context replaces the trace headers the replica receives (the caller's B3 headers pass
on unchanged, as every other header does). Retries are sibling attempts under one request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from ksrv.gateway.balancer import Endpoint
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Match
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

Handler = Callable[[Request], Coroutine[Any, Any, Response | StreamingResponse]]
Send = Callable[[Endpoint[Any], Call, Match], Coroutine[Any, Any, Any]]
Forward = Callable[[str, bytes, Any], Coroutine[Any, Any, bytes]]
_TRACE_HEADERS = frozenset(tracing.TRACE_HEADERS)
_TRACE_HEADER_BYTES = frozenset(name.encode() for name in tracing.TRACE_HEADERS)


def instrument_rest(gateway: Any) -> None:
    """Trace the REST requests of a `Gateway` and its attempts on replicas."""
    gateway.handle = rest_handler(gateway.handle)
    gateway.rest.send = rest_send(gateway.rest.send)


def instrument_grpc(transport: Any, forwarder: Any) -> None:
    """Trace the gRPC calls a `GRPCProxy` forwards and its attempts on replicas."""
    transport.send = grpc_send(transport.send)
    forwarder.forward = grpc_forward(forwarder.forward)


def rest_handler(handle: Handler) -> Handler:
    """`handle` inside a SERVER span per REST request."""

    async def traced_handle(request: Request) -> Response | StreamingResponse:
        attributes = {"http.request.method": request.method, "url.path": request.path}
        host = request.header(b"host")
        if host:
            address = host.decode("latin-1")
            attributes["server.address"] = address.rpartition(":")[0] or address
        context = tracing.incoming(request.headers)
        with tracing.span(request.method, "SERVER", attributes, context) as span:
            response = await handle(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                from opentelemetry.trace import StatusCode

                span.set_status(StatusCode.ERROR)
            return response

    return traced_handle


def rest_send(send: Send) -> Send:
    """`RESTTransport.send` inside a CLIENT span whose context goes to the replica."""

    async def traced_send(endpoint: Endpoint[Any], call: Call, match: Match) -> Any:
        with _attempt(endpoint, call, match) as span:
            request: Request = call.payload
            kept = [item for item in request.raw_headers if item[0] not in _TRACE_HEADER_BYTES]
            injected = tracing.outgoing_headers()
            kept += [(k.encode(), v.encode("latin-1")) for k, v in injected.items()]
            request.raw_headers = kept
            answer = await send(endpoint, call, match)
            span.set_attribute("http.response.status_code", answer.status)
            return answer

    return traced_send


def grpc_send(send: Send) -> Send:
    """`GRPCTransport.send` inside a CLIENT span whose context goes to the replica."""

    async def traced_send(endpoint: Endpoint[Any], call: Call, match: Match) -> Any:
        with _attempt(endpoint, call, match):
            request = call.payload
            kept = [item for item in request.metadata if item[0] not in _TRACE_HEADERS]
            request.metadata = (*kept, *tracing.outgoing_headers().items())
            return await send(endpoint, call, match)

    return traced_send


def grpc_forward(forward: Forward) -> Forward:
    """The gRPC forwarder's `forward(method, message, context)` inside a SERVER span."""

    async def traced_forward(method: str, message: bytes, context: Any) -> bytes:
        metadata = context.invocation_metadata() or ()
        headers = {str(k): v for k, v in metadata if isinstance(v, str)}
        service, _, rpc = method.strip("/").partition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}
        with tracing.span(method.strip("/"), "SERVER", attributes, tracing.incoming(headers)):
            return await forward(method, message, context)

    return traced_forward


@contextlib.contextmanager
def _attempt(endpoint: Endpoint[Any], call: Call, match: Match) -> Iterator[Span]:
    """One attempt's CLIENT span; the request's own span learns where it was routed."""
    service = match.service
    attributes: dict[str, Any] = {
        tracing.INFERENCE_SERVICE: service.name,
        tracing.NAMESPACE: service.namespace,
        tracing.COMPONENT: match.component.name,
    }
    if call.backend is not None:
        attributes[tracing.REVISION] = call.backend.revision
    tracing.set_attributes(attributes)
    host, _, port = endpoint.address.rpartition(":")
    attributes["server.address"] = host
    if port.isdigit():
        attributes["server.port"] = int(port)
    if call.transport == "rest":
        name = call.payload.method
        attributes["http.request.method"] = name
    else:
        name = call.target.decode("latin-1").strip("/")
        attributes["rpc.system"] = "grpc"
    with tracing.span(name, "CLIENT", attributes) as span:
        yield span
