"""The gateway's Prometheus metrics, in the shape of Knative's request metrics.

`revision_request_count` and `revision_request_latencies` (milliseconds) carry Knative's
labels (namespace, service, configuration = `{isvc}-{component}` as KServe names a Knative
configuration, revision, response code and class), so Knative's dashboards read them; ksrv's
own gauges and counters (in flight, held by the activator, upstream errors, retries) sit under
`ksrv_`. `GatewayMetrics` is a `hooks.Hook` (every routed request, both transports) and the
dispatcher's `DispatchEvents` (holds and retries). Children are resolved once per label set
and cached, so a request costs a few dict lookups and value updates, never a label lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ksrv.errors import KsrvError, UpstreamFailed, UpstreamTimeout
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import Match
from ksrv.protocol import status
from ksrv.telemetry import metrics as telemetry

# Knative's request latency buckets (ms), with three below 5 ms: a proxied inference often
# answers in one or two.
LATENCY_BUCKETS_MS = (
    0.5, 1, 2, 5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700,
    800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip
_SERVICE = ("namespace_name", "service_name")
_COMPONENT = (*_SERVICE, "configuration_name")
_REVISION = (*_COMPONENT, "revision_name")
# gRPC status -> HTTP status (as grpc-gateway maps them), for Knative's response_code label.
_GRPC_AS_HTTP = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "ABORTED": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}  # fmt: skip

_UPSTREAM = (UpstreamFailed, UpstreamTimeout)  # no replica answered (UpstreamDropped included)
Answer = tuple[Callable[[], None], Callable[[float], None]]


class GatewayMetrics:
    """Every metric of one gateway process, in `registry` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = own = registry if registry is not None else telemetry.registry()
        answer = (*_REVISION, "response_code", "response_code_class")
        self.requests = Counter(
            "revision_request_count", "Requests routed to a revision", answer, registry=own
        )
        self.latencies = Histogram(
            "revision_request_latencies",
            "Time from routing to the replica's answer (its head, when streamed), held time "
            "included, in milliseconds",
            answer,
            buckets=LATENCY_BUCKETS_MS,
            registry=own,
        )
        self.in_flight = Gauge(
            "ksrv_gateway_requests_in_flight",
            "Requests routed to a service and not yet answered (held ones included)",
            _SERVICE,
            multiprocess_mode="livesum",
            registry=own,
        )
        self.held_requests = Gauge(
            "ksrv_activator_requests_held",
            "Requests held for a component with no free ready replica",
            _COMPONENT,
            multiprocess_mode="livesum",
            registry=own,
        )
        self.upstream_errors = Counter(
            "ksrv_gateway_upstream_errors",
            "Requests answered with an error because no replica answered (unreachable, "
            "dropped, timed out)",
            (*_REVISION, "reason"),
            registry=own,
        )
        self.retries = Counter(
            "ksrv_gateway_retries",
            "Attempts sent again after a replica did not answer",
            _COMPONENT,
            registry=own,
        )
        self._answers: dict[tuple[str, str, str, str, int], Answer] = {}
        self._in_flight: dict[tuple[str, str], Gauge] = {}

    # -- hooks.Hook ------------------------------------------------------------------------
    def on_request(self, call: Call) -> None:
        call.started_s = time.perf_counter()
        self._in_flight_of(call).inc()

    def on_response(self, call: Call, error: BaseException | None) -> None:
        if not call.started_s:
            return  # a hook before this one refused the call: this one never saw it start
        elapsed_ms = (time.perf_counter() - call.started_s) * 1000.0
        self._in_flight_of(call).dec()
        match = call.match
        assert match is not None
        service = match.service
        backend = call.backend
        revision = backend.revision if backend is not None else ""
        code = call.code or 200 if error is None else _status(error)
        key = (service.namespace, service.name, match.component.name, revision, code)
        answer = self._answers.get(key)
        if answer is None:
            labels = (*_labels(match, revision), str(code), f"{code // 100}xx")
            answer = self._answers[key] = (
                self.requests.labels(*labels).inc,
                self.latencies.labels(*labels).observe,
            )
        answer[0]()
        answer[1](elapsed_ms)
        if error is not None and isinstance(error, _UPSTREAM):
            reason = "timeout" if isinstance(error, UpstreamTimeout) else "unreachable"
            self.upstream_errors.labels(*_labels(match, revision), reason).inc()

    # -- dispatch.DispatchEvents -----------------------------------------------------------
    def held(self, match: Match, count: int) -> None:
        self.held_requests.labels(*_labels(match)[:3]).inc(count)

    def retried(self, call: Call) -> None:
        assert call.match is not None
        self.retries.labels(*_labels(call.match)[:3]).inc()

    def exposition(self) -> bytes:
        return telemetry.exposition_text(self.registry)

    def _in_flight_of(self, call: Call) -> Gauge:
        # By service: a request held across a new table may match another component of it.
        assert call.match is not None  # hooks see routed calls only
        service = call.match.service
        key = (service.namespace, service.name)
        child = self._in_flight.get(key)
        if child is None:
            child = self._in_flight[key] = self.in_flight.labels(*key)
        return child


def _labels(match: Match, revision: str = "") -> tuple[str, str, str, str]:
    service = match.service
    configuration = f"{service.name}-{match.component.name}"
    return (service.namespace, service.name, configuration, revision)


def _status(error: BaseException) -> int:
    """The HTTP status the caller of a failed request gets (a gRPC status as its HTTP peer)."""
    if isinstance(error, KsrvError) or not hasattr(error, "code"):
        return status.http_status(error)
    code = getattr(error.code, "name", "")  # grpc_proxy.ReplicaStatus: the replica's status
    return _GRPC_AS_HTTP.get(code, 500)
