"""metric_query: the part of PromQL a KEDA scaling query needs, evaluated on replicas' samples."""

from __future__ import annotations

import pytest

from ksrv.control import metric_query
from ksrv.control.metric_query import MetricTarget

# Two replicas' samples, as `replica_metrics.series` flattens them.
SERIES = [
    ("vllm:num_requests_running", {"model_name": "llm"}, 2.0),
    ("vllm:num_requests_waiting", {"model_name": "llm"}, 1.0),
    ("vllm:num_requests_running", {"model_name": "llm"}, 3.0),
    ("vllm:num_requests_waiting", {"model_name": "llm"}, 0.0),
    ("vllm:num_requests_running", {"model_name": "other"}, 7.0),
    ("ksrv_llm_tokens_in_flight", {"model_name": "llm"}, 300.0),
]


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("vllm:num_requests_running", 12.0),  # a bare selector is summed (KEDA wants one number)
        ('sum(vllm:num_requests_running{model_name="llm"})', 5.0),
        ('max(vllm:num_requests_running{model_name="llm"})', 3.0),
        ('avg(vllm:num_requests_running{model_name=~"ll.*"})', 2.5),
        ('count(vllm:num_requests_running{model_name!="llm"})', 1.0),
        ('min(vllm:num_requests_running{model_name!~"o.*"})', 2.0),
        ('sum(vllm:num_requests_running{model_name="llm"}) + sum(vllm:num_requests_waiting)', 6.0),
        # Prometheus's target labels select the revision's own pods on a cluster: left out here.
        (
            'sum(vllm:num_requests_running{namespace="default", pod=~"llm-.*", model_name="llm"})',
            5.0,
        ),
        ("sum(ksrv_llm_tokens_in_flight)", 300.0),
        ("sum(not_exported)", 0.0),  # an empty answer reads 0, as KEDA's ignoreNullValues does
    ],
)
def test_query_value_over_the_replicas_samples(query: str, value: float) -> None:
    assert metric_query.parse(query).value(SERIES) == value


@pytest.mark.parametrize(
    "query",
    [
        "rate(vllm:num_requests_running[1m])",
        "sum(vllm:num_requests_running) / 2",
        "sum(vllm:num_requests_running) +",
        'vllm:num_requests_running{model_name~"x"}',
        "",
    ],
)
def test_query_beyond_the_local_subset_is_refused_with_a_reason(query: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        metric_query.parse(query)


def test_metric_targets_read_keda_external_and_otel_pod_metrics_only() -> None:
    auto = {
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu"}},
            {"type": "External", "external": {
                "metric": {"backend": "prometheus", "serverAddress": "http://p:9090",
                           "query": "vllm:num_requests_running"},
                "target": {"type": "Value", "value": "2"}}},
            {"type": "PodMetric", "podmetric": {
                "metric": {"backend": "opentelemetry",
                           "metricNames": ["vllm:num_requests_waiting"]},
                "target": {"type": "Value", "value": "500m"}}},
            {"type": "External", "external": {"metric": {"backend": "graphite", "query": "x"}}},
        ]
    }  # fmt: skip
    assert metric_query.metric_targets(auto) == (
        MetricTarget(
            "External", "autoScaling.metrics[1].external", "vllm:num_requests_running", 2.0
        ),
        MetricTarget(
            "PodMetric", "autoScaling.metrics[2].podmetric", "vllm:num_requests_waiting", 0.5
        ),
    )
