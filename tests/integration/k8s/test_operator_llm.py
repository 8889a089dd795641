"""The operator against the strict emulator for an LLMInferenceService: the objects of the
huggingface InferenceService it translates into, owned by it, its preset merged from an
LLMInferenceServiceConfig (and re-merged when the preset changes), KServe's status for the
kind once the test, playing the Deployment controller, marks the Deployment ready; a missing
preset is named in the status."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import wait_until
from tests.k8s_cluster import GROUP, Cluster

NS = "ns1"
TIMEOUT_S = 30.0  # a bound for what must happen, not an expected time
VERSION = "v1alpha2"
PRESET: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "LLMInferenceServiceConfig",
    "metadata": {"name": "tiny-model"},
    "spec": {
        "model": {"uri": "hf://org/tiny"},
        "template": {"containers": [{"name": "main", "env": [{"name": "MODE", "value": "a"}]}]},
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "LLMInferenceService",
    "metadata": {"name": "chat"},
    "spec": {"baseRefs": [{"name": "tiny-model"}],
             "model": {"uri": "hf://org/tiny", "name": "tiny"},
             "replicas": 2, "router": {"scheduler": {}}},
}  # fmt: skip


def create(cluster: Cluster, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, plural, copy.deepcopy(body)))  # fmt: skip


def llm_service(cluster: Cluster, name: str = "chat") -> dict[str, Any]:
    return cluster.custom_object(f"{GROUP}/{VERSION}", "llminferenceservices", NS, name) or {}


def condition(cluster: Cluster, kind: str, name: str = "chat") -> dict[str, Any]:
    found = llm_service(cluster, name).get("status", {}).get("conditions") or []
    return next((c for c in found if c["type"] == kind), {})


def env(cluster: Cluster) -> dict[str, str]:
    deployment = cluster.deployment(NS, "chat-predictor") or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return {var["name"]: var.get("value") for var in (containers or [{}])[0].get("env") or ()}


def test_an_llm_service_is_rendered_owned_ready_and_follows_its_preset(
    cluster: Cluster, kopf_runner: Any
) -> None:
    create(cluster, "llminferenceserviceconfigs", PRESET)
    created = create(cluster, "llminferenceservices", SERVICE)
    wait_until(lambda: cluster.deployment(NS, "chat-predictor") is not None,
               "the workload Deployment exists", TIMEOUT_S)  # fmt: skip
    deployment = cluster.deployment(NS, "chat-predictor")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    (ref,) = deployment["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"]) == ("LLMInferenceService", created["metadata"]["uid"])
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "llminferenceservice"
    assert env(cluster)["MODE"] == "a"
    assert cluster.service(NS, "chat-predictor") is not None
    wait_until(lambda: condition(cluster, "MainWorkloadReady").get("status") == "Unknown",
               "starting", TIMEOUT_S)  # fmt: skip
    assert condition(cluster, "Ready")["status"] == "False"

    cluster.mark_deployment_ready(NS, "chat-predictor", replicas=2)
    wait_until(lambda: condition(cluster, "Ready").get("status") == "True",
               "the LLMInferenceService is Ready", TIMEOUT_S)  # fmt: skip
    status = llm_service(cluster)["status"]
    assert status["url"] == "http://chat-ns1.example.com"
    assert status["addresses"] == [{"url": status["url"]}]
    kinds = {c["type"] for c in status["conditions"]}
    assert {"PresetsCombined", "MainWorkloadReady", "WorkloadsReady", "RouterReady"} <= kinds
    # What KServe's LLM controller would make and this does not, as Warning Events.
    events = cluster.core.list_namespaced_event(NS).to_dict()["items"]
    told = [e for e in events if e["involved_object"]["kind"] == "LLMInferenceService"]
    assert told and {(e["type"], e["reason"]) for e in told} == {("Warning", "NotEnforced")}

    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, "llminferenceserviceconfigs", "tiny-model",
        {"spec": {"template": {"containers": [{"name": "main",
                                               "env": [{"name": "MODE", "value": "b"}]}]}}},
    )  # fmt: skip
    wait_until(lambda: env(cluster).get("MODE") == "b", "the preset's change is rendered",
               TIMEOUT_S)  # fmt: skip


def test_a_missing_preset_is_named_in_the_status(cluster: Cluster, kopf_runner: Any) -> None:
    orphan = copy.deepcopy(SERVICE)
    orphan["metadata"]["name"] = "orphan"
    orphan["spec"]["baseRefs"] = [{"name": "gpu-profile"}]
    create(cluster, "llminferenceservices", orphan)
    wait_until(lambda: condition(cluster, "Ready", "orphan").get("status") == "False",
               "the service says why it is not ready", TIMEOUT_S)  # fmt: skip
    ready = condition(cluster, "Ready", "orphan")
    assert "no LLMInferenceServiceConfig 'gpu-profile'" in ready["message"]
    assert cluster.deployment(NS, "orphan-predictor") is None
