"""Knative mode's VirtualService and ExternalName Service for the top-level host, against the
cases of KServe's ingress_reconciler_test.go (TestCreateVirtualService), written out by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ksrv.k8s import render
from ksrv.k8s.config import ClusterConfig, Ingress, from_configmap
from tests.k8s_support import assert_valid

LOCAL_GATEWAY = "knative-serving/knative-local-gateway"
INGRESS_GATEWAY = "knative-serving/knative-ingress-gateway"
GATEWAY_SERVICE = "someIngressServiceName"
INTERNAL_REGEX = r"^my-model\.test\.svc\.cluster\.local(?::\d{1,5})?$"
EXTERNAL_REGEX = r"^my-model\.test\.example\.com(?::\d{1,5})?$"
ROUTE = [{"destination": {"host": GATEWAY_SERVICE, "port": {"number": 80}}, "weight": 100}]
CONFIG = ClusterConfig(ingress=Ingress(knative_local_gateway_service=GATEWAY_SERVICE))
CONTAINER = [{"name": "kserve-container", "image": "example/server:1"}]


def headers(backend: str) -> dict[str, Any]:
    return {"request": {"set": {
        "Host": f"{backend}.test.svc.cluster.local",
        "KServe-Isvc-Name": "my-model",
        "KServe-Isvc-Namespace": "test",
    }}}  # fmt: skip


def isvc(
    *,
    components: tuple[str, ...] = ("predictor",),
    status: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {c: {"containers": CONTAINER} for c in components}
    document: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "my-model",
            "namespace": "test",
            "annotations": {
                "test": "test",
                "kubectl.kubernetes.io/last-applied-configuration": "x",
            },
            "labels": {"test": "test", **(labels or {})},
        },
        "spec": spec,
    }
    if status is not None:
        document["status"] = status
    return document


def ready(*components: str, urls: dict[str, str] | None = None) -> dict[str, Any]:
    """An observed status: each component Ready, at Knative's URL for it."""
    return {
        "conditions": [{"type": f"{c.capitalize()}Ready", "status": "True"} for c in components],
        "components": {
            c: {"url": (urls or {}).get(c, f"http://my-model-{c}.test.example.com")}
            for c in components
        },
    }


def ingress(document: dict[str, Any], config: ClusterConfig = CONFIG) -> list[dict[str, Any]]:
    result = render.render_documents([document], config, "Knative")
    assert not result.problems
    assert_valid(result.objects)
    return [
        o for o in result.objects
        if o["kind"] == "VirtualService" or o["metadata"]["name"] == "my-model"
    ]  # fmt: skip


def virtual_service(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "VirtualService")


PREDICTOR_ROUTE = {
    "match": [
        {"authority": {"regex": INTERNAL_REGEX}, "gateways": [LOCAL_GATEWAY, "mesh"]},
        {"authority": {"regex": EXTERNAL_REGEX}, "gateways": [INGRESS_GATEWAY]},
    ],
    "route": ROUTE,
    "headers": headers("my-model-predictor"),
}


def test_found_predictor_status():
    service = virtual_service(ingress(isvc(status=ready("predictor"))))
    assert service == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {
            "name": "my-model",
            "namespace": "test",
            "labels": {"test": "test"},
            "annotations": {"test": "test"},
        },
        "spec": {
            "hosts": ["my-model.test.svc.cluster.local", "my-model.test.example.com"],
            "gateways": [LOCAL_GATEWAY, "mesh", INGRESS_GATEWAY],
            "http": [PREDICTOR_ROUTE],
        },
    }


def test_without_an_observed_status_the_steady_state_is_rendered_at_knatives_default_host():
    assert virtual_service(ingress(isvc())) == virtual_service(
        ingress(isvc(status=ready("predictor")))
    )


def test_a_cluster_local_predictor_url_makes_the_service_internal():
    status = ready(
        "predictor", urls={"predictor": "http://my-model-predictor.test.svc.cluster.local"}
    )
    spec = virtual_service(ingress(isvc(status=status)))["spec"]
    assert spec["hosts"] == ["my-model.test.svc.cluster.local"]
    assert spec["gateways"] == [LOCAL_GATEWAY, "mesh"]
    assert spec["http"][0]["match"] == [PREDICTOR_ROUTE["match"][0]]


def test_the_cluster_local_visibility_label_makes_the_service_internal():
    spec = virtual_service(
        ingress(isvc(labels={"networking.knative.dev/visibility": "cluster-local"}))
    )["spec"]
    assert spec["hosts"] == ["my-model.test.svc.cluster.local"]
    assert spec["gateways"] == [LOCAL_GATEWAY, "mesh"]


def test_with_a_transformer_the_top_level_host_goes_to_the_transformer():
    objects = ingress(isvc(components=("predictor", "transformer"),
                           status=ready("predictor", "transformer")))  # fmt: skip
    spec = virtual_service(objects)["spec"]
    assert spec["hosts"] == ["my-model.test.svc.cluster.local", "my-model.test.example.com"]
    assert spec["http"] == [{**PREDICTOR_ROUTE, "headers": headers("my-model-transformer")}]


def test_an_explainer_gets_the_explain_route_first():
    objects = ingress(isvc(components=("predictor", "explainer"),
                           status=ready("predictor", "explainer")))  # fmt: skip
    http = virtual_service(objects)["spec"]["http"]
    explain = {"regex": r"^/v1/models/[\w-]+:explain$"}
    assert http == [
        {
            "match": [{"uri": explain, **m} for m in PREDICTOR_ROUTE["match"]],
            "route": ROUTE,
            "headers": headers("my-model-explainer"),
        },
        PREDICTOR_ROUTE,
    ]


