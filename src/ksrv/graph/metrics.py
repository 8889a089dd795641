"""The graph router's Prometheus metrics: each step's latency and every request's outcome.

`ksrv_graph_step_duration_seconds` is labelled by node, step (its name, else its index) and
status class (`2xx` ... `5xx`; `none` for a step that never answered: cut off by the graph's
timeout or called off by its Ensemble); `ksrv_graph_requests` counts requests by the status
the caller got, and `ksrv_graph_request_duration_seconds` times them by status class. Labels
only ever name the graph's own nodes and steps, and each label set's child is resolved once
and cached, so a request costs dict lookups and value updates. The registry is
`ksrv.telemetry.metrics`', as the model server's and the gateway's are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from ksrv.graph.executor import StepRecord
from ksrv.graph.spec import Graph
from ksrv.telemetry import metrics as telemetry


def status_class(code: int) -> str:
    """`2xx` for 200..299, and so on; `none` for a step that never answered (status 0)."""
    return f"{code // 100}xx" if code >= 100 else "none"


class RouterMetrics:
    """Every metric of one router process, in `registry` (a fresh one by default)."""

    def __init__(self, graph: Graph, registry: CollectorRegistry | None = None) -> None:
        self.registry = own = registry if registry is not None else telemetry.registry()
        self.steps = Histogram(
            "ksrv_graph_step_duration_seconds",
            "Time from a graph step's start to its answer, by node, step and status class",
            ["node", "step", "status_class"],
            registry=own,
        )
        self.requests = Counter(
            "ksrv_graph_requests", "Requests the router answered, by status code", ["code"],
            registry=own,
        )  # fmt: skip
        self.latency = Histogram(
            "ksrv_graph_request_duration_seconds",
            "Time from a request's arrival at the router to its answer, by status class",
            ["status_class"],
            registry=own,
        )
        # `node/step` (StepRecord.label) -> the step's (node, step) label values.
        self._steps_by_label = {
            step.label: (step.node, step.key)
            for node in graph.nodes.values()
            for step in node.steps
        }
        self._step_observers: dict[tuple[str, int], Callable[[float], None]] = {}
        self._answers: dict[int, tuple[Callable[[], None], Callable[[float], None]]] = {}

    def record(self, code: int, seconds: float, records: Sequence[StepRecord]) -> None:
        """One answered request: its status, latency and every step it ran."""
        answer = self._answers.get(code)
        if answer is None:
            answer = self._answers[code] = (
                self.requests.labels(str(code)).inc,
                self.latency.labels(status_class(code)).observe,
            )
        answer[0]()
        answer[1](seconds)
        observers = self._step_observers
        for record in records:
            key = (record.label, record.status // 100)
            observe = observers.get(key)
            if observe is None:
                node, step = self._steps_by_label[record.label]
                child = self.steps.labels(node, step, status_class(record.status))
                observe = observers[key] = child.observe
            observe(record.latency_ms / 1000.0)

    def exposition(self) -> bytes:
        return telemetry.exposition_text(self.registry)
