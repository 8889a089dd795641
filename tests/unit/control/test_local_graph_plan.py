"""graph_plan: where a graph's steps send, when it waits, its router's argv and which router
revision serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ksrv.api import resources
from ksrv.control import graph_plan, revisions
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState

GATEWAY = "http://127.0.0.1:8080"


def graph(nodes: dict[str, Any], **metadata: Any) -> Any:
    return resources.load({
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "chain", "namespace": "ml", **metadata},
        "spec": {"nodes": nodes},
    })  # fmt: skip


def isvc(name: str, ready: str | None = "True", **predictor: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"predictor": predictor or {"model": {"modelFormat": {"name": "sklearn"},
                                                      "storageUri": "/m"}}},
    }  # fmt: skip
    if ready is not None:
        condition = {"type": "Ready", "status": ready}
        if ready != "True":
            condition |= {"reason": "Starting", "message": "revision a-predictor-00001 is starting"}
        document["status"] = {"conditions": [condition]}
    return document


SEQUENCE = {"root": {"routerType": "Sequence", "steps": [
    {"serviceName": "a"}, {"nodeName": "second"}]},
    "second": {"routerType": "Sequence", "steps": [
        {"serviceName": "b", "data": "$response"}, {"serviceUrl": "http://x/y"}]}}  # fmt: skip


def address(service: str) -> str:
    return f"{GATEWAY}/serving/ml/{service}"


def test_steps_send_to_each_service_through_the_gateway_with_its_predict_path():
    v2 = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/m",
                    "protocolVersion": "v2"}}  # fmt: skip
    services = {"a": isvc("a"), "b": isvc("b", **v2)}
    steps = graph_plan.resolve_steps(graph(SEQUENCE), services, address)
    assert steps.waiting is None
    assert steps.urls == {
        "a": f"{GATEWAY}/serving/ml/a/v1/models/a:predict",
        "b": f"{GATEWAY}/serving/ml/b/v2/models/b/infer",
    }


def test_a_missing_service_is_waited_for_by_name_and_node():
    steps = graph_plan.resolve_steps(graph(SEQUENCE), {"a": isvc("a")}, address)
    assert steps.waiting == graph_plan.Waiting(
        "InferenceServiceNotFound", "InferenceService b (node second) is not found", "b"
    )
    assert steps.urls == {"a": f"{GATEWAY}/serving/ml/a/v1/models/a:predict"}


def test_a_service_not_ready_yet_is_waited_for_with_its_own_reason():
    services = {"a": isvc("a", ready="Unknown"), "b": isvc("b", ready=None)}
    waiting = graph_plan.resolve_steps(graph(SEQUENCE), services, address).waiting
    assert waiting is not None and waiting.reason == "InferenceServiceNotReady"
    assert waiting.message == (
        "InferenceService a (node root) is not ready: Starting: revision a-predictor-00001 is "
        "starting"
    )


def test_the_router_runs_ksrv_router_with_the_graph_json_both_platforms_write():
    ig = graph(SEQUENCE, annotations={"ksrv.dev/step-timeouts": '{"*": 2}'})
    urls = {"a": "http://g/a", "b": "http://g/b"}
    command = graph_plan.router_command(ig, urls)
    assert command[:5] == ("{python}", "-m", "ksrv", "router", "--graph-json")
    assert command[6:] == ("--http-port", "{http_port}", "--step-timeouts", '{"*": 2}')
    spec = json.loads(command[5])
    assert spec["nodes"]["root"]["steps"][0] == {"serviceName": "a", "serviceUrl": "http://g/a"}
    assert spec["nodes"]["second"]["steps"][1] == {"serviceUrl": "http://x/y"}
    assert "--step-timeouts" not in graph_plan.router_command(graph(SEQUENCE), urls)


def test_router_bounds_come_from_the_graph_and_default_to_one_replica():
    ig = graph(SEQUENCE, annotations={"autoscaling.knative.dev/target": "5", "other": "x"})
    bounds = graph_plan.router_autoscaling(ig)
    assert (bounds.min_replicas, bounds.max_replicas) == (1, None)
    assert bounds.annotations == (("autoscaling.knative.dev/target", "5"),)
    ig.spec.min_replicas, ig.spec.max_replicas, ig.spec.scale_metric = 0, 3, "rps"
    bounds = graph_plan.router_autoscaling(ig)
    assert (bounds.min_replicas, bounds.max_replicas, bounds.scale_metric) == (0, 3, "rps")


def test_standard_mode_comes_from_the_annotation():
    assert graph_plan.deployment_mode(graph(SEQUENCE)) is None
    for mode in ("Standard", "RawDeployment"):
        annotated = graph(SEQUENCE, annotations={"serving.kserve.io/deploymentMode": mode})
        assert graph_plan.deployment_mode(annotated) == "Standard"


def state(number: int, ready: int = 0, replicas: int = 1) -> RevisionState:
    name = graph_plan.revision_name("chain", number)
    spec = RevisionSpec("ml", "chain", revisions.ROUTER, name, ("x",), replicas=replicas)
    found = [
        ReplicaState(i, 1, 1000 + i, None, "Ready" if i < ready else "Starting", 0, None, None,
                     Path("/dev/null"), None, "127.0.0.1")
        for i in range(replicas)
    ]  # fmt: skip
    return RevisionState(spec, found)


def test_router_revisions_are_numbered_past_every_one_still_running():
    assert graph_plan.revision_name("chain", 3) == "chain-router-00003"
    assert graph_plan.next_number([]) == 1
    assert graph_plan.next_number([state(1), state(4)]) == 5


def test_the_latest_router_serves_once_ready_and_the_previous_until_then():
    old, new = state(1, ready=1), state(2)
    assert graph_plan.routed_revision([old, new], "chain-router-00002") == "chain-router-00001"
    ready = state(2, ready=1)
    assert graph_plan.routed_revision([old, ready], "chain-router-00002") == "chain-router-00002"
    at_zero = state(2, replicas=0)
    assert graph_plan.routed_revision([old, at_zero], "chain-router-00002") == "chain-router-00002"
    assert graph_plan.routed_revision([state(1)], "chain-router-00001") == "chain-router-00001"


def test_a_waiting_graph_keeps_the_newest_router_that_serves():
    assert graph_plan.routed_revision([state(1, ready=1), state(2)], None) == "chain-router-00001"
    assert graph_plan.routed_revision([state(1), state(2)], None) == "chain-router-00002"
    assert graph_plan.routed_revision([], None) is None
