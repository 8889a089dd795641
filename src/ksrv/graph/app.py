"""The router process: every request but `GET /readyz` and `GET /metrics` runs the graph.

Served by `ksrv.http` (the model server's and gateway's HTTP/1.1 server). The body must be JSON
(V1 or V2 alike: the router reads only what conditions and mappings ask for, and forwards the
bytes it was sent); anything else is a 400. Each answer says which steps ran
(`ksrv-graph-steps: node/step=status,...`, in the order they started) and, when a Hard step
failed the graph, which one (`ksrv-graph-error`); one log line per request gives every
step's status and latency, and with tracing on (`OTEL_*`) each request and step call is a span
(`graph.traced`). `GET /metrics` answers the router's Prometheus metrics
(`graph.metrics`: each step's latency, requests by status).
`routerTimeouts` map onto the server: serverRead bounds a request head's arrival, serverIdle a
kept-alive connection's silence, and serverWrite (or `timeout`, if shorter) a whole request,
answered 504 when it passes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ksrv.errors import PayloadTooLarge
from ksrv.graph.client import StepClient
from ksrv.graph.executor import Executor, Outcome, Payload, Run, StepCaller
from ksrv.graph.headers import Propagation
from ksrv.graph.metrics import RouterMetrics
from ksrv.graph.spec import Graph
from ksrv.http import body as http_body
from ksrv.http import listeners
from ksrv.http import server as http
from ksrv.protocol import correlation, status
from ksrv.telemetry import buffered_log, tracing
from ksrv.telemetry import metrics as telemetry

logger = logging.getLogger(__name__)

READINESS_PATH: Final = b"/readyz"
METRICS_PATH: Final = b"/metrics"
STEPS_HEADER: Final = b"ksrv-graph-steps"
ERROR_HEADER: Final = b"ksrv-graph-error"
_JSON: Final = (b"content-type", b"application/json")
_METRICS: Final = (b"content-type", telemetry.CONTENT_TYPE.encode("ascii"))


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """What `ksrv router` was told: the graph, where to listen, what to pass on."""

    graph: Graph
    host: str = "127.0.0.1"
    http_port: int = 8080
    propagate: tuple[str, ...] = ()
    seed: int | None = None
    max_body_bytes: int = http_body.DEFAULT_MAX_BODY_BYTES


class Router:
    """Answers readiness and runs the graph for everything else."""

    def __init__(
        self,
        settings: RouterSettings,
        caller: StepCaller | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.timeouts = settings.graph.timeouts
        self.client = StepClient()
        if rng is None and settings.seed is not None:
            rng = random.Random(settings.seed)
        self.executor = Executor(settings.graph, caller or self.client, rng)
        self.propagation = Propagation(settings.propagate)
        self.metrics = RouterMetrics(settings.graph)
        self.is_draining = False
        self._ids = random.Random()  # request ids: for correlating logs, not for secrets
        self.http_port = 0
        self._http: http.HTTPServer | None = None
        if tracing.tracer() is not None:
            from ksrv.graph import traced

            traced.instrument(self)

    async def handle(self, request: http.Request) -> http.Response:
        target = request.target
        if target == READINESS_PATH or target.startswith(READINESS_PATH + b"?"):
            return self._readiness(request)
        if request.method in ("GET", "HEAD") and (
            target == METRICS_PATH or target.startswith(METRICS_PATH + b"?")
        ):
            return http.Response(self.metrics.exposition(), 200, [_METRICS])
        try:
            document = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            message = f"the request body is not JSON ({exc}); the graph takes V1 or V2 JSON"
            return _error(400, message)
        return await self._run(request, Payload(request.body, document, True))

    def _readiness(self, request: http.Request) -> http.Response:
        if request.method not in ("GET", "HEAD"):
            return _error(405, f"{request.method} is not allowed on /readyz")
        if self.is_draining:
            return _error(503, "shutting down")
        return http.Response(b"", 200)

    async def _run(self, request: http.Request, payload: Payload) -> http.Response:
        headers = self.propagation.select(request.raw_headers)
        request_id = request.header(b"x-request-id")
        if request_id is None or correlation.sane_request_id(request_id.decode("latin-1")) is None:
            # One id for every step's call, so their logs join up with this answer.
            headers = [h for h in headers if h[0] != b"x-request-id"]
            request_id = b"%032x" % self._ids.getrandbits(128)
            headers.append((b"x-request-id", request_id))
        run = Run(headers)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeouts.request_s):
                outcome = await self.executor.run(payload, run)
        except TimeoutError:
            cause = f"the graph did not answer within {self.timeouts.request_s:g}s"
            body = orjson.dumps({"error": "Failed to process request", "cause": cause})
            outcome = Outcome(504, body)
        latency_s = time.perf_counter() - started
        self.metrics.record(outcome.status, latency_s, run.records)
        return self._answer(outcome, run, request_id, latency_s * 1000.0)

    def _answer(
        self, outcome: Outcome, run: Run, request_id: bytes, latency_ms: float
    ) -> http.Response:
        records = run.records
        steps = ",".join([f"{record.label}={record.status}" for record in records])
        # Labels are header-safe (spec.py), and a failure message is made of one and a status.
        headers: list[tuple[bytes, bytes]] = [
            (b"x-request-id", request_id),
            (STEPS_HEADER, steps.encode("ascii")),
        ]
        if outcome.content_type is not None:
            headers.append((b"content-type", outcome.content_type))
        if outcome.failure is not None:
            headers.append((ERROR_HEADER, outcome.failure.encode("ascii")))
        if logger.isEnabledFor(logging.INFO):
            # One line per request, every step's latency in it (status 0: the step never
            # finished, cut off by the graph's timeout or called off by its Ensemble).
            timings = " ".join([f"{r.label}={r.status}/{r.latency_ms:.3f}ms" for r in records])
            failure = f" failure: {outcome.failure}" if outcome.failure else ""
            buffered_log.info_line(
                logger,
                f"graph request_id={request_id.decode('latin-1')} status={outcome.status} "
                f"latency_ms={latency_ms:.3f} steps: {timings}{failure}",
            )
        return http.Response(outcome.body, outcome.status, headers)

    def too_large(self, size: int) -> http.Response:
        exc = PayloadTooLarge(
            f"request body of {size} bytes exceeds {self.settings.max_body_bytes}"
        )
        return _error(status.http_status(exc), exc.message)

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on `sock`, or bind the settings' host and port (0: one the kernel picks)."""
        settings = self.settings
        self._http = http.HTTPServer(
            self.handle,
            settings.max_body_bytes,
            self.too_large,
            keep_alive_s=self.timeouts.server_idle_s,
            head_timeout_s=self.timeouts.server_read_s,
        )
        await self._http.start(settings.host, settings.http_port, sock)
        self.http_port = self._http.port

    async def stop(self, grace_s: float = 10.0) -> None:
        """Fail readiness, finish the requests in flight (within `grace_s`), close."""
        self.is_draining = True
        if self._http is not None:
            await self._http.shutdown(grace_s)
        self.client.close()


