"""TrainedModels on the strict emulator: the operator keeps the multi-model predictor's
`modelconfig-{isvc}-0` ConfigMap listing the models that fit its memory, writes each model's
KServe status, and takes a model out of the ConfigMap before its finalizer lets it go."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import wait_until
from tests.k8s_cluster import SKLEARN_URI, Cluster, isvc

NS = "ns1"
TIMEOUT_S = 30.0  # a bound for what must happen, not an expected time (the machine may be loaded)
GROUP, VERSION = "serving.kserve.io", "v1alpha1"
MMS = {
    "apiVersion": f"{GROUP}/v1beta1", "kind": "InferenceService",
    "metadata": {"name": "mms"},
    "spec": {"predictor": {"containers": [{
        "name": "kserve-container", "image": "example.com/mms:1",
        "env": [{"name": "MULTI_MODEL_SERVER", "value": "true"}],
    }]}},
}  # fmt: skip


def _create_model(cluster: Cluster, name: str, service: str, memory: str) -> None:
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainedmodels", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainedModel", "metadata": {"name": name},
        "spec": {"inferenceService": service,
                 "model": {"storageUri": f"gs://models/{name}", "framework": "sklearn",
                           "memory": memory}},
    })  # fmt: skip


def _model(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(f"{GROUP}/{VERSION}", "trainedmodels", NS, name)


def _conditions(cluster: Cluster, name: str) -> dict[str, dict[str, Any]]:
    found = ((_model(cluster, name) or {}).get("status") or {}).get("conditions") or ()
    return {c["type"]: c for c in found}


def _listed(cluster: Cluster) -> list[str] | None:
    found = cluster.builtin("v1", "ConfigMap", NS, "modelconfig-mms-0")
    if found is None:
        return None
    return [entry["modelName"] for entry in json.loads(found["data"]["models.json"])]


def test_the_model_config_lists_the_models_that_fit_and_follows_their_deletion(
    cluster: Cluster, kopf_runner: Any
) -> None:
    created = cluster.create_isvc(NS, MMS)
    wait_until(lambda: _listed(cluster) == [], "an empty ConfigMap for the multi-model predictor",
               TIMEOUT_S)  # fmt: skip
    config = cluster.builtin("v1", "ConfigMap", NS, "modelconfig-mms-0")
    (ref,) = config["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"]) == ("InferenceService", created["metadata"]["uid"])

    _create_model(cluster, "m1", "mms", "1Gi")
    _create_model(cluster, "m2", "mms", "1536Mi")  # with m1, more than the predictor's 2Gi
    wait_until(lambda: _listed(cluster) == ["m1"], "m1 is listed, m2 does not fit", TIMEOUT_S)
    wait_until(lambda: "MemoryResourceAvailable" in _conditions(cluster, "m2"),
               "m2 has a status", TIMEOUT_S)  # fmt: skip
    memory = _conditions(cluster, "m2")["MemoryResourceAvailable"]
    assert (memory["status"], memory["reason"]) == ("False", "MemoryResourceNotAvailable")
    allocated = "serving.kserve.io/trainedmodel-allocated"
    wait_until(lambda: allocated in _model(cluster, "m1")["metadata"].get("labels", {}),
               "m1 is labelled as placed", TIMEOUT_S)  # fmt: skip
    meta = _model(cluster, "m1")["metadata"]
    assert "trainedmodel.finalizer" in meta["finalizers"]
    assert allocated not in _model(cluster, "m2")["metadata"].get("labels", {})
    assert meta["labels"]["inferenceservice"] == "mms"
    assert meta["labels"][allocated] == "mms"

    cluster.mark_deployment_ready(NS, "mms-predictor")
    wait_until(lambda: _conditions(cluster, "m1").get("Ready", {}).get("status") == "True",
               "m1 is Ready with its InferenceService", TIMEOUT_S)  # fmt: skip
    status = _model(cluster, "m1")["status"]
    assert status["url"] == "http://mms-ns1.example.com/v1/models/m1:predict"
    assert status["address"]["url"] == (
        "http://mms-predictor.ns1.svc.cluster.local/v1/models/m1:predict"
    )
    assert {t: c["status"] for t, c in _conditions(cluster, "m1").items()} == {
        "InferenceServiceReady": "True", "IsMMSPredictor": "True",
        "MemoryResourceAvailable": "True", "Ready": "True",
    }  # fmt: skip

    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "trainedmodels", "m1")
    wait_until(lambda: _model(cluster, "m1") is None, "m1 is gone", TIMEOUT_S)
    wait_until(lambda: _listed(cluster) == ["m2"], "m2 now fits and is listed", TIMEOUT_S)


def test_a_model_on_a_single_model_service_is_not_placed_and_goes_with_it(
    cluster: Cluster, kopf_runner: Any
) -> None:
    cluster.create_isvc(NS, isvc(storage_uri=SKLEARN_URI))
    _create_model(cluster, "extra", "sklearn-iris", "1Gi")
    wait_until(lambda: "Ready" in _conditions(cluster, "extra"), "it has a status", TIMEOUT_S)
    ready = _conditions(cluster, "extra")["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "IsNotMMSPredictor")
    config = cluster.builtin("v1", "ConfigMap", NS, "modelconfig-sklearn-iris-0")
    assert json.loads(config["data"]["models.json"]) == []

    cluster.delete_isvc(NS, "sklearn-iris")
    wait_until(lambda: _model(cluster, "extra") is None,
               "the model goes with its InferenceService", TIMEOUT_S)  # fmt: skip


def test_a_model_whose_service_does_not_exist_is_deleted(
    cluster: Cluster, kopf_runner: Any
) -> None:
    _create_model(cluster, "orphan", "missing", "1Gi")
    wait_until(lambda: _model(cluster, "orphan") is None, "the orphan is deleted", TIMEOUT_S)
