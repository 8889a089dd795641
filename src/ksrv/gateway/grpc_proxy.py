"""gRPC on the gateway's second port: any (unary) method, forwarded as raw bytes.

Routed by host like REST, through the same `dispatch.Dispatcher` (balancer, hold, hooks).
grpcio 1.85 does not show a server handler the call's `:authority` (`HandlerCallDetails` has
only `method` and `invocation_metadata`, which lacks it), so the host comes from `host`
metadata, as KServe's Python gRPC samples send it. UNAVAILABLE is the one answer retried on
another replica: from a channel that is not connected it means nothing reached the replica
(held like REST when no replica is left); from a connected one it is the replica's own word,
passed back when no other replica is left. Any other status of the replica comes back as is.
The per-method handlers are cached, but only `MAX_CACHED_METHODS` of them (least recently
used out first): method names come from callers, and random ones must not grow memory.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import grpc

from ksrv.errors import KsrvError
from ksrv.gateway.balancer import Balancer, Endpoint
from ksrv.gateway.dispatch import Dispatcher
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Backend, Match
from ksrv.http.tls import TLSFiles
from ksrv.http.upstream import UpstreamDropped
from ksrv.protocol import status
from ksrv.telemetry import tracing

# A real model server has about a dozen methods; the rest of this many are callers' inventions.
MAX_CACHED_METHODS = 256
_SKIP_METADATA = frozenset({"user-agent", "kserve-isvc-name", "kserve-isvc-namespace"})


class ReplicaStatus(Exception):
    """A replica's own non-OK answer, to be passed back to the caller unchanged."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details() or "")
        self.code = error.code()
        self.details = error.details() or ""
        self.trailing = tuple(error.trailing_metadata() or ())


class GRPCRequest:
    """The transport's part of a `Call`: method, message bytes, metadata, client deadline."""

    __slots__ = ("deadline", "message", "metadata", "method")

    def __init__(
        self, method: str, message: bytes, metadata: tuple[Any, ...], deadline: float | None
    ) -> None:
        self.method = method
        self.message = message
        self.metadata = metadata
        self.deadline = deadline

    def without_deadline(self) -> GRPCRequest:
        """The same request for a shadow copy, sent after the answer: the client's deadline
        is not the copy's (the route's timeout is)."""
        return GRPCRequest(self.method, self.message, self.metadata, None)


class GRPCTransport:
    """One channel per replica gRPC address (`Endpoint.conn`)."""

    def __init__(self, options: list[Any]) -> None:
        self.options = options
        self.balancer: Balancer[grpc.aio.Channel] = Balancer(self._connect)

    def _connect(self, address: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(address, self.options)

    def addresses(self, backend: Backend) -> tuple[str, ...]:
        return backend.grpc

    async def send(self, endpoint: Endpoint[grpc.aio.Channel], call: Call, match: Match) -> bytes:
        request: GRPCRequest = call.payload
        service = match.service
        forwarded = [(k, v) for k, v in request.metadata if k not in _SKIP_METADATA]
        forwarded += [
            ("kserve-isvc-name", service.name),
            ("kserve-isvc-namespace", service.namespace),
        ]
        timeout_s = match.component.timeout_s or service.timeout_s
        if request.deadline is not None:
            timeout_s = max(min(timeout_s, request.deadline - time.monotonic()), 0.0)
        channel = endpoint.conn
        try:
            answer: bytes = await channel.unary_unary(request.method)(
                request.message, metadata=forwarded, timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise ReplicaStatus(exc) from None
            is_connected = channel.get_state() == grpc.ChannelConnectivity.READY
            raise UpstreamDropped(
                f"{endpoint.address}: {exc.details()}",
                True,
                is_refused=not is_connected,
                answer=ReplicaStatus(exc) if is_connected else None,
            ) from None
        return answer


class _Forwarder:
    """A generic RPC handler (grpcio only asks for `service`) that forwards every method."""

    def __init__(self, dispatcher: Dispatcher, transport: GRPCTransport) -> None:
        self.dispatcher = dispatcher
        self.transport = transport
        self.handler = functools.lru_cache(maxsize=MAX_CACHED_METHODS)(self._handler)

    def service(self, handler_call_details: Any) -> Any:
        return self.handler(handler_call_details.method)

    def _handler(self, method: str) -> Any:
        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(forward)

    async def forward(
        self, method: str, message: bytes, context: grpc.aio.ServicerContext
    ) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        headers = {str(k): v for k, v in metadata if isinstance(v, str)}
        host = headers.get("host", "")
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        request = GRPCRequest(method, message, metadata, deadline)
        tag = headers.get("knative-serving-tag", "")
        call = Call("grpc", host, method.encode(), headers, request, tag)
        try:
            return await self.dispatcher.dispatch(self.transport, call)
        except ReplicaStatus as exc:
            await context.abort(exc.code, exc.details, exc.trailing)
        except KsrvError as exc:
            code = getattr(grpc.StatusCode, status.grpc_code(exc))
            await context.abort(code, status.public_message(exc))
        raise AssertionError("context.abort returned")  # pragma: no cover - it always raises


class GRPCProxy:
    """The gateway's gRPC server and its forwarder."""

    def __init__(
        self,
        host: str,
        port: int,
        dispatcher: Dispatcher,
        max_message_bytes: int,
        is_shared: bool = False,
        tls: TLSFiles | None = None,
    ) -> None:
        """`tls`: serve over TLS with this certificate and key."""
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.transport = GRPCTransport(options)
        self.forwarder = _Forwarder(dispatcher, self.transport)
        if tracing.tracer() is not None:
            from ksrv.gateway import traced

            traced.instrument_grpc(self.transport, self.forwarder)
        # grpcio's default is SO_REUSEPORT, which let a stray server answer half the calls:
        # only the workers of one gateway (`is_shared`, after `listeners.check_free`) share.
        server_options = [*options, ("grpc.so_reuseport", int(is_shared))]
        self.server = grpc.aio.server(options=server_options)
        self.server.add_generic_rpc_handlers((self.forwarder,))
        address = f"{host}:{port}"
        if tls is None:
            self.port: int = self.server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials([tls.pair()])
            self.port = self.server.add_secure_port(address, credentials)

    async def start(self) -> None:
        await self.server.start()

    async def keep_only(self, addresses: set[str]) -> None:
        """Close the channels of replicas that left the route table."""
        for channel in self.transport.balancer.keep_only(addresses):
            await channel.close(grace=5.0)

    async def stop(self, grace_s: float) -> None:
        await self.server.stop(grace_s)
        for channel in self.transport.balancer.keep_only(set()):
            await channel.close()