def _error(code: int, message: str) -> http.Response:
    return http.Response(orjson.dumps({"error": message}), code, [_JSON])


async def _serve_forever(settings: RouterSettings, sockets: Sequence[socket.socket]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tracing.configure("ksrv-router")  # off unless OTEL_* (or --otlp-endpoint) asks
    router = Router(settings)
    await router.start(sockets[0] if sockets else None)
    nodes = ", ".join(f"{n.name} ({n.router_type})" for n in settings.graph.nodes.values())
    logger.info(
        "router (pid %d): HTTP on %s:%d, nodes %s", os.getpid(), settings.host, router.http_port,
        nodes,
    )  # fmt: skip
    gc.collect()
    gc.freeze()
    await stop.wait()
    await router.stop()
    tracing.shutdown()  # the spans still buffered leave now


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve_router(settings: RouterSettings) -> None:
    """Serve the graph until SIGTERM or SIGINT. A listening socket handed down by a supervisor
    (`KSRV_LISTEN_FDS`) is used as is; otherwise the port is bound here.

    Raises:
        ServerNotReady: the port is in use.
    """
    sockets = listeners.inherited(os.environ) or listeners.listeners(
        settings.host, settings.http_port, 1, "router HTTP"
    )
    try:
        _run(_serve_forever(settings, sockets))
    finally:
        listeners.close_all(sockets)
