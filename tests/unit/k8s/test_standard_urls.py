"""The status URLs of a Standard-mode InferenceService (KServe's raw URL and address rules) and
the ConfigMap keys Standard mode reads."""

from __future__ import annotations

import json

from ksrv.k8s import config as k8s_config
from ksrv.k8s import urls
from ksrv.k8s.context import Readiness
from tests.k8s_standard import (
    custom,
    find,
    isvc,
    load,
    render_objects,
    with_ingress,
    with_workloads,
)

ROLLOUT = {"maxSurge": "1", "maxUnavailable": "0"}


def test_status_url_is_the_top_level_host_even_with_a_path_template():
    resource = load(isvc())
    assert urls.status_url(resource, k8s_config.Ingress()) == "http://foo-ns.example.com"
    ingress = with_ingress(
        url_scheme="https", path_template="/serving/{{ .Namespace }}/{{ .Name }}"
    )
    assert urls.status_url(resource, ingress.ingress) == "https://foo-ns.example.com"


def test_address_url_is_the_entry_components_cluster_local_host():
    assert urls.address_url(load(isvc())) == "http://foo-predictor.ns.svc.cluster.local"
    named = load(isvc(custom(("http", 8080), name="blue")))
    assert urls.address_url(named) == "http://foo-blue-predictor.ns.svc.cluster.local"
    transformed = load(isvc(transformer=custom(("http", 8080))))
    assert urls.address_url(transformed) == "http://foo-transformer.ns.svc.cluster.local"


def test_a_headless_entry_service_adds_its_http_target_port():
    document = isvc(custom(("grpc", 9000), ("http", 8000)))
    objects = render_objects(document, with_workloads(service_cluster_ip_none=True))
    service = find(objects, "Service", "foo-predictor")
    assert (
        urls.address_url(load(document), service)
        == "http://foo-predictor.ns.svc.cluster.local:8000"
    )
    objects = render_objects(
        isvc(custom(("grpc", 9000))), with_workloads(service_cluster_ip_none=True)
    )
    service = find(objects, "Service", "foo-predictor")
    assert (
        urls.address_url(load(document), service)
        == "http://foo-predictor.ns.svc.cluster.local:8080"
    )


def test_component_url_is_http_on_the_components_host():
    ingress = with_ingress(url_scheme="https").ingress
    url = urls.component_url(load(isvc()), "foo-predictor", ingress)
    assert url == "http://foo-predictor-ns.example.com"


def test_readiness_from_status_reads_kserves_conditions_and_canary_statuses():
    status = {
        "conditions": [
            {"type": "PredictorReady", "status": "True"},
            {"type": "TransformerReady", "status": "False"},
            {"type": "IngressReady", "status": "True"},
        ],
        "canaryStatuses": [{"name": "blue", "ready": True, "trafficPercent": 10},
                           {"name": "green", "ready": False, "trafficPercent": 5}],
    }  # fmt: skip
    readiness = Readiness.from_status(status)
    assert readiness == Readiness(frozenset({"predictor"}), frozenset({"blue"}))
    assert Readiness.from_status(None) == Readiness(frozenset(), frozenset())
    assert Readiness().is_component_ready("explainer") and Readiness().is_canary_ready("x")


def test_configmap_keys_for_standard_mode():
    data = {
        "deploy": json.dumps({
            "defaultDeploymentMode": "Standard",
            "deploymentRolloutStrategy": {"defaultRollout": ROLLOUT},
        }),
        "service": json.dumps({"serviceClusterIPNone": True}),
        "autoscaler": json.dumps({"scaleUpStabilizationWindowSeconds": "5",
                                  "scaleDownStabilizationWindowSeconds": "60"}),
        "inferenceService": json.dumps({"serviceAnnotationDisallowedList": ["secret"],
                                        "serviceLabelDisallowedList": ["hidden"]}),
    }  # fmt: skip
    config = k8s_config.from_configmap(data)
    assert config.workloads == k8s_config.Workloads(
        service_cluster_ip_none=True,
        max_surge="1",
        max_unavailable="0",
        scale_up_window_s=5,
        scale_down_window_s=60,
    )
    assert config.disallowed_annotations[-1] == "secret"
    assert "kubectl.kubernetes.io/last-applied-configuration" in config.disallowed_annotations
    assert config.disallowed_labels == ("networking.knative.dev/visibility", "hidden")


def test_the_default_rollout_applies_only_when_standard_is_the_default_mode():
    deploy = {
        "defaultDeploymentMode": "Serverless",
        "deploymentRolloutStrategy": {"defaultRollout": ROLLOUT},
    }
    config = k8s_config.from_configmap({"deploy": json.dumps(deploy)})
    assert (config.workloads.max_surge, config.workloads.max_unavailable) == (None, None)
    assert k8s_config.from_configmap({}).workloads == k8s_config.Workloads()
