"""gRPC on the gateway's second port: any (unary) method, forwarded as raw bytes.

Routed by host like REST. grpcio 1.85 does not show a server handler the call's `:authority`
(`HandlerCallDetails` has only `method` and `invocation_metadata`, which lacks it), so the
host comes from `host` metadata, as KServe's Python gRPC samples send it. UNAVAILABLE (no
connection, replica not ready) is retried on another replica at most twice: inference calls
are idempotent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import grpc

from ksrv.gateway.routes import Replica, RouteTable

MAX_RETRIES = 2
_SKIP_METADATA = frozenset({"user-agent", "kserve-isvc-name", "kserve-isvc-namespace"})


class _Forwarder:
    """A generic RPC handler (grpcio only asks for `service`) that forwards every method;
    channels are kept per replica address."""

    def __init__(
        self, table: Callable[[], RouteTable], rng: random.Random, options: list[Any]
    ) -> None:
        self.table = table
        self.rng = rng
        self.options = options
        self.channels: dict[str, grpc.aio.Channel] = {}
        self.outstanding: dict[str, int] = {}
        self._turn = 0
        self._handlers: dict[str, Any] = {}

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:

            async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                return await self.forward(method, request, context)

            handler = self._handlers[method] = grpc.unary_unary_rpc_method_handler(forward)
        return handler

    async def forward(
        self, method: str, request: bytes, context: grpc.aio.ServicerContext
    ) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        host = next((str(value) for key, value in metadata if key == "host"), "")
        match = self.table().match(host, b"") if host else None
        if match is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no InferenceService for host {host!r} (send the host as 'host' metadata)",
            )
            raise AssertionError("context.abort returned")  # it always raises
        backend = match.component.choose(self.rng)
        if backend is None or not any(r.grpc for r in backend.replicas):
            service = match.service
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"no ready replica for {match.component.name} of "
                f"{service.namespace}/{service.name}",
            )
            raise AssertionError("context.abort returned")
        forwarded = [(k, v) for k, v in metadata if k not in _SKIP_METADATA]
        forwarded += [
            ("kserve-isvc-name", match.service.name),
            ("kserve-isvc-namespace", match.service.namespace),
        ]
        timeout_s = match.service.timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout_s = min(timeout_s, remaining)
        tried: list[str] = []
        for attempt in range(MAX_RETRIES + 1):
            address = self.choose(backend.replicas, tried)
            self.outstanding[address] = self.outstanding.get(address, 0) + 1
            try:
                call = self.channel(address).unary_unary(method)
                response: bytes = await call(request, metadata=forwarded, timeout=timeout_s)
                return response
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt < MAX_RETRIES:
                    tried.append(address)
                    continue
                trailing = tuple(exc.trailing_metadata() or ())
                await context.abort(code, exc.details() or "", trailing)
            finally:
                self.outstanding[address] -= 1
        raise AssertionError("unreachable")  # pragma: no cover

    def choose(self, replicas: tuple[Replica, ...], tried: list[str]) -> str:
        """The replica with the fewest calls in flight; ties rotate; failed ones go last."""
        candidates = [r.grpc for r in replicas if r.grpc]
        self._turn += 1
        start = self._turn % len(candidates)
        ordered = candidates[start:] + candidates[:start]
        return min(
            ordered,
            key=lambda address: (
                self.outstanding.get(address, 0) + (1000 if address in tried else 0)
            ),
        )

    def keep_only(self, addresses: set[str]) -> list[grpc.aio.Channel]:
        """Forget the channels of replicas that left the route table; returns them to close."""
        gone = [address for address in self.channels if address not in addresses]
        return [self.channels.pop(address) for address in gone]

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self.channels.get(address)
        if channel is None:
            channel = self.channels[address] = grpc.aio.insecure_channel(address, self.options)
        return channel


class GRPCProxy:
    """The gateway's gRPC server and its forwarder."""

    def __init__(
        self, host: str, port: int, table: Callable[[], RouteTable], max_message_bytes: int
    ) -> None:
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.forwarder = _Forwarder(table, random.Random(), options)
        self.server = grpc.aio.server(options=options)
        self.server.add_generic_rpc_handlers((self.forwarder,))
        self.port: int = self.server.add_insecure_port(f"{host}:{port}")

    async def start(self) -> None:
        await self.server.start()

    async def keep_only(self, addresses: set[str]) -> None:
        """Close the channels of replicas that left the route table."""
        for channel in self.forwarder.keep_only(addresses):
            await channel.close(grace=5.0)

    async def stop(self, grace_s: float) -> None:
        await self.server.stop(grace_s)
        for channel in self.forwarder.keep_only(set()):
            await channel.close()
