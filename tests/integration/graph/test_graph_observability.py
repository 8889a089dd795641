"""A `ksrv router` process's observability: `GET /metrics` counts each step's latency by node,
step and status class and the requests by status, on the router's own port; with OTEL_* set,
a request through the router to a real model server is one trace (router, step, server)."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KSRV, ServerProcess, free_port
from tests.integration.graph.test_graph_cli import ROUTER
from tests.integration.telemetry.test_tracing_server import by_name, trace_of, traceparent
from tests.otlp_collector import OTLPCollector


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def test_router_metrics_count_each_steps_latency_by_status_class_and_requests_by_code(
    step_service,
):
    graph = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"name": "echo", "serviceUrl": step_service.url + "/echo"},
                    {"serviceUrl": step_service.url + "/status/503", "dependency": "Soft"},
                    {"name": "last", "serviceUrl": step_service.url + "/success"},
                ],
            }
        }
    }
    port = free_port()
    router = ServerProcess(
        [*ROUTER, "--graph-json", json.dumps(graph), "--http-port", str(port)], port
    )
    try:
        router.wait_ready(path="/readyz")
        requests = 3
        for _ in range(requests):
            assert httpx.post(router.url, json={"instances": [1]}).status_code == 200
        found = samples(router.url)
    finally:
        assert router.stop() == 0
    step = "ksrv_graph_step_duration_seconds"
    assert found[(f"{step}_count", labels(node="root", step="echo", status_class="2xx"))] == 3
    assert found[(f"{step}_count", labels(node="root", step="1", status_class="5xx"))] == 3
    assert found[(f"{step}_count", labels(node="root", step="last", status_class="2xx"))] == 3
    assert found[(f"{step}_bucket", labels(node="root", step="echo", status_class="2xx",
                                           le="+Inf"))] == 3  # fmt: skip
    assert found[("ksrv_graph_requests_total", labels(code="200"))] == requests
    latency = "ksrv_graph_request_duration_seconds_count"
    assert found[(latency, labels(status_class="2xx"))] == requests


def test_a_request_through_the_router_to_a_model_server_is_one_trace(tmp_path):
    from tests import models

    collector = OTLPCollector()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    model_dir = models.sklearn_iris(tmp_path / "iris")
    server_port, router_port = free_port(), free_port()
    server = ServerProcess(
        [*KSRV, "serve", "--model-format", "sklearn", "--model-dir", str(model_dir),
         "--model-name", "iris", "--http-port", str(server_port)],
        server_port,
        {**env, "OTEL_SERVICE_NAME": "iris-predictor"},
    )  # fmt: skip
    graph = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [{"name": "iris", "serviceUrl": f"{server.url}/v1/models/iris:predict"}],
            }
        }
    }
    router = ServerProcess(
        [*ROUTER, "--graph-json", json.dumps(graph), "--http-port", str(router_port)],
        router_port,
        {**env, "OTEL_SERVICE_NAME": "dag-router"},
    )
    try:
        server.wait_ready()
        router.wait_ready(path="/readyz")
        header, trace_id, caller_span = traceparent()
        response = httpx.post(
            router.url,
            json={"instances": [[6.8, 2.8, 4.8, 1.4]]},
            headers={"traceparent": header, "tracestate": "vendor=1"},
        )
        assert response.status_code == 200, response.text
        spans = trace_of(collector, trace_id, {"POST", "step root/iris",
                                               "POST /v1/models/{model}:predict"})  # fmt: skip
    finally:
        assert router.stop() == 0
        server.stop()
        collector.close()
    routed = by_name(spans, "POST")
    assert routed.kind == "SERVER" and routed.service == "dag-router"
    assert routed.parent_span_id == caller_span
    assert routed.attributes["http.response.status_code"] == 200
    step = by_name(spans, "step root/iris")
    assert step.kind == "CLIENT" and step.parent_span_id == routed.span_id
    assert step.attributes["ksrv.graph.node"] == "root"
    assert step.attributes["ksrv.graph.step"] == "iris"
    assert step.attributes["http.response.status_code"] == 200
    served = by_name(spans, "POST /v1/models/{model}:predict")
    assert served.service == "iris-predictor" and served.parent_span_id == step.span_id
