"""The gateway process: HTTP on one port for every InferenceService, gRPC on another.

`Gateway` wires the transports to the one request path (`dispatch.Dispatcher`: route, hold,
balance, retry, hooks) and turns its errors into answers through `protocol/status.py`. The
table comes from the control plane (`RouteWatcher`) or, in tests, from `set_routes`;
swapping it is one assignment, so requests in flight finish on the table they matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksrv.errors import KsrvError, PayloadTooLarge, ServiceNotFound
from ksrv.gateway import activator, auth, proxy, shadow, traffic
from ksrv.gateway.control_link import ControlCredentials
from ksrv.gateway.dispatch import Dispatcher
from ksrv.gateway.fast_path import FastPath
from ksrv.gateway.hooks import Call, Hook
from ksrv.gateway.metrics import GatewayMetrics
from ksrv.gateway.route_watch import RouteWatcher
from ksrv.gateway.routes import RouteTable, parse_table
from ksrv.http import body as http_body
from ksrv.http import listeners, workers
from ksrv.http import server as http
from ksrv.http.tls import TLSFiles
from ksrv.telemetry import metrics as telemetry
from ksrv.telemetry import tracing

if TYPE_CHECKING:
    from ksrv.gateway import grpc_proxy

logger = logging.getLogger(__name__)

# No higher than the replicas' (the same default): a body they would refuse is refused here,
# from its Content-Length, before the gateway reads any of it.
DEFAULT_MAX_BODY_BYTES = http_body.DEFAULT_MAX_BODY_BYTES
HEALTH_PATH = "/ksrv/gateway/health"
# Answered by the gateway itself when no service's host or path matches (as the health path):
# Prometheus scrapes the gateway's own address, which no InferenceService answers to.
METRICS_PATH = "/metrics"
_OWN_PATHS = (HEALTH_PATH, METRICS_PATH)
_JSON = [(b"content-type", b"application/json")]


class Gateway:
    """Routes REST (and gRPC, when started with a port) to the replicas of the route table."""

    def __init__(
        self,
        routes_url: str | None = None,
        rng: random.Random | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        hooks: Sequence[Hook] = (),
        traffic_url: str | None = None,
        activation_url: str | None = None,
        shadow_rng: random.Random | None = None,
        control: ControlCredentials | None = None,
        is_fast: bool = True,
    ) -> None:
        """`traffic_url`: where to POST per-revision traffic for the autoscaler, each second;
        `activation_url`: where to ask for a replica of a revision at zero with held requests;
        `shadow_rng`: draws which requests are copied to a shadow revision; `control`: the
        token and CA the gateway reaches those URLs and `routes_url` with; `is_fast=False`:
        no request takes the fast path (`fast_path.py`), all go through `handle`."""
        self.activator = (
            activator.Activator(activation_url, credentials=control) if activation_url else None
        )
        self.shadows = shadow.Shadower(shadow_rng)
        self.metrics = GatewayMetrics()
        self.dispatcher = Dispatcher(
            rng, (self.metrics, *hooks), has_table=routes_url is None, activator=self.activator,
            shadows=self.shadows, events=self.metrics,
        )  # fmt: skip
        self.traffic = traffic.TrafficCounter()
        self.reporter = (
            traffic.TrafficReporter(
                traffic_url, self.traffic, shadows=self.shadows.report, credentials=control
            )
            if traffic_url
            else None
        )
        if self.reporter is not None:
            self.dispatcher.add_hook(self.traffic)
        self.auth = auth.TokenCheck()
        self.rest = proxy.RESTTransport()
        if tracing.tracer() is not None:
            from ksrv.gateway import traced

            traced.instrument_rest(self)
        self.max_body_bytes = max_body_bytes
        self.watcher = (
            RouteWatcher(routes_url, self.set_routes, credentials=control) if routes_url else None
        )
        self.http_port = 0
        self.grpc_port = 0
        self._http: http.HTTPServer | None = None
        self._grpc: grpc_proxy.GRPCProxy | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # REST requests inside `dispatch` (routed, held or waiting for a replica's answer);
        # the health answer reports it so a test can see a request being held.
        self.in_flight = 0
        self.is_fast = is_fast
        self.fast: FastPath | None = None  # once started

    @property
    def table(self) -> RouteTable:
        """The route table in force."""
        return self.dispatcher.table

    def set_routes(self, document: dict[str, Any]) -> None:
        """Serve this route table (`ksrv.protocol.routes`) from the next request on."""
        table = parse_table(document)
        self.dispatcher.set_table(table)
        self.dispatcher.hooks = auth.with_check(self.dispatcher.hooks, self.auth, table)
        backends = [
            backend
            for service in table.services
            for component in service.components.values()
            for backend in component.backends
        ]
        for pool in self.rest.balancer.keep_only({a for b in backends for a in b.http}):
            pool.close()
        if self._grpc is not None:
            grpc_addresses = {a for b in backends for a in b.grpc}
            task = asyncio.get_running_loop().create_task(self._grpc.keep_only(grpc_addresses))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        logger.info("route table version %s: %d service(s)", table.version, len(table.services))

    async def handle(self, request: http.Request) -> http.Response | http.StreamingResponse:
        """One REST request: route, split, forward; errors as KServe's `{"error": ...}`."""
        host = request.header(b"host")
        # Only hooks read `call.headers`, and only some of them: decoded on first read.
        headers = proxy.LazyHeaders(request) if self.dispatcher.hooks else proxy.NO_HEADERS
        tag = request.header(b"knative-serving-tag")
        call = Call(
            "rest", host.decode("latin-1") if host else "", request.target, headers, request,
            tag.decode("latin-1") if tag else "",
        )  # fmt: skip
        self.in_flight += 1
        try:
            if not self.dispatcher.has_table and request.path in _OWN_PATHS:
                return self._own(request)  # answered while requests wait for the first table
            answer = await self.dispatcher.dispatch(self.rest, call)
        except ServiceNotFound as exc:
            if request.path in _OWN_PATHS:
                return self._own(request)
            return proxy.error_response(exc)
        except KsrvError as exc:
            return proxy.error_response(exc)
        finally:
            self.in_flight -= 1
        return proxy.respond(answer)

    def _own(self, request: http.Request) -> http.Response:
        if request.path == METRICS_PATH:
            headers = [(b"content-type", telemetry.CONTENT_TYPE.encode())]
            return http.Response(self.metrics.exposition(), 200, headers)
        return self._health()

    def _health(self) -> http.Response:
        """The table version in force, this process, and the other requests in flight."""
        body = b'{"version":%d,"pid":%d,"in_flight":%d}' % (
            self.dispatcher.table.version,
            os.getpid(),
            self.in_flight - 1,  # not this health call itself
        )
        return http.Response(body, 200, _JSON)

    def too_large(self, size: int) -> http.Response:
        return proxy.error_response(
            PayloadTooLarge(f"request body of {size} bytes exceeds {self.max_body_bytes}")
        )

    async def start(
        self,
        host: str,
        http_port: int,
        grpc_port: int = 0,
        sock: socket.socket | None = None,
        is_grpc_shared: bool = False,
        tls: TLSFiles | None = None,
    ) -> None:
        """Bind HTTP (and gRPC when `grpc_port` is not 0; a port of 0 for HTTP picks one), or
        serve HTTP on `sock`, a listening socket already bound (`--workers`, or handed down
        by the control plane). `is_grpc_shared`: other workers of this gateway bind the same
        gRPC port (SO_REUSEPORT). `tls`: serve both ports over TLS."""
        # A traced gateway wraps `handle` and the transport: its requests take that path.
        self.fast = FastPath(self) if self.is_fast and tracing.tracer() is None else None
        self._http = http.HTTPServer(
            self.handle,
            self.max_body_bytes,
            self.too_large,
            stream_body_over=proxy.STREAM_BODY_OVER,
            fast=self.fast,
        )
        await self._http.start(host, http_port, sock, tls.server_context() if tls else None)
        self.http_port = self._http.port
        if grpc_port:
            from ksrv.gateway import grpc_proxy

            self._grpc = grpc_proxy.GRPCProxy(
                host, grpc_port, self.dispatcher, self.max_body_bytes, is_grpc_shared, tls
            )
            await self._grpc.start()
            self.grpc_port = self._grpc.port
        if self.watcher is not None:
            self._tasks.add(asyncio.get_running_loop().create_task(self.watcher.run()))
        if self.reporter is not None:
            self._tasks.add(asyncio.get_running_loop().create_task(self.reporter.run()))

    async def stop(self, grace_s: float = 5.0) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.watcher is not None:
            self.watcher.close()
        if self.reporter is not None:
            self.reporter.close()
        if self.activator is not None:
            self.activator.close()
        draining = []
        if self._http is not None:
            draining.append(self._http.shutdown(grace_s))
        if self._grpc is not None:
            draining.append(self._grpc.stop(grace_s))
        await asyncio.gather(*draining)
        self.rest.close()


