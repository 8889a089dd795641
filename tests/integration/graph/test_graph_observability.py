"""A `ksrv router` process's observability: `GET /metrics` counts each step's latency by node,
step and status class and the requests by status, on the router's own port."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, free_port
from tests.integration.graph.test_graph_cli import ROUTER


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
