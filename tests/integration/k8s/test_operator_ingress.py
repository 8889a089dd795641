"""Standard mode's networking and scaling end to end: the operator against the strict emulator
makes the HPA or KEDA ScaledObject with the workload, and the Ingress or Gateway API HTTPRoutes
only once the predictor is Ready (KServe's rule), with canary weights that follow the canaries'
readiness. The test plays the Deployment controller."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import wait_until
from tests.k8s_cluster import Cluster, isvc
from tests.k8s_support import assert_valid

NS = "ns1"
TIMEOUT_S = 30.0  # a bound for what must happen, not an expected time (the machine may be loaded)
GATEWAY_API = {"ingress": json.dumps({"enableGatewayApi": True})}
ROUTES = "gateway.networking.k8s.io/v1"


def _condition(cluster: Cluster, kind: str, name: str = "sklearn-iris") -> dict[str, Any]:
    return cluster.condition(NS, name, kind) or {}


def _route(cluster: Cluster, name: str) -> dict[str, Any] | None:
    return cluster.custom_object(ROUTES, "httproutes", NS, name)


def _weights(route: dict[str, Any] | None) -> dict[str, int]:
    if route is None:
        return {}
    refs = route["spec"]["rules"][-1]["backendRefs"]
    return {ref["name"]: ref.get("weight", 1) for ref in refs}


def test_the_ingress_appears_once_the_predictor_is_ready_with_an_hpa_from_the_start(
    cluster: Cluster, kopf_runner: Any
) -> None:
    cluster.create_isvc(NS, isvc())
    wait_until(lambda: cluster.builtin("autoscaling/v2", "HorizontalPodAutoscaler", NS,
                                       "sklearn-iris-predictor") is not None,
               "the HPA exists", TIMEOUT_S)  # fmt: skip
    hpa = cluster.builtin("autoscaling/v2", "HorizontalPodAutoscaler", NS, "sklearn-iris-predictor")
    assert hpa["spec"]["minReplicas"] == 1
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 80
    wait_until(lambda: _condition(cluster, "IngressReady").get("status") == "False",
               "the ingress waits for the predictor", TIMEOUT_S)  # fmt: skip
    assert cluster.builtin("networking.k8s.io/v1", "Ingress", NS, "sklearn-iris") is None

    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: _condition(cluster, "IngressReady").get("status") == "True",
               "IngressReady follows the predictor", TIMEOUT_S)  # fmt: skip
    ingress = cluster.builtin("networking.k8s.io/v1", "Ingress", NS, "sklearn-iris")
    assert ingress is not None
    assert_valid([{**ingress, "metadata": {"name": "sklearn-iris", "namespace": NS}}])
    hosts = {rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
             for rule in ingress["spec"]["rules"]}  # fmt: skip
    assert hosts == {
        "sklearn-iris-ns1.example.com": "sklearn-iris-predictor",
        "sklearn-iris-predictor-ns1.example.com": "sklearn-iris-predictor",
    }
    assert ingress["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    assert _condition(cluster, "Ready")["status"] == "True"


def test_gateway_api_routes_and_a_keda_scaled_object(cluster: Cluster, kopf_runner: Any) -> None:
    cluster.set_inference_config(GATEWAY_API)
    body = isvc()
    body["metadata"]["annotations"] = {"serving.kserve.io/autoscalerClass": "keda"}
    body["spec"]["predictor"]["minReplicas"] = 0
    body["spec"]["predictor"]["maxReplicas"] = 3
    cluster.create_isvc(NS, body)
    wait_until(lambda: cluster.custom_object("keda.sh/v1alpha1", "scaledobjects", NS,
                                             "sklearn-iris-predictor") is not None,
               "the ScaledObject exists", TIMEOUT_S)  # fmt: skip
    scaled = cluster.custom_object(
        "keda.sh/v1alpha1", "scaledobjects", NS, "sklearn-iris-predictor"
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == "sklearn-iris-predictor"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 3)
    assert (
        cluster.builtin("autoscaling/v2", "HorizontalPodAutoscaler", NS, "sklearn-iris-predictor")
        is None
    )
    assert _route(cluster, "sklearn-iris") is None

    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: _condition(cluster, "Ready").get("status") == "True",
               "the InferenceService is Ready", TIMEOUT_S)  # fmt: skip
    top, predictor = _route(cluster, "sklearn-iris"), _route(cluster, "sklearn-iris-predictor")
    assert top is not None and predictor is not None
    assert top["spec"]["hostnames"] == ["sklearn-iris-ns1.example.com"]
    assert predictor["spec"]["hostnames"] == ["sklearn-iris-predictor-ns1.example.com"]
    assert top["spec"]["parentRefs"][0]["name"] == "kserve-ingress-gateway"
    headers = top["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"]
    assert {"name": "KServe-Isvc-Name", "value": "sklearn-iris"} in headers
    assert cluster.builtin("networking.k8s.io/v1", "Ingress", NS, "sklearn-iris") is None


def test_canary_weights_follow_the_canarys_readiness(cluster: Cluster, kopf_runner: Any) -> None:
    cluster.set_inference_config(GATEWAY_API)
    body = isvc()
    body["spec"]["canary"] = [{"trafficPercent": 20, "predictor": {
        "name": "v2", "model": {"modelFormat": {"name": "sklearn"},
                                "storageUri": "gs://kfserving-examples/models/sklearn/2.0/model"}},
    }]  # fmt: skip
    cluster.create_isvc(NS, body)
    wait_until(lambda: cluster.deployment(NS, "sklearn-iris-v2-predictor") is not None,
               "the canary Deployment exists", TIMEOUT_S)  # fmt: skip
    canary = cluster.deployment(NS, "sklearn-iris-v2-predictor")
    init = canary["spec"]["template"]["spec"]["initContainers"][0]
    assert init["args"][0] == "gs://kfserving-examples/models/sklearn/2.0/model"

    cluster.mark_deployment_ready(NS, "sklearn-iris-predictor")
    wait_until(lambda: _condition(cluster, "Ready").get("status") == "True",
               "the InferenceService is Ready without its canary", TIMEOUT_S)  # fmt: skip
    assert _weights(_route(cluster, "sklearn-iris-predictor")) == {"sklearn-iris-predictor": 100}
    assert _condition(cluster, "CanaryPredictorReady")["status"] == "Unknown"

    cluster.mark_deployment_ready(NS, "sklearn-iris-v2-predictor")
    wait_until(lambda: _weights(_route(cluster, "sklearn-iris-predictor"))
               == {"sklearn-iris-predictor": 80, "sklearn-iris-v2-predictor": 20},
               "the Ready canary takes its share", TIMEOUT_S)  # fmt: skip
    wait_until(lambda: _condition(cluster, "CanaryPredictorReady").get("status") == "True",
               "the canary is reported Ready", TIMEOUT_S)  # fmt: skip
    assert _weights(_route(cluster, "sklearn-iris")) == {
        "sklearn-iris-predictor": 80, "sklearn-iris-v2-predictor": 20,
    }  # fmt: skip
    status = cluster.isvc(NS, "sklearn-iris")["status"]
    (entry,) = status["canaryStatuses"]
    assert (entry["name"], entry["ready"], entry["trafficPercent"]) == ("v2", True, 20)
    assert _condition(cluster, "CanaryPredictorReady")["reason"] == "AllCanariesReady"
