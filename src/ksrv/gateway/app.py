"""The gateway process: HTTP on one port for every InferenceService, gRPC on another.

`Gateway.handle` is the whole request path: match the route table, choose a backend by its
traffic percent, forward to the least busy replica. The table comes from the control plane
(`RouteWatcher`) or, in tests, from `set_routes`; swapping it is one assignment, so requests
in flight finish on the table they matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
from typing import TYPE_CHECKING, Any

import orjson

from ksrv.errors import KsrvError, PayloadTooLarge
from ksrv.gateway import proxy
from ksrv.gateway.route_watch import RouteWatcher
from ksrv.gateway.routes import RouteTable, parse_table
from ksrv.gateway.upstream import UpstreamDropped
from ksrv.http import server as http
from ksrv.protocol import status

if TYPE_CHECKING:
    from ksrv.gateway import grpc_proxy

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
HEALTH_PATH = "/ksrv/gateway/health"
# Longest a request waits for a ready replica (capped further by the route's timeout).
MAX_HOLD_S = 30.0
HOLD_POLL_S = 0.25
_JSON = [(b"content-type", b"application/json")]


class Gateway:
    """Routes REST (and gRPC, when started with a port) to the replicas of the route table."""

    def __init__(
        self,
        routes_url: str | None = None,
        rng: random.Random | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.table = RouteTable.empty()
        self.proxy = proxy.Proxy()
        self.rng = rng if rng is not None else random.Random()
        self.max_body_bytes = max_body_bytes
        self.watcher = RouteWatcher(routes_url, self.set_routes) if routes_url else None
        self.http_port = 0
        self.grpc_port = 0
        self._http: http.HTTPServer | None = None
        self._grpc: grpc_proxy.GRPCProxy | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._table_changed = asyncio.Event()

    def set_routes(self, document: dict[str, Any]) -> None:
        """Serve this route table (docs/platform.md, seam 4) from the next request on."""
        table = parse_table(document)
        self.table = table
        self._table_changed.set()
        self._table_changed = asyncio.Event()
        replicas = [
            replica
            for service in table.services
            for component in service.components.values()
            for backend in component.backends
            for replica in backend.replicas
        ]
        self.proxy.keep_only({replica.http for replica in replicas})
        if self._grpc is not None:
            grpc_addresses = {replica.grpc for replica in replicas}
            task = asyncio.get_running_loop().create_task(self._grpc.keep_only(grpc_addresses))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        logger.info("route table version %s: %d service(s)", table.version, len(table.services))

    async def handle(self, request: http.Request) -> http.Response:
        """One REST request: route, split, forward; errors as KServe's `{"error": ...}`."""
        host = request.headers.get("host", "")
        match = self.table.match(host, request.target)
        if match is None:
            if request.path == HEALTH_PATH:
                return http.Response(b'{"version":%d}' % self.table.version, 200, _JSON)
            return _error(404, f"no InferenceService for host {host!r} or path {request.path!r}")
        loop = asyncio.get_running_loop()
        hold_s = min(match.component.timeout_s or match.service.timeout_s, MAX_HOLD_S)
        deadline = loop.time() + hold_s
        while True:
            backend = match.component.choose(self.rng)
            failure: KsrvError | None = None
            if backend is not None:
                try:
                    answer = await self.proxy.forward(request, match, backend)
                except UpstreamDropped as exc:
                    if not exc.is_retryable:
                        return _error(status.http_status(exc), status.public_message(exc))
                    failure = exc  # nothing reached a replica: safe to try again below
                except KsrvError as exc:
                    return _error(status.http_status(exc), status.public_message(exc))
                else:
                    return http.Response(answer.body, answer.status, proxy.response_headers(answer))
            # No replica could take it (none ready, or all refused): hold the request, as
            # Knative's activator does, until the table brings one or the hold time is up.
            remaining = deadline - loop.time()
            if remaining <= 0:
                if failure is not None:
                    return _error(status.http_status(failure), status.public_message(failure))
                service = match.service
                return _error(
                    503,
                    f"no ready replica for {match.component.name} of "
                    f"{service.namespace}/{service.name} within {hold_s:g} s",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._table_changed.wait(), min(remaining, HOLD_POLL_S))
            match = self.table.match(host, request.target)
            if match is None:
                return _error(
                    404, f"no InferenceService for host {host!r} or path {request.path!r}"
                )

    def too_large(self, size: int) -> http.Response:
        exc = PayloadTooLarge(f"request body of {size} bytes exceeds {self.max_body_bytes}")
        return _error(status.http_status(exc), exc.message)

    async def start(self, host: str, http_port: int, grpc_port: int = 0) -> None:
        """Bind HTTP (and gRPC when `grpc_port` is not 0; a port of 0 for HTTP picks one)."""
        self._http = http.HTTPServer(self.handle, self.max_body_bytes, self.too_large)
        await self._http.start(host, http_port)
        self.http_port = self._http.port
        if grpc_port:
            from ksrv.gateway import grpc_proxy

            self._grpc = grpc_proxy.GRPCProxy(
                host, grpc_port, lambda: self.table, self.max_body_bytes
            )
            await self._grpc.start()
            self.grpc_port = self._grpc.port
        if self.watcher is not None:
            self._tasks.add(asyncio.get_running_loop().create_task(self.watcher.run()))

    async def stop(self, grace_s: float = 5.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.watcher is not None:
            self.watcher.close()
        draining = []
        if self._http is not None:
            draining.append(self._http.shutdown(grace_s))
        if self._grpc is not None:
            draining.append(self._grpc.stop(grace_s))
        await asyncio.gather(*draining)
        self.proxy.close()


def _error(code: int, message: str) -> http.Response:
    return http.Response(orjson.dumps({"error": message}), code, _JSON)


async def _serve_forever(host: str, http_port: int, grpc_port: int, routes_url: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(routes_url)
    await gateway.start(host, http_port, grpc_port)
    logger.info(
        "gateway: HTTP on %s:%s, gRPC on port %s, routes from %s",
        host,
        gateway.http_port,
        gateway.grpc_port or "(off)",
        routes_url or "(none)",
    )
    # Few long-lived objects here, but the collector would still walk the imported modules.
    gc.collect()
    gc.freeze()
    await stop.wait()
    await gateway.stop()


def serve_gateway(
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int = 8081,
    routes_url: str | None = None,
) -> None:
    """Run the gateway until SIGTERM/SIGINT."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_serve_forever(host, http_port, grpc_port, routes_url))
    else:
        uvloop.run(_serve_forever(host, http_port, grpc_port, routes_url))