def test_no_virtual_service_until_every_component_is_ready_but_the_external_name_service_exists():
    status = ready("predictor", "explainer")
    status["conditions"][1]["status"] = "Unknown"
    objects = ingress(isvc(components=("predictor", "explainer"), status=status))
    assert [o["kind"] for o in objects] == ["Service"]
    status["conditions"] = [{"type": "PredictorReady", "status": "False"}]
    assert [o["kind"] for o in ingress(isvc(status=status))] == ["Service"]


def test_the_external_name_service_points_at_the_local_gateway_service():
    service = next(o for o in ingress(isvc()) if o["kind"] == "Service")
    assert service == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "my-model", "namespace": "test"},
        "spec": {
            "externalName": "knative-local-gateway.istio-system.svc.cluster.local",
            "type": "ExternalName",
            "sessionAffinity": "None",
        },
    }


def test_knative_local_gateway_service_defaults_to_the_local_gateway_service():
    route = virtual_service(ingress(isvc(), ClusterConfig()))["spec"]["http"][0]["route"]
    assert route[0]["destination"]["host"] == (
        "knative-local-gateway.istio-system.svc.cluster.local"
    )


def test_disable_istio_virtual_host_renders_neither():
    config = replace(CONFIG, ingress=replace(CONFIG.ingress, disable_istio_virtual_host=True))
    assert ingress(isvc(), config) == []


PATH_CONFIG = replace(
    CONFIG,
    ingress=replace(
        CONFIG.ingress,
        ingress_domain="my-domain.com",
        path_template="/serving/{{ .Namespace }}/{{ .Name }}",
    ),
)
DOMAIN_REGEX = r"^my-domain\.com(?::\d{1,5})?$"
PATH_ROUTE = {
    "match": [
        {"uri": {"prefix": "/serving/test/my-model/"}, "authority": {"regex": DOMAIN_REGEX},
         "gateways": [INGRESS_GATEWAY]},
        {"uri": {"exact": "/serving/test/my-model"}, "authority": {"regex": DOMAIN_REGEX},
         "gateways": [INGRESS_GATEWAY]},
    ],
    "rewrite": {"uri": "/"},
    "route": ROUTE,
    "headers": headers("my-model-predictor"),
}  # fmt: skip


def test_found_predictor_status_with_path_template():
    spec = virtual_service(ingress(isvc(status=ready("predictor")), PATH_CONFIG))["spec"]
    assert spec["hosts"] == [
        "my-model.test.svc.cluster.local", "my-model.test.example.com", "my-domain.com"
    ]  # fmt: skip
    assert spec["http"] == [PREDICTOR_ROUTE, PATH_ROUTE]


def test_found_predictor_status_with_the_additional_ingress_domains():
    config = replace(PATH_CONFIG, ingress=replace(
        PATH_CONFIG.ingress,
        additional_ingress_domains=("my-additional-domain.com", "my-second-additional-domain.com",
                                    "my-additional-domain.com"),
    ))  # fmt: skip
    spec = virtual_service(ingress(isvc(status=ready("predictor")), config))["spec"]
    assert spec["hosts"] == [
        "my-model.test.svc.cluster.local", "my-model.test.example.com", "my-domain.com",
        "my-model.test.my-additional-domain.com", "my-model.test.my-second-additional-domain.com",
    ]  # fmt: skip
    extra = [
        {"authority": {"regex": rf"^my-model\.test\.{d}\.com(?::\d{{1,5}})?$"},
         "gateways": [INGRESS_GATEWAY]}
        for d in (r"my-additional-domain", r"my-second-additional-domain")
    ]  # fmt: skip
    assert spec["http"] == [{**PREDICTOR_ROUTE, "match": PREDICTOR_ROUTE["match"] + extra},
                            PATH_ROUTE]  # fmt: skip


def test_an_explainer_with_a_path_template_gets_a_regex_rewrite_route():
    objects = ingress(isvc(components=("predictor", "explainer"),
                           status=ready("predictor", "explainer")), PATH_CONFIG)  # fmt: skip
    http = virtual_service(objects)["spec"]["http"]
    explain = r"/serving/test/my-model(/v1/models/[\w-]+:explain)$"
    assert http[2] == {
        "match": [{"uri": {"regex": explain}, "authority": {"regex": DOMAIN_REGEX},
                   "gateways": [INGRESS_GATEWAY]}],
        "rewrite": {"uriRegexRewrite": {"match": explain, "rewrite": "\\1"}},
        "route": ROUTE,
        "headers": headers("my-model-explainer"),
    }  # fmt: skip
    assert http[3] == PATH_ROUTE


def test_a_transformer_url_with_the_default_suffix_is_cut_as_kserve_cuts_it():
    status = ready(
        "predictor",
        "transformer",
        urls={"transformer": "http://my-model-transformer-default.test.example.com"},
    )
    objects = ingress(isvc(components=("predictor", "transformer"), status=status))
    assert virtual_service(objects)["spec"]["hosts"][1] == "my-model.test.example.com"


def test_the_configmap_names_the_gateways_and_the_knative_local_gateway_service():
    config = from_configmap({"ingress": json.dumps({
        "ingressGateway": "istio-system/public", "localGateway": "istio-system/local",
        "localGatewayService": "local.istio-system.svc.cluster.local",
        "knativeLocalGatewayService": "kn-local.istio-system.svc.cluster.local",
    })})  # fmt: skip
    objects = ingress(isvc(), config)
    spec = virtual_service(objects)["spec"]
    assert spec["gateways"] == ["istio-system/local", "mesh", "istio-system/public"]
    assert spec["http"][0]["route"][0]["destination"]["host"] == (
        "kn-local.istio-system.svc.cluster.local"
    )
    external = next(o for o in objects if o["kind"] == "Service")
    assert external["spec"]["externalName"] == "local.istio-system.svc.cluster.local"
