"""An InferenceGraph's status from its router (ksrv.k8s.reconcile_graph), as KServe writes it."""

from __future__ import annotations

from typing import Any

from ksrv.api import resources
from ksrv.api.inference_graph import InferenceGraph
from ksrv.k8s import reconcile_graph
from ksrv.k8s.config import ClusterConfig

GRAPH = {
    "apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
    "metadata": {"name": "chain", "namespace": "ns", "generation": 3},
    "spec": {"nodes": {"root": {"routerType": "Sequence",
                                "steps": [{"serviceName": "model"}]}}},
}  # fmt: skip
AVAILABLE = {"status": {"conditions": [{"type": "Available", "status": "True"}]}}


def _graph() -> InferenceGraph:
    found = resources.load(GRAPH)
    assert isinstance(found, InferenceGraph)
    return found


def _types(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_a_standard_router_is_ready_with_its_deployment_and_gets_the_graphs_host() -> None:
    found = reconcile_graph.graph_status(_graph(), ClusterConfig(), AVAILABLE, False, {}, 0.0)
    assert found["url"] == "http://chain-ns.example.com"
    assert _types(found) == {"Ready": "True", "Stopped": "False"}
    assert found["observedGeneration"] == 3
    waiting = reconcile_graph.graph_status(_graph(), ClusterConfig(), None, False, {}, 0.0)
    assert "url" not in waiting and _types(waiting)["Ready"] == "Unknown"


def test_a_knative_router_lends_the_graph_its_conditions_and_url_once_ready() -> None:
    conditions = [{"type": t, "status": "True"}
                  for t in ("ConfigurationsReady", "Ready", "RoutesReady")]  # fmt: skip
    ksvc = {"status": {"url": "http://chain.ns.example.com", "conditions": conditions}}
    found = reconcile_graph.graph_status(_graph(), ClusterConfig(), ksvc, True, {}, 0.0)
    assert found["url"] == "http://chain.ns.example.com"
    assert _types(found) == {"ConfigurationsReady": "True", "Ready": "True",
                             "RoutesReady": "True", "Stopped": "False"}  # fmt: skip
    ksvc["status"]["conditions"][1]["status"] = "False"
    assert "url" not in reconcile_graph.graph_status(_graph(), ClusterConfig(), ksvc, True, {}, 0.0)


def test_a_graph_waits_only_for_services_its_steps_name_and_only_until_ready() -> None:
    assert reconcile_graph.is_waiting_for(GRAPH, "model")
    assert not reconcile_graph.is_waiting_for(GRAPH, "other")
    ready = {**GRAPH, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert not reconcile_graph.is_waiting_for(ready, "model")
