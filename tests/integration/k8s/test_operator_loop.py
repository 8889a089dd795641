"""The operator against the strict emulator: what KServe's controller does for a sklearn
InferenceService in Standard mode, from create to delete, with the test playing the
Deployment controller."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_until
from tests.k8s_cluster import Cluster, isvc
from tests.k8s_emulator import EmulatorThread

NS = "ns1"
TIMEOUT_S = 30.0  # a bound for what must happen, not an expected time (the machine may be loaded)


def test_create_makes_owned_deployment_and_service_then_ready_once_deployment_is(
    cluster: Cluster, kopf_runner: Any
) -> None:
    created = cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: cluster.service(NS, "sklearn-iris-predictor") is not None,
               "the predictor Service exists", TIMEOUT_S)  # fmt: skip
    deployment = cluster.deployment(NS, "sklearn-iris-predictor")
    service = cluster.service(NS, "sklearn-iris-predictor")
    for obj in (deployment, service):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["kind"] == "InferenceService" and ref["uid"] == created["metadata"]["uid"]
        assert ref["controller"] is True
    init = deployment["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["storage-initializer"]
    assert init[0]["args"][0] == "gs://kfserving-examples/models/sklearn/1.0/model"
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "IngressReady") or {}).get(
        "reason") == "Predictor ingress not created", "not ready yet", TIMEOUT_S)  # fmt: skip
    body = cluster.isvc(NS, "sklearn-iris")
    assert "inferenceservice.finalizers" in body["metadata"]["finalizers"]
    assert body["status"]["modelStatus"]["states"]["targetModelState"] == "Pending"

    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("status")
               == "True", "the InferenceService is Ready", TIMEOUT_S)  # fmt: skip
    status = cluster.isvc(NS, "sklearn-iris")["status"]
    assert status["url"] == "http://sklearn-iris-ns1.example.com"
    assert status["address"]["url"] == "http://sklearn-iris-predictor.ns1.svc.cluster.local"
    assert status["components"]["predictor"]["url"] == (
        "http://sklearn-iris-predictor-ns1.example.com"
    )
    assert status["modelStatus"]["states"] == {
        "activeModelState": "Loaded", "targetModelState": "Loaded",
    }  # fmt: skip
    assert status["modelStatus"]["transitionStatus"] == "UpToDate"
    assert status["clusterServingRuntimeName"] == "ksrv-sklearn"
    assert status["deploymentMode"] == "Standard"


def _requests(emulator: EmulatorThread, method: str, path: str) -> int:
    """How many `method path` requests the emulator has answered so far."""
    return sum(
        1 for r in list(emulator.emu._requests)
        if str(r.method).upper().endswith(method) and r.url.path == path
    )  # fmt: skip


def _init_args(cluster: Cluster, name: str) -> list[str] | None:
    found = cluster.deployment(NS, name)
    if found is None:
        return None
    return list(found["spec"]["template"]["spec"]["initContainers"][0]["args"])


def test_new_storage_uri_patches_the_deployment(cluster: Cluster, kopf_runner: Any) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: _init_args(cluster, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    uri = "gs://kfserving-examples/models/sklearn/2.0/model"
    cluster.patch_isvc(NS, "sklearn-iris", {"spec": {"predictor": {"model": {"storageUri": uri}}}})
    wait_until(lambda: (_init_args(cluster, "sklearn-iris-predictor") or [""])[0] == uri,
               "the Deployment downloads the new model", TIMEOUT_S)  # fmt: skip
    deployment = cluster.deployment(NS, "sklearn-iris-predictor")
    assert deployment["metadata"]["generation"] == 2
    assert [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]] == [
        "storage-initializer"
    ]


def test_delete_removes_owned_objects_then_the_finalizer(
    cluster: Cluster, emulator: EmulatorThread, kopf_runner: Any
) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.service(NS, "sklearn-iris-predictor") is not None,
               "the predictor Service exists", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: "inferenceservice.finalizers" in
               cluster.isvc(NS, "sklearn-iris")["metadata"].get("finalizers", []),
               "the finalizer is on", TIMEOUT_S)  # fmt: skip
    cluster.delete_isvc(NS, "sklearn-iris")
    wait_until(lambda: cluster.isvc(NS, "sklearn-iris") is None,
               "the InferenceService is gone", TIMEOUT_S)  # fmt: skip
    assert cluster.deployment(NS, "sklearn-iris-predictor") is None
    assert cluster.service(NS, "sklearn-iris-predictor") is None
    # The operator deleted them itself (not only the emulator's ownerReference GC).
    base = f"/namespaces/{NS}"
    assert _requests(emulator, "DELETE", f"/apis/apps/v1{base}/deployments/sklearn-iris-predictor")
    assert _requests(emulator, "DELETE", f"/api/v1{base}/services/sklearn-iris-predictor")


def test_a_failed_create_is_retried_until_it_converges(
    cluster: Cluster, emulator: EmulatorThread, kopf_runner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/apis/apps/v1/namespaces/{NS}/deployments"
    emulator.emu[f"post {path}"][:1] << 500
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists after a retry", TIMEOUT_S)  # fmt: skip
    failures = [r.getMessage() for r in caplog.records if "failed temporarily" in r.getMessage()]
    assert failures == ["Handler 'reconcile' failed temporarily: 500: Internal Server Error"]
    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("status")
               == "True", "the InferenceService is Ready", TIMEOUT_S)  # fmt: skip


def test_an_invalid_service_is_reported_once_and_not_retried(
    cluster: Cluster, emulator: EmulatorThread, kopf_runner: Any
) -> None:
    bad = isvc("broken")
    bad["spec"]["predictor"]["minReplicas"] = -1
    cluster.create_isvc(NS, bad)
    unknown = isvc("no-runtime")
    unknown["spec"]["predictor"]["model"]["modelFormat"] = {"name": "cobol"}
    cluster.create_isvc(NS, unknown)
    wait_until(lambda: cluster.condition(NS, "broken", "Ready") is not None,
               "the invalid service has a status", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: cluster.condition(NS, "no-runtime", "PredictorReady") is not None,
               "the unplaceable service has a status", TIMEOUT_S)  # fmt: skip
    ready = cluster.condition(NS, "broken", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.predictor.minReplicas" in ready["message"]
    model = cluster.isvc(NS, "broken")["status"]["modelStatus"]
    assert model["transitionStatus"] == "InvalidSpec"
    assert model["lastFailureInfo"]["reason"] == "InvalidPredictorSpec"
    predictor = cluster.condition(NS, "no-runtime", "PredictorReady")
    assert predictor["status"] == "False" and predictor["reason"] == "NoSupportingRuntime"
    assert cluster.deployment(NS, "broken-predictor") is None
    assert cluster.deployment(NS, "no-runtime-predictor") is None
    # A later service is handled while the broken ones are left alone: no retry loop.
    status_path = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/broken/status"
    written = _requests(emulator, "PATCH", status_path)
    cluster.create_isvc(NS, isvc("later"))
    wait_until(lambda: cluster.deployment(NS, "later-predictor") is not None,
               "a later service is served", TIMEOUT_S)  # fmt: skip
    assert _requests(emulator, "PATCH", status_path) == written == 1


def test_knative_mode_makes_a_knative_service_and_follows_its_status(
    cluster: Cluster, kopf_runner: Any
) -> None:
    body = isvc()
    body["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Knative"}
    cluster.create_isvc(NS, body)
    wait_until(lambda: cluster.knative_service(NS, "sklearn-iris-predictor") is not None,
               "the predictor's Knative Service exists", TIMEOUT_S)  # fmt: skip
    assert cluster.deployment(NS, "sklearn-iris-predictor") is None
    cluster.mark_knative_service_ready(NS, "sklearn-iris-predictor", "sklearn-iris-predictor-00001")
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("status")
               == "True", "the InferenceService is Ready", TIMEOUT_S)  # fmt: skip
    status = cluster.isvc(NS, "sklearn-iris")["status"]
    assert status["deploymentMode"] == "Knative"
    assert status["url"] == "http://sklearn-iris.ns1.example.com"
    assert status["address"]["url"] == "http://sklearn-iris.ns1.svc.cluster.local"
    predictor = status["components"]["predictor"]
    assert predictor["latestReadyRevision"] == "sklearn-iris-predictor-00001"
    assert predictor["latestRolledoutRevision"] == "sklearn-iris-predictor-00001"
    assert predictor["url"] == "http://sklearn-iris-predictor.ns1.example.com"
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds["PredictorRouteReady"] == kinds["LatestDeploymentReady"] == "True"
    assert status["modelStatus"]["states"]["targetModelState"] == "Pending"  # no pods: as KServe


def test_a_runtime_applied_later_places_the_waiting_service(
    cluster: Cluster, kopf_runner: Any
) -> None:
    body = isvc("custom")
    body["spec"]["predictor"]["model"]["modelFormat"] = {"name": "cobol"}
    cluster.create_isvc(NS, body)
    wait_until(lambda: (cluster.condition(NS, "custom", "PredictorReady") or {}).get("reason")
               == "NoSupportingRuntime", "no runtime yet", TIMEOUT_S)  # fmt: skip
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
        "metadata": {"name": "cobol-runtime"},
        "spec": {
            "supportedModelFormats": [{"name": "cobol", "autoSelect": True}],
            "containers": [{"name": "kserve-container", "image": "example.com/cobol:1",
                            "args": ["--model_name={{.Name}}"]}],
        },
    }  # fmt: skip
    cluster.custom.create_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", NS, "servingruntimes", runtime
    )
    wait_until(lambda: cluster.deployment(NS, "custom-predictor") is not None,
               "the service is placed on the new runtime", TIMEOUT_S)  # fmt: skip
    container = cluster.deployment(NS, "custom-predictor")["spec"]["template"]["spec"][
        "containers"][0]  # fmt: skip
    assert container["image"] == "example.com/cobol:1"
    assert container["args"] == ["--model_name=custom"]
    wait_until(lambda: cluster.isvc(NS, "custom")["status"].get("servingRuntimeName")
               == "cobol-runtime", "the status names the runtime", TIMEOUT_S)  # fmt: skip


def _transformer() -> dict[str, Any]:
    return {"containers": [{"name": "kserve-container", "image": "example.com/transformer:1",
                            "args": ["--model_name", "sklearn-iris"]}]}  # fmt: skip


def test_objects_rendered_no_more_are_removed_and_so_are_fields(
    cluster: Cluster, kopf_runner: Any
) -> None:
    body = isvc()
    body["spec"]["transformer"] = _transformer()
    body["spec"]["predictor"]["nodeSelector"] = {"pool": "cpu"}
    cluster.create_isvc(NS, body)
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-transformer") is not None,
               "the transformer Deployment exists", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    pod = cluster.deployment(NS, "sklearn-iris-predictor")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "cpu"}
    cluster.patch_isvc(
        NS, "sklearn-iris", {"spec": {"transformer": None, "predictor": {"nodeSelector": None}}}
    )
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-transformer") is None
               and cluster.service(NS, "sklearn-iris-transformer") is None,
               "the transformer's Deployment and Service are gone", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: "nodeSelector" not in cluster.deployment(
        NS, "sklearn-iris-predictor")["spec"]["template"]["spec"],
        "the predictor's nodeSelector is removed", TIMEOUT_S)  # fmt: skip


def test_settings_come_from_the_configmap_in_the_operators_namespace(
    cluster: Cluster, kopf_runner: Any
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
              "data": {"ingress": '{"ingressDomain": "models.internal"'}}  # fmt: skip
    cluster.core.create_namespaced_config_map("kserve", config)
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Ready") or {}).get("reason")
               == "InvalidConfig", "a broken ConfigMap is reported", TIMEOUT_S)  # fmt: skip
    assert "inferenceservice-config" in cluster.condition(NS, "sklearn-iris", "Ready")["message"]
    assert cluster.deployment(NS, "sklearn-iris-predictor") is None
    # Fixed: the retry that follows picks it up without any change to the InferenceService.
    config["data"]["ingress"] = '{"ingressDomain": "models.internal"}'
    cluster.core.replace_namespaced_config_map("inferenceservice-config", "kserve", config)
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: (cluster.isvc(NS, "sklearn-iris")["status"].get("url")
                        == "http://sklearn-iris-ns1.models.internal"),
               "the URL uses the configured domain", TIMEOUT_S)  # fmt: skip


def test_a_failing_storage_initializer_shows_in_model_status(
    cluster: Cluster, kopf_runner: Any
) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    labels = cluster.deployment(NS, "sklearn-iris-predictor")["spec"]["template"]["metadata"][
        "labels"]  # fmt: skip
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "sklearn-iris-predictor-abc", "labels": labels},
           "spec": {"containers": [{"name": "kserve-container", "image": "x"}]}}  # fmt: skip
    cluster.core.create_namespaced_pod(NS, pod)
    cluster.core.patch_namespaced_pod_status("sklearn-iris-predictor-abc", NS, {"status": {
        "phase": "Pending",
        "initContainerStatuses": [{
            "name": "storage-initializer", "ready": False, "restartCount": 3, "image": "x",
            "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1,
                                         "message": "gs://kfserving-examples: no such bucket"}},
        }],
    }})  # fmt: skip

    def model_status() -> dict[str, Any]:
        return dict((cluster.isvc(NS, "sklearn-iris").get("status") or {}).get("modelStatus") or {})

    wait_until(lambda: model_status().get("transitionStatus") == "BlockedByFailedLoad",
               "the failed download is reported", TIMEOUT_S)  # fmt: skip
    assert model_status()["states"]["targetModelState"] == "FailedToLoad"
    assert model_status()["lastFailureInfo"] == {
        "reason": "ModelLoadFailed", "exitCode": 1,
        "message": "gs://kfserving-examples: no such bucket",
    }  # fmt: skip


def test_a_stopped_service_loses_its_workload(cluster: Cluster, kopf_runner: Any) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-predictor") is not None,
               "the predictor Deployment exists", TIMEOUT_S)  # fmt: skip
    cluster.patch_isvc(
        NS, "sklearn-iris", {"metadata": {"annotations": {"serving.kserve.io/stop": "true"}}}
    )
    wait_until(lambda: (cluster.condition(NS, "sklearn-iris", "Stopped") or {}).get("status")
               == "True", "the service is stopped", TIMEOUT_S)  # fmt: skip
    assert cluster.deployment(NS, "sklearn-iris-predictor") is None
    assert cluster.service(NS, "sklearn-iris-predictor") is None
    assert cluster.condition(NS, "sklearn-iris", "Ready")["reason"] == "Stopped"


def test_a_setting_the_cluster_does_not_carry_out_is_told_as_a_warning_event(
    cluster: Cluster, kopf_runner: Any
) -> None:
    body = isvc()
    body["metadata"]["annotations"] = {"serving.kserve.io/enable-auth": "true"}
    cluster.create_isvc(NS, body)

    def warnings() -> list[dict[str, Any]]:
        events = cluster.core.list_namespaced_event(NS).to_dict()["items"]
        return [e for e in events if e["involved_object"]["name"] == "sklearn-iris"]

    wait_until(lambda: warnings(), "a Warning Event on the InferenceService", TIMEOUT_S)
    (event,) = warnings()
    assert event["type"] == "Warning" and event["reason"] == "NotEnforced"
    assert event["involved_object"]["kind"] == "InferenceService"
    assert "serving.kserve.io/enable-auth" in event["message"]
    assert event["source"]["component"] == "ksrv-operator"
