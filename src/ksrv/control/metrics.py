"""The control plane's Prometheus metrics, and the scrape targets it hands to Prometheus.

Reconcile passes are timed and their failures counted by kind as they happen; replicas per
revision (desired and ready) are read from the platform at each scrape, so they are never
stale. `scrape_targets` is Prometheus's HTTP service discovery document: the gateway, this
API and every replica with a port, labelled with its InferenceService (its InferenceGraph and
`ksrv_role: router`, for a graph's router), component and revision, so a scrape config
written once follows replicas as they come, go and move ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ksrv.control import revisions
from ksrv.control.platforms.base import RevisionKey, RevisionState
from ksrv.telemetry import metrics as telemetry

_REVISION = ["namespace_name", "service_name", "configuration_name", "revision_name"]


class ReplicaSource(Protocol):
    """What the platform runs (`Platform.observe`)."""

    def observe(self) -> dict[RevisionKey, RevisionState]: ...


class ControlMetrics:
    """Every metric of the control plane, in `registry` (a fresh one by default)."""

    def __init__(
        self, replicas: ReplicaSource | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = own = registry if registry is not None else telemetry.registry()
        self.reconcile_seconds = Histogram(
            "ksrv_reconcile_duration_seconds",
            "How long one reconcile pass over every resource of a kind took",
            ["kind"],
            registry=own,
        )
        self.reconcile_errors = Counter(
            "ksrv_reconcile_errors", "Reconcile passes that failed, by kind", ["kind"], registry=own
        )
        if replicas is not None:
            own.register(_ReplicaCollector(replicas))

    def record_pass(self, kinds: Sequence[str], seconds: float, is_failed: bool) -> None:
        kind = kinds[0] if kinds else ""
        self.reconcile_seconds.labels(kind).observe(seconds)
        if is_failed:
            self.reconcile_errors.labels(kind).inc()

    def timed_pass(self, kinds: Sequence[str]) -> _TimedPass:
        """`with` around one pass of the reconciler of `kinds`."""
        return _TimedPass(self, kinds)

    def exposition(self) -> bytes:
        return telemetry.exposition_text(self.registry)


class _TimedPass:
    def __init__(self, metrics: ControlMetrics, kinds: Sequence[str]) -> None:
        self.metrics = metrics
        self.kinds = kinds
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> None:
        is_failed = kind is not None and issubclass(kind, Exception)
        self.metrics.record_pass(self.kinds, time.perf_counter() - self.started, is_failed)


class _ReplicaCollector(Collector):
    """Desired and ready replicas of every revision the platform runs, at scrape time."""

    def __init__(self, replicas: ReplicaSource) -> None:
        self.replicas = replicas

    def collect(self) -> Iterator[GaugeMetricFamily]:
        desired = GaugeMetricFamily(
            "ksrv_revision_desired_replicas",
            "Replicas the platform was last asked to run for a revision",
            labels=_REVISION,
        )
        ready = GaugeMetricFamily(
            "ksrv_revision_ready_replicas",
            "Replicas of a revision that are Ready",
            labels=_REVISION,
        )
        for state in self.replicas.observe().values():
            spec = state.spec
            labels = [spec.namespace, spec.isvc, f"{spec.isvc}-{spec.component}", spec.revision]
            desired.add_metric(labels, spec.replicas)
            ready.add_metric(labels, sum(r.phase == "Ready" for r in state.replicas))
        yield desired
        yield ready


def scrape_targets(replicas: ReplicaSource, gateway: str, api: str) -> list[dict[str, Any]]:
    """Prometheus's `http_sd_configs` document: one target group per process to scrape.

    `gateway` and `api` are `host:port`; a wildcard host is scraped on loopback.
    """
    groups = [
        {"targets": [_reachable(gateway)], "labels": {"ksrv_role": "gateway"}},
        {"targets": [_reachable(api)], "labels": {"ksrv_role": "control-plane"}},
    ]
    for state in replicas.observe().values():
        spec = state.spec
        addresses = [r.http_address for r in state.replicas if r.http_address and r.pid]
        if addresses:
            is_router = revisions.is_router(spec)  # an InferenceGraph's: named as a graph
            labels = {
                "ksrv_role": "router" if is_router else "model-server",
                "namespace": spec.namespace,
                "inferencegraph" if is_router else "inferenceservice": spec.isvc,
                "component": spec.component,
                "revision": spec.revision,
            }
            groups.append({"targets": [_reachable(a) for a in addresses], "labels": labels})
    return groups


def _reachable(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "", "::", "[::]") else address