async def _serve_forever(
    host: str,
    sock: socket.socket,
    grpc_port: int,
    routes_url: str | None,
    worker_count: int,
    seed: int | None,
    security: auth.GatewaySecurity,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tracing.configure("ksrv-gateway")
    gateway = Gateway(
        routes_url,
        random.Random(seed) if seed is not None else None,
        traffic_url=traffic.traffic_url(routes_url) if routes_url else None,
        activation_url=activator.activation_url(routes_url) if routes_url else None,
        # Its own stream, so copies do not follow the split's draws.
        shadow_rng=random.Random(f"shadow-{seed}") if seed is not None else None,
        control=ControlCredentials.from_files(security.control_token_file, security.control_ca),
    )
    await gateway.start(host, 0, grpc_port, sock, is_grpc_shared=worker_count > 1, tls=security.tls)
    logger.info(
        "gateway (pid %d): HTTP on %s:%s, gRPC on port %s, routes from %s",
        os.getpid(),
        host,
        gateway.http_port,
        gateway.grpc_port or "(off)",
        routes_url or "(none)",
    )
    # Few long-lived objects here, but the collector would still walk the imported modules.
    gc.collect()
    gc.freeze()
    if worker_count > 1:
        _stop_when_orphaned(loop, stop)
    await stop.wait()
    await gateway.stop()
    tracing.shutdown()


def _stop_when_orphaned(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A worker checks once a second that its supervisor still runs (no PDEATHSIG in stdlib)."""
    if workers.is_orphaned():
        logger.warning("gateway worker %d: its supervising process is gone; stopping", os.getpid())
        stop.set()
    else:
        loop.call_later(1.0, _stop_when_orphaned, loop, stop)


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve_gateway(
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int = 8081,
    routes_url: str | None = None,
    worker_count: int = 1,
    inherited: Sequence[socket.socket] = (),
    handover: Path | None = None,
    *,
    seed: int | None = None,
    security: auth.GatewaySecurity | None = None,
) -> None:
    """Run the gateway until SIGTERM/SIGINT, in `worker_count` processes sharing its ports.

    `seed`: the traffic split's random choice starts from it (each worker alike), so a
    test's canary split is reproducible. `security`: TLS, and the control plane's token/CA.

    `inherited`: HTTP listening sockets the supervising process (the control plane) bound
    and keeps open while this gateway restarts, one per worker; without them the ports are
    bound here. Either way a port another server listens on fails before anything starts.
    `handover`: where a restarted control plane that adopts this gateway takes them back.

    Raises:
        ServerNotReady: the HTTP or gRPC port is in use.
    """
    security = security or auth.GatewaySecurity()
    if security.tls is not None:
        security.tls.server_context()  # a bad certificate fails here, before any worker starts
    sockets = list(inherited) or listeners.listeners(host, http_port, worker_count, "gateway HTTP")
    handing_over = listeners.hand_over(sockets, handover) if inherited and handover else None
    metrics_files = contextlib.ExitStack()
    try:
        if worker_count > 1:  # each scrape reads the sum over the workers
            metrics_files.enter_context(telemetry.shared_across_workers("ksrv-gateway-"))
        if grpc_port:
            listeners.check_free(host, grpc_port, "gateway gRPC")
        if worker_count <= 1:
            _run(
                _serve_forever(
                    host, sockets[0], grpc_port, routes_url, worker_count, seed, security
                )
            )
            return
        logger.info(
            "gateway: %d workers on HTTP port %d", worker_count, sockets[0].getsockname()[1]
        )

        def serve(index: int) -> None:
            mine = sockets[index % len(sockets)]
            others = [sock for sock in sockets if sock is not mine]
            listeners.close_all([*others, *([handing_over] if handing_over else [])])
            _run(_serve_forever(host, mine, grpc_port, routes_url, worker_count, seed, security))

        workers.supervise(worker_count, serve, "gateway worker", telemetry.worker_exited)
    finally:
        metrics_files.close()
        if handing_over is not None and handover is not None:
            handing_over.close()
            handover.unlink(missing_ok=True)
        listeners.close_all(sockets)
