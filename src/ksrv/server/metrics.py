"""A model server's Prometheus metrics: KServe's step histograms, requests, merges, load time
(and the response cache's).

KServe's names and label (`request_{preprocess,predict,postprocess,explain}_seconds` by
`model_name`, default buckets) so KServe's dashboards work unchanged; ksrv's own under
`ksrv_`. The request path reaches only pre-resolved children: a model's step observers are
bound once (`step_observers`), and request counters are cached per (protocol, model, code),
so no request looks a label set up. Labels only ever name registered models, never what a
caller typed. The payload logger's counts (`watch_payload_log`) are read from it at each
scrape, so the logger's hot path gains nothing (under pre-forked workers, where a scrape reads
the workers' files, each worker copies its counts there every `SYNC_S` instead); so are
generative engines' loads (`watch_engines`), exported under vLLM's names so autoscalers
written for vLLM read them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ksrv.model.base import EXPLAIN, PREDICT, StepObservers
from ksrv.protocol import status
from ksrv.telemetry import metrics as telemetry

if TYPE_CHECKING:
    from ksrv.model.openai import EngineLoad
    from ksrv.server.payload_log import PayloadLogStats

# Requests merged into one model call: powers of two up to well past the default batch size.
MERGE_BUCKETS = (2, 4, 8, 16, 32, 64, 128, 256)
# Time to first token (s), as vLLM buckets it.
FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# KServe's step histograms: `request_{step}_seconds` and its help text.
_STEPS = {
    "preprocess": "pre-process",
    PREDICT: "predict",
    "postprocess": "post-process",
    EXPLAIN: "explain",
}


class RequestCount:
    """Counts one model's requests of one protocol by outcome: `with` around a request.

    The code is the HTTP status (REST) or the gRPC status name (gRPC) the caller gets; a
    request cancelled because its client left has none and is not counted.
    """

    __slots__ = ("_by_code", "_counter", "_is_grpc", "_labels", "_ok")

    def __init__(self, counter: Counter, model_name: str, protocol: str) -> None:
        self._counter = counter
        self._labels = (model_name, protocol)
        self._is_grpc = protocol == "grpc"
        self._ok = counter.labels(model_name, protocol, "OK" if self._is_grpc else "200").inc
        self._by_code: dict[str, Callable[[], None]] = {}

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self._ok()
        elif isinstance(exc, Exception):
            code = status.grpc_code(exc) if self._is_grpc else str(status.http_status(exc))
            inc = self._by_code.get(code)
            if inc is None:
                inc = self._by_code[code] = self._counter.labels(*self._labels, code).inc
            inc()


class Generation:
    """One generative model's token metrics (OpenAI completions and chat completions)."""

    __slots__ = ("_completion", "_first_token", "_prompt")

    def __init__(self, metrics: ServerMetrics, model_name: str) -> None:
        self._first_token = metrics.first_token.labels(model_name).observe
        self._prompt = metrics.tokens.labels(model_name, "prompt").inc
        self._completion = metrics.tokens.labels(model_name, "generation").inc

    def first_token(self, seconds: float) -> None:
        """A streamed answer's first chunk came `seconds` after the request."""
        self._first_token(seconds)

    def usage(self, usage: Any) -> None:
        """Count an answer's `usage` (OpenAI's prompt and completion tokens), if it has one."""
        if usage is not None:
            self._prompt(usage.prompt_tokens or 0)
            self._completion(usage.completion_tokens or 0)


class ResponseCacheMetrics:
    """The response cache's (`response_cache.py`): registered only when a cache is on."""

    def __init__(self, own: CollectorRegistry) -> None:
        self.hits = Counter(
            "ksrv_response_cache_hits", "Answers given from the response cache", ["model_name"],
            registry=own,
        )  # fmt: skip
        self.misses = Counter(
            "ksrv_response_cache_misses",
            "Cacheable requests the response cache could not answer",
            ["model_name"],
            registry=own,
        )
        self.evictions = Counter(
            "ksrv_response_cache_evictions",
            "Answers dropped from the response cache to make room",
            ["model_name"],
            registry=own,
        )
        self.bytes = Gauge(
            "ksrv_response_cache_bytes",
            "Bytes the response cache holds",
            multiprocess_mode="livesum",
            registry=own,
        )


