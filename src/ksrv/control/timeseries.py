"""Recent history per service for the dashboard: replicas, request rate, latency, errors.

The control plane already knows the replicas (`Platform.observe`), and the gateway already
counts every routed request with its latency on its `/metrics` (Knative's
`revision_request_count` and `revision_request_latencies`, in ms). `SeriesBook.sample` takes
one read of both every `interval_s` and keeps, per service (an InferenceService, or an
InferenceGraph by its router), a point made of the difference from the previous read: the
requests and 5xx answers per second, and the 50th, 90th and 99th latency percentiles of the
requests in between (Prometheus's `histogram_quantile` over the bucket increments). The last
`keep` points are kept in memory only: a restarted control plane starts a new history, as the
autoscaler's windows do. `percentile` and `gateway_counts` are pure, for the unit tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from prometheus_client.parser import text_string_to_metric_families

from ksrv.control.platforms.base import RevisionKey, RevisionState

logger = logging.getLogger(__name__)

INTERVAL_S: Final = 2.0
KEEP_POINTS: Final = 450  # 15 minutes at 2 s
QUANTILES: Final = (0.5, 0.9, 0.99)
ServiceKey = tuple[str, str]
"""(namespace, service name)."""
Point = dict[str, Any]


class ReplicaSource(Protocol):
    """What the platform runs (`Platform.observe`)."""

    def observe(self) -> dict[RevisionKey, RevisionState]: ...


@dataclass(slots=True)
class Counts:
    """One service's cumulative gateway counters, summed over revisions and codes."""

    requests: float = 0.0
    errors: float = 0.0
    """Answers with a 5xx code."""
    buckets: dict[float, float] = field(default_factory=dict)
    """Latency upper bound (ms, `inf` included) -> requests at or under it, cumulative."""


def gateway_counts(text: str) -> dict[ServiceKey, Counts]:
    """The gateway's exposition summed per service.

    Raises:
        ValueError: the text is not Prometheus's text format.
    """
    found: dict[ServiceKey, Counts] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("revision_request_"):
            continue
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("namespace_name", ""), labels.get("service_name", ""))
            counts = found.setdefault(key, Counts())
            if sample.name == "revision_request_count_total":
                counts.requests += sample.value
                if labels.get("response_code_class") == "5xx":
                    counts.errors += sample.value
            elif sample.name == "revision_request_latencies_bucket" and "le" in labels:
                bound = float(labels["le"])
                counts.buckets[bound] = counts.buckets.get(bound, 0.0) + sample.value
    return found


def percentile(buckets: Mapping[float, float], q: float) -> float | None:
    """The `q` quantile of cumulative `buckets`, interpolated within its bucket as Prometheus's
    `histogram_quantile` does; None without observations. One in the `+Inf` bucket is the
    largest finite bound."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def point(now: float, dt_s: float, before: Counts | None, after: Counts | None) -> Point:
    """Rates and percentiles between two reads of one service (`before` None: no earlier
    read; a counter that went down means the gateway restarted: counted from zero)."""
    after = after or Counts()
    before = before or after
    if after.requests < before.requests:
        before = Counts()
    requests = after.requests - before.requests
    increments = {b: n - before.buckets.get(b, 0.0) for b, n in after.buckets.items()}
    found: Point = {
        "t": round(now, 3),
        "rps": round(requests / dt_s, 3) if dt_s > 0 else 0.0,
        "errors": round((after.errors - before.errors) / dt_s, 3) if dt_s > 0 else 0.0,
    }
    for q in QUANTILES:
        value = percentile(increments, q) if requests > 0 else None
        found[f"p{round(q * 100)}"] = None if value is None else round(value, 3)
    return found


class SeriesBook:
    """The last `keep` points of every service the platform runs or the gateway counted (a
    deleted service's history stops growing, and goes once its last point is as old as the
    oldest kept)."""

    def __init__(
        self,
        replicas: ReplicaSource,
        read_metrics: Callable[[], Awaitable[str]] | None = None,
        *,
        interval_s: float = INTERVAL_S,
        keep: int = KEEP_POINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`read_metrics`: the gateway's exposition (None: replicas only)."""
        self.replicas = replicas
        self.read_metrics = read_metrics
        self.interval_s = interval_s
        self.keep = keep
        self.clock = clock
        self._points: dict[ServiceKey, deque[Point]] = {}
        self._last: dict[ServiceKey, Counts] = {}
        self._last_at: float | None = None

    def sample(self, metrics_text: str | None, now: float) -> None:
        """Add one point per service from this read (None: the gateway did not answer, so
        no rates, only replicas)."""
        counts = gateway_counts(metrics_text) if metrics_text is not None else None
        replicas = _replicas_by_service(self.replicas.observe())
        dt_s = now - self._last_at if self._last_at is not None else 0.0
        keys = {*replicas, *(counts or {})}
        horizon = now - self.keep * self.interval_s
        for gone in [k for k, v in self._points.items() if k not in keys and v[-1]["t"] < horizon]:
            del self._points[gone]
        for key in sorted(keys):
            if counts is None:
                found: Point = {"t": round(now, 3), "rps": None, "errors": None}
                found.update({f"p{round(q * 100)}": None for q in QUANTILES})
            else:
                found = point(now, dt_s, self._last.get(key), counts.get(key))
            found["replicas"], found["ready"] = replicas.get(key, (0, 0))
            self._points.setdefault(key, deque(maxlen=self.keep)).append(found)
        if counts is not None:
            self._last = counts
            self._last_at = now

    def series(self, namespace: str | None = None, since: float = 0.0) -> list[dict[str, Any]]:
        """`[{namespace, name, points}]`, points after `since` only; every namespace (None)."""
        return [
            {"namespace": ns, "name": name, "points": [p for p in points if p["t"] > since]}
            for (ns, name), points in sorted(self._points.items())
            if namespace is None or ns == namespace
        ]

    async def run(self) -> None:
        """Sample every `interval_s` until cancelled."""
        while True:
            text: str | None = None
            if self.read_metrics is not None:
                try:
                    text = await self.read_metrics()
                except Exception as exc:  # the gateway restarting: a gap, not a crash
                    logger.debug("gateway metrics unreadable: %s", exc)
            try:
                self.sample(text, self.clock())
            except ValueError as exc:  # an exposition prometheus_client cannot parse
                logger.warning("gateway metrics not understood: %s", exc)
                self.sample(None, self.clock())
            await asyncio.sleep(self.interval_s)


def _replicas_by_service(
    states: dict[RevisionKey, RevisionState],
) -> dict[ServiceKey, tuple[int, int]]:
    """(namespace, service) -> (desired, ready) replicas over its components and revisions."""
    found: dict[ServiceKey, tuple[int, int]] = {}
    for state in states.values():
        spec = state.spec
        desired, ready = found.get((spec.namespace, spec.isvc), (0, 0))
        ready += sum(r.phase == "Ready" for r in state.replicas)
        found[(spec.namespace, spec.isvc)] = (desired + spec.replicas, ready)
    return found
