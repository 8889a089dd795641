"""InferenceGraphs on the strict emulator: the operator waits for each step's InferenceService
(saying which), then makes the router's Deployment, Service and HPA owned by the graph, turns
the graph Ready with its URL once the router is, and its deletion takes the router with it."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import wait_until
from tests.k8s_cluster import Cluster, isvc

NS = "ns1"
TIMEOUT_S = 30.0  # a bound for what must happen, not an expected time (the machine may be loaded)
V1ALPHA1 = "serving.kserve.io/v1alpha1"
GRAPH = {
    "apiVersion": V1ALPHA1, "kind": "InferenceGraph",
    "metadata": {"name": "chain"},
    "spec": {"nodes": {"root": {"routerType": "Sequence",
                                "steps": [{"serviceName": "sklearn-iris"}]}}},
}  # fmt: skip


def _graph(cluster: Cluster) -> dict[str, Any]:
    return cluster.custom_object(V1ALPHA1, "inferencegraphs", NS, "chain") or {}


def _ready(cluster: Cluster) -> dict[str, Any]:
    for found in (_graph(cluster).get("status") or {}).get("conditions") or ():
        if found["type"] == "Ready":
            return dict(found)
    return {}


def test_a_graph_waits_for_its_service_then_runs_its_router(
    cluster: Cluster, kopf_runner: Any
) -> None:
    cluster.custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "inferencegraphs", GRAPH
    )
    wait_until(lambda: _ready(cluster).get("reason") == "InferenceServiceNotFound",
               "the graph says which service it waits for", TIMEOUT_S)  # fmt: skip
    assert "sklearn-iris" in _ready(cluster)["message"]
    assert cluster.deployment(NS, "chain") is None

    cluster.create_isvc(NS, isvc())
    wait_until(lambda: _ready(cluster).get("reason") == "InferenceServiceNotReady",
               "the graph waits for the service to be ready", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the service's Deployment exists", TIMEOUT_S)  # fmt: skip
    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")

    def router_objects() -> list[dict[str, Any] | None]:
        hpa = cluster.builtin("autoscaling/v2", "HorizontalPodAutoscaler", NS, "chain")
        return [cluster.deployment(NS, "chain"), cluster.service(NS, "chain"), hpa]

    wait_until(lambda: None not in router_objects(),
               "the router's objects exist once the service is Ready", TIMEOUT_S)  # fmt: skip
    router = cluster.deployment(NS, "chain")
    uid = _graph(cluster)["metadata"]["uid"]
    for obj in router_objects():
        assert obj is not None
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("InferenceGraph", uid, True)
        assert obj["metadata"]["labels"]["serving.kserve.io/inferencegraph"] == "chain"
    (container,) = router["spec"]["template"]["spec"]["containers"]
    spec = json.loads(container["args"][1])
    assert spec["nodes"]["root"]["steps"][0]["serviceUrl"] == (
        "http://sklearn-iris-predictor.ns1.svc.cluster.local/v1/models/sklearn-iris:predict"
    )
    assert _ready(cluster).get("status") != "True"

    cluster.mark_deployment_ready(NS, "chain")
    wait_until(lambda: _ready(cluster).get("status") == "True",
               "the graph is Ready once its router is", TIMEOUT_S)  # fmt: skip
    status = _graph(cluster)["status"]
    assert status["url"] == "http://chain-ns1.example.com"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "Stopped": "False",
    }  # fmt: skip

    cluster.custom.delete_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "inferencegraphs", "chain"
    )
    wait_until(lambda: cluster.deployment(NS, "chain") is None
               and cluster.service(NS, "chain") is None,
               "the router goes with the graph", TIMEOUT_S)  # fmt: skip


def test_an_invalid_graph_is_reported_and_not_retried(cluster: Cluster, kopf_runner: Any) -> None:
    bad = json.loads(json.dumps(GRAPH))
    bad["spec"]["nodes"] = {"first": bad["spec"]["nodes"]["root"]}
    cluster.custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "inferencegraphs", bad
    )
    wait_until(lambda: _ready(cluster).get("reason") == "InvalidSpec",
               "the invalid graph is reported", TIMEOUT_S)  # fmt: skip
    assert "root" in _ready(cluster)["message"]


def test_a_knative_graph_runs_its_router_as_a_knative_service(
    cluster: Cluster, kopf_runner: Any
) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the service's Deployment exists", TIMEOUT_S)  # fmt: skip
    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("status")
               == "True", "the service is Ready", TIMEOUT_S)  # fmt: skip
    body = json.loads(json.dumps(GRAPH))
    body["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Knative"}
    cluster.custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "inferencegraphs", body
    )
    wait_until(lambda: cluster.knative_service(NS, "chain") is not None,
               "the router's Knative Service exists", TIMEOUT_S)  # fmt: skip
    assert cluster.deployment(NS, "chain") is None
    cluster.mark_knative_service_ready(NS, "chain", "chain-00001")
    wait_until(lambda: _ready(cluster).get("status") == "True",
               "the graph is Ready with its Knative Service", TIMEOUT_S)  # fmt: skip
    assert _graph(cluster)["status"]["url"] == "http://chain.ns1.example.com"

    cluster.custom.patch_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "inferencegraphs", "chain",
        {"metadata": {"annotations": {"serving.kserve.io/stop": "true"}}},
    )  # fmt: skip
    wait_until(lambda: cluster.knative_service(NS, "chain") is None,
               "a stopped graph loses its router", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: _ready(cluster).get("reason") == "Stopped", "it says so", TIMEOUT_S)
    assert "url" not in _graph(cluster)["status"]