class ServerMetrics:
    """Every metric of one model server, in `registry` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else telemetry.registry()
        own = self.registry
        self._steps = {
            step: Histogram(
                f"request_{step}_seconds", f"{what} request latency", ["model_name"], registry=own
            )
            for step, what in _STEPS.items()
        }
        self.requests = Counter(
            "ksrv_requests",
            "Inference requests by model, protocol (v1, v2, grpc, openai) and status code",
            ["model_name", "protocol", "code"],
            registry=own,
        )
        self.merged = Histogram(
            "ksrv_merged_requests",
            "Requests answered by one merged model call (calls that merged two or more)",
            ["model_name"],
            buckets=MERGE_BUCKETS,
            registry=own,
        )
        self.merged_rows = Histogram(
            "ksrv_merged_rows",
            "Rows in one merged model call",
            ["model_name"],
            buckets=MERGE_BUCKETS,
            registry=own,
        )
        self.load_seconds = Gauge(
            "ksrv_model_load_seconds",
            "How long the model's last load() took",
            ["model_name"],
            multiprocess_mode="mostrecent",
            registry=own,
        )
        self.first_token = Histogram(
            "ksrv_llm_time_to_first_token_seconds",
            "Time from an OpenAI streamed request to its first chunk",
            ["model_name"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=own,
        )
        self.tokens = Counter(
            "ksrv_llm_tokens",
            "Tokens of OpenAI completions by kind (prompt, generation), as the answers' usage says",
            ["model_name", "kind"],
            registry=own,
        )
        self._counts: dict[tuple[str, str], RequestCount] = {}
        self._generations: dict[str, Generation] = {}
        self._response_cache: ResponseCacheMetrics | None = None

    def response_cache(self) -> ResponseCacheMetrics:
        """The response cache's metrics, registered on first use."""
        if self._response_cache is None:
            self._response_cache = ResponseCacheMetrics(self.registry)
        return self._response_cache

    def step_observers(self, model_name: str) -> StepObservers:
        """`observe(seconds)` per pipeline step of one model (`Model.step_observers`)."""
        return {
            step: histogram.labels(model_name).observe for step, histogram in self._steps.items()
        }

    def count(self, protocol: str, model_name: str) -> RequestCount:
        """The request counter of a registered model for one protocol."""
        key = (protocol, model_name)
        counted = self._counts.get(key)
        if counted is None:
            counted = self._counts[key] = RequestCount(self.requests, model_name, protocol)
        return counted

    def generation(self, model_name: str) -> Generation:
        """The token metrics of a registered generative model."""
        found = self._generations.get(model_name)
        if found is None:
            found = self._generations[model_name] = Generation(self, model_name)
        return found

    def record_merge(self, model_name: str, requests: int, rows: int) -> None:
        self.merged.labels(model_name).observe(requests)
        self.merged_rows.labels(model_name).observe(rows)

    def record_load(self, model_name: str, seconds: float) -> None:
        self.load_seconds.labels(model_name).set(seconds)

    def watch_payload_log(self, stats: Callable[[], PayloadLogStats]) -> threading.Event | None:
        """Export the payload logger's counts, read from `stats` at each scrape; or, with
        metrics shared across workers, copied every `SYNC_S` (returns the event that stops the
        copying, after one last copy)."""
        if not telemetry.is_shared():
            self.registry.register(_PayloadLogCollector(stats))
            return None
        stop = threading.Event()
        sync = _PayloadLogSync(self.registry, stats)
        threading.Thread(
            target=sync.every, args=(stop,), name="payload-log-metrics", daemon=True
        ).start()
        return stop

    def watch_engines(self, loads: Callable[[], list[tuple[str, EngineLoad]]]) -> None:
        """Export each generative model's engine load (`loads`: by model name) at each scrape."""
        self.registry.register(_EngineCollector(loads))

    def exposition(self) -> bytes:
        return telemetry.exposition_text(self.registry)


# How often a worker copies its payload logger's counts to the shared metric files.
SYNC_S = 1.0
_EVENTS_HELP = (
    "Payload events by outcome: sent to the sink, failed (gave up after every try), "
    "dropped (queue full, or still queued when the server stopped)"
)


class _PayloadLogSync:
    """The payload logger's counts as metrics that live in the workers' shared files: each
    copy adds what changed since the last one."""

    def __init__(self, registry: CollectorRegistry, stats: Callable[[], PayloadLogStats]) -> None:
        self.stats = stats
        self.submitted = Counter(
            "ksrv_payload_log_submitted",
            "Payload events (requests and responses) handed to the payload logger",
            registry=registry,
        )
        events = Counter("ksrv_payload_log_events", _EVENTS_HELP, ["outcome"], registry=registry)
        self.events = {outcome: events.labels(outcome) for outcome in ("sent", "failed", "dropped")}
        self.queued = Gauge(
            "ksrv_payload_log_queued",
            "Payload events waiting to be sent",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.copied = {"submitted": 0, "sent": 0, "failed": 0, "dropped": 0}

    def copy(self) -> None:
        stats = self.stats()
        for name, counter in (("submitted", self.submitted), *self.events.items()):
            value = getattr(stats, name)
            if value > self.copied[name]:
                counter.inc(value - self.copied[name])
                self.copied[name] = value
        self.queued.set(stats.queued)

    def every(self, stop: threading.Event) -> None:
        while not stop.wait(SYNC_S):
            self.copy()
        self.copy()


class _EngineCollector(Collector):
    """vLLM's scheduler gauges (`vllm:num_requests_running`, `vllm:num_requests_waiting`) and
    ksrv's tokens in flight, per generative model."""

    def __init__(self, loads: Callable[[], list[tuple[str, EngineLoad]]]) -> None:
        self.loads = loads

    def collect(self) -> Iterator[Metric]:
        families = (
            ("vllm:num_requests_running", "Generations producing tokens", "running"),
            ("vllm:num_requests_waiting", "Generations queued for a place", "waiting"),
            ("ksrv_llm_tokens_in_flight", "Prompt plus max new tokens of the generations "
             "running or waiting", "tokens"),
        )  # fmt: skip
        loads = self.loads()
        for name, documentation, field in families:
            family = GaugeMetricFamily(name, documentation, labels=["model_name"])
            for model_name, load in loads:
                family.add_metric([model_name], getattr(load, field))
            yield family


class _PayloadLogCollector(Collector):
    """The payload logger's events by outcome, and those waiting, as `PayloadLog.stats` says."""

    def __init__(self, stats: Callable[[], PayloadLogStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        yield CounterMetricFamily(
            "ksrv_payload_log_submitted",
            "Payload events (requests and responses) handed to the payload logger",
            value=stats.submitted,
        )
        events = CounterMetricFamily("ksrv_payload_log_events", _EVENTS_HELP, labels=["outcome"])
        for outcome in ("sent", "failed", "dropped"):
            events.add_metric([outcome], getattr(stats, outcome))
        yield events
        yield GaugeMetricFamily(
            "ksrv_payload_log_queued", "Payload events waiting to be sent", value=stats.queued
        )
