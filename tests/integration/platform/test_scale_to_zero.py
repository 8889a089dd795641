"""Scale to zero and the activator on the real local platform, and containerConcurrency.

`ksrv up` runs with a short stable window (6 s) and grace period (1 s). A `minReplicas: 0`
revision goes to zero replicas once idle, stays Ready and routed, and a request sent then is
held by the gateway, which asks for a replica at once: it is answered, and the revision goes
back to zero. A `containerConcurrency: 2` revision never has more than 2 requests in its
model at a time under 8 concurrent clients (the `concurrency` toy records its own).
The full 0 -> N -> 0 bar under load and the cold-start figure are in bench/scale_to_zero.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import grpc
import httpx
import pytest

from tests.conftest import TESTS_DIR, wait_until
from tests.integration.platform.conftest import _assert_no_leftovers
from tests.platform_support import LocalKsrv

CONFIG = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler, namespace: "
    "knative-serving}\ndata:\n  stable-window: 6s\n  scale-to-zero-grace-period: 1s\n"
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    state = tmp_path_factory.mktemp("ksrv-zero")
    config = state / "config-autoscaler.yaml"
    config.write_text(CONFIG)
    running = LocalKsrv(state, args=("--autoscaler-config", str(config))).start()
    try:
        yield running
    finally:
        running.stop()
        _assert_no_leftovers(running)


def toy_service(name: str, toy: str, **predictor: object) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "predictor": {
                **predictor,
                "containers": [{
                    "name": "kserve-container", "image": "ksrv-toys",
                    "command": ["ksrv", "serve", f"{TESTS_DIR / 'toys.py'}:{toy}"],
                    "args": ["--model-name", toy.lower()],
                }],
            }
        },
    }  # fmt: skip


def replicas(platform: LocalKsrv, name: str) -> int:
    return sum(len(pids) for revision, pids in platform.replica_pids().items() if name in revision)


def is_ready(platform: LocalKsrv, name: str) -> bool:
    conditions = platform.isvc(name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_an_idle_revision_goes_to_zero_and_a_request_wakes_it_through_the_activator(
    platform: LocalKsrv,
):
    name = "zero"
    platform.apply([toy_service(name, "Slow", minReplicas=0, maxReplicas=2, scaleTarget=1)])
    platform.wait_ready(name)
    revision = f"{name}-predictor-00001"
    # Idle: a stable window (6 s) and the grace period (1 s), on 2 s ticks.
    wait_until(lambda: replicas(platform, name) == 0, "scaled to zero", 60)
    # Still routed (held for, not 404) and Ready, as a Knative revision at zero is.
    wait_until(lambda: platform.routed_replicas(name) == {revision: 0}, "routed at zero", 30)
    assert is_ready(platform, name)
    scaler = platform.isvc(name)["status"]["components"]["predictor"]["autoscaler"]
    assert scaler["desiredReplicas"] == 0
    rest_answer, grpc_ready = asyncio.run(wake_by_rest_and_grpc(platform, name))
    assert rest_answer.status_code == 200, rest_answer.text
    assert grpc_ready  # gRPC takes the same path: held, then answered
    # One replica, or two: both requests held at once are two in flight at a target of 1.
    assert 1 <= replicas(platform, name) <= 2
    wait_until(lambda: replicas(platform, name) == 0, "back to zero", 60)
    described = platform.cli("describe", "isvc", name)
    assert "no traffic for a stable window" in described, described
    platform.cli("delete", "isvc", name)


async def wake_by_rest_and_grpc(platform: LocalKsrv, name: str) -> tuple[httpx.Response, bool]:
    """A REST predict and a gRPC ServerReady sent together to the revision at zero."""
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb2
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb2_grpc

    url = f"{platform.gateway}/serving/default/{name}/v1/models/slow:predict"
    async with (
        httpx.AsyncClient(timeout=60) as client,
        grpc.aio.insecure_channel(f"127.0.0.1:{platform.grpc_port}") as channel,
    ):
        stub = pb2_grpc.GRPCInferenceServiceStub(channel)
        host = (("host", f"{name}-default.example.com"),)
        rest, ready = await asyncio.gather(
            client.post(url, json={"instances": [[1]], "delay_s": 0.05}),
            stub.ServerReady(pb2.ServerReadyRequest(), metadata=host, timeout=60),
        )
    return rest, bool(ready.ready)


def test_container_concurrency_2_never_puts_more_than_2_requests_in_a_replica(
    platform: LocalKsrv,
):
    name = "limited"
    platform.apply([toy_service(name, "Concurrency", minReplicas=1, maxReplicas=2,
                                containerConcurrency=2)])  # fmt: skip
    platform.wait_ready(name)
    url = f"{platform.gateway}/serving/default/{name}/v1/models/concurrency:predict"

    async def clients() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:

            async def one_client() -> list[httpx.Response]:
                body = {"instances": [[1]], "delay_s": 0.2}
                return [await client.post(url, json=body) for _ in range(6)]

            answers = await asyncio.gather(*(one_client() for _ in range(8)))
        return [answer for answers_of_one in answers for answer in answers_of_one]

    answers = asyncio.run(clients())
    assert {answer.status_code for answer in answers} == {200}, answers[0].text
    most = {answer.json()["pid"]: answer.json()["most"] for answer in answers}
    # Eight clients against a limit of two: each replica reached the limit, none passed it.
    assert max(most.values()) == 2, json.dumps(most)
    platform.cli("delete", "isvc", name)


def test_an_idle_graph_router_goes_to_zero_and_a_call_to_the_graph_wakes_it(platform: LocalKsrv):
    platform.apply([toy_service("echoed", "Echo")], "--wait")
    platform.apply([{
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
        "metadata": {"name": "lazy", "namespace": "default"},
        "spec": {"minReplicas": 0, "maxReplicas": 1, "nodes": {"root": {
            "routerType": "Sequence", "steps": [{"serviceName": "echoed"}]}}},
    }])  # fmt: skip
    revision = "lazy-router-00001"
    wait_until(lambda: platform.routed_replicas("lazy") == {revision: 1}, "router up", 60)
    wait_until(lambda: platform.routed_replicas("lazy") == {revision: 0}, "router at zero", 60)
    url = f"{platform.gateway}/serving/default/lazy"
    answer = httpx.post(url, json={"instances": [[1, 2]]}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [[1, 2]]}
    graph = platform.cli("get", "ig", "lazy")
    assert "True" in graph.splitlines()[1], graph
    platform.cli("delete", "ig", "lazy")
    platform.cli("delete", "isvc", "echoed")
