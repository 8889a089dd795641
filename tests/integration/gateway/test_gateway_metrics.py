"""The gateway's `/metrics`: Knative's request count and latency per revision, requests in
flight and held by the activator, retries and upstream errors (a Gateway on the test's loop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import HELD_TIMEOUT_S, free_port, toy_script_server
from tests.integration.gateway.conftest import service


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


async def scrape_until(client: httpx.AsyncClient, condition: Callable[[dict], bool]) -> dict:
    """Scrape until `condition(scrape)` holds (bounded), and return that scrape."""
    deadline = time.monotonic() + HELD_TIMEOUT_S
    while not condition(metrics := await scrape(client)):
        assert time.monotonic() < deadline, f"metrics never got there: {metrics}"
        await asyncio.sleep(0.02)
    return metrics


def total(scrape: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (found, got), value in scrape.items() if found == name and wanted <= got)


def test_gateway_metrics_follow_answers_holds_retries_and_upstream_errors():
    from ksrv.gateway.app import Gateway

    toy = toy_script_server(grpc=False)
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nothing listens there

    def table(version: int, cold: list) -> dict:
        services = [
            service("toy", [(100, [toy])]),
            service("cold", [(100, cold)]),
            service("dead", [(100, dead)], timeout_s=0.5),
        ]
        return {"version": version, "domain": "example.com", "services": services}

    async def run() -> None:
        gateway = Gateway()
        await gateway.start("127.0.0.1", 0, grpc_port=0)
        gateway.set_routes(table(1, cold=[]))
        try:
            base = f"http://127.0.0.1:{gateway.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                for _ in range(5):
                    ready = await client.get("/serving/default/toy/v2/health/ready")
                    assert ready.status_code == 200
                missing = await client.get("/serving/default/toy/v2/models/nobody/ready")
                assert missing.status_code == 404
                metrics = await scrape(client)
                toy_revision = {
                    "namespace_name": "default",
                    "service_name": "toy",
                    "configuration_name": "toy-predictor",
                    "revision_name": "toy-predictor-00001",
                }
                assert total(metrics, "revision_request_count_total", **toy_revision,
                             response_code="200", response_code_class="2xx") == 5  # fmt: skip
                assert total(metrics, "revision_request_count_total", **toy_revision,
                             response_code="404", response_code_class="4xx") == 1  # fmt: skip
                assert total(metrics, "revision_request_latencies_count", service_name="toy") == 6
                assert total(metrics, "revision_request_latencies_bucket", le="+Inf") == 6

                # No replica: the request is held (and in flight) until a table brings one.
                held = asyncio.ensure_future(client.get("/serving/default/cold/v2/health/ready"))
                cold = {"service_name": "cold", "configuration_name": "cold-predictor"}
                state = await scrape_until(
                    client, lambda m: total(m, "ksrv_activator_requests_held", **cold) == 1
                )
                assert total(state, "ksrv_gateway_requests_in_flight", service_name="cold") == 1
                gateway.set_routes(table(2, cold=[toy]))
                assert (await held).status_code == 200
                metrics = await scrape(client)
                assert total(metrics, "ksrv_activator_requests_held", **cold) == 0
                assert total(metrics, "ksrv_gateway_requests_in_flight", service_name="cold") == 0
                assert total(metrics, "revision_request_count_total", **cold,
                             response_code="200") == 1  # fmt: skip

                # Every replica refuses: retried, held until the route's timeout, then 502.
                failed = await client.get("/serving/default/dead/v2/health/ready")
                assert failed.status_code == 502
                metrics = await scrape(client)
                dead_labels = {"service_name": "dead", "configuration_name": "dead-predictor"}
                assert total(metrics, "ksrv_gateway_retries_total", **dead_labels) >= 1
                assert total(metrics, "ksrv_gateway_upstream_errors_total", **dead_labels,
                             reason="unreachable") == 1  # fmt: skip
                assert total(metrics, "revision_request_count_total", **dead_labels,
                             response_code="502", response_code_class="5xx") == 1  # fmt: skip
        finally:
            await gateway.stop()

    try:
        asyncio.run(run())
    finally:
        toy.stop()


def test_metrics_path_is_answered_before_the_first_route_table():
    from ksrv.gateway.app import Gateway

    async def run() -> None:
        gateway = Gateway(routes_url=f"http://127.0.0.1:{free_port()}/ksrv/v1/routes")
        await gateway.start("127.0.0.1", 0, grpc_port=0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as c:
                answer = await c.get("/metrics")
                assert answer.status_code == 200
                assert "# TYPE revision_request_count_total counter" in answer.text
        finally:
            await gateway.stop()

    asyncio.run(run())
