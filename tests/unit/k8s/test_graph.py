"""InferenceGraph -> the router's objects, against KServe's inferencegraph controller
(raw_ig.go, knative_reconciler.go, GetPredictorEndpoint); expectations written from its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ksrv.k8s import render
from ksrv.k8s.config import ClusterConfig, from_configmap
from tests.k8s_support import SHARED, assert_valid

EXAMPLES = SHARED / "examples-kserve"
GRAPH_EXAMPLES = sorted(
    path for path in EXAMPLES.glob("*.yaml")
    if ("graph__" in path.name or "inferencegraph__overview__block0" in path.name)
    and "overview__block01" not in path.name  # a template with placeholders, not a graph
)  # fmt: skip


def graph(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "chain", "namespace": "ml", **metadata},
        "spec": spec or {
            "nodes": {"root": {"routerType": "Sequence",
                               "steps": [{"serviceUrl": "http://a.ml/v1/models/a:predict"}]}}
        },
    }  # fmt: skip


def isvc(name: str, predictor: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"predictor": predictor, **extra.pop("spec", {})},
        **extra,
    }


SKLEARN = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}


def rendered(
    *documents: dict[str, Any], mode: str = "Standard", config: ClusterConfig | None = None
) -> list[dict[str, Any]]:
    result = render.render_documents(documents, config or ClusterConfig(), mode)
    assert not result.problems
    assert_valid(result.objects)
    return result.objects


def router(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == "chain")


def container(objects: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    return router(objects, kind)["spec"]["template"]["spec"]["containers"][0]


def graph_json(objects: list[dict[str, Any]], kind: str = "Deployment") -> str:
    args = container(objects, kind)["args"]
    assert args[0] == "--graph-json"
    return args[1]


def test_standard_mode_makes_a_deployment_service_and_hpa_named_as_the_graph():
    objects = rendered(graph(labels={"team": "a"}))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "chain"), ("Service", "chain"), ("HorizontalPodAutoscaler", "chain"),
    ]  # fmt: skip
    labels = {"team": "a", "serving.kserve.io/inferencegraph": "chain", "app": "isvc.chain"}
    deployment, service, hpa = objects
    assert deployment["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "isvc.chain"}}
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert service["spec"] == {
        "selector": {"app": "isvc.chain"},
        "ports": [{"name": "chain", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "chain"
    }  # fmt: skip


def test_the_router_container_runs_ksrv_router_with_kserves_probe_and_security_context():
    config = ClusterConfig()
    found = container(rendered(graph()))
    assert found["name"] == "chain"
    assert found["image"] == config.images.router
    assert found["imagePullPolicy"] == "IfNotPresent"
    assert found["command"] == ["ksrv", "router"]
    assert found["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": 8080, "scheme": "HTTP"},
        "initialDelaySeconds": 5, "timeoutSeconds": 2, "periodSeconds": 5,
        "successThreshold": 1, "failureThreshold": 3,
    }  # fmt: skip
    assert found["securityContext"] == {
        "privileged": False, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
    }  # fmt: skip
    # KServe's router config defaults when the graph sets no resources.
    assert found["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "100Mi"}
    }  # fmt: skip
    assert "env" not in found


def test_pod_fields_of_the_graph_pass_through():
    spec = graph()["spec"] | {
        "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}},
        "nodeSelector": {"pool": "routers"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "serviceAccountName": "router-sa",
        "nodeName": "node-1",
    }  # fmt: skip
    pod = router(rendered(graph(spec)))["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == spec["resources"]
    for key in ("nodeSelector", "tolerations", "affinity", "serviceAccountName", "nodeName"):
        assert pod[key] == spec[key]
    assert pod["automountServiceAccountToken"] is False


def test_the_graph_json_is_the_spec_as_go_writes_it_with_service_urls_resolved():
    sequence = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "sklearn-iris"},
        {"data": "$request", "serviceName": "xgboost-iris"},
    ]}}}  # fmt: skip
    recorded = {"status": {"address": {"url": "http://sklearn-iris.ml.svc.cluster.local"}}}
    objects = rendered(
        graph(sequence), isvc("sklearn-iris", SKLEARN, **recorded), isvc("xgboost-iris", SKLEARN)
    )
    assert graph_json(objects) == (
        '{"nodes":{"root":{"routerType":"Sequence","steps":['
        '{"serviceName":"sklearn-iris",'
        '"serviceUrl":"http://sklearn-iris.ml.svc.cluster.local/v1/models/sklearn-iris:predict"},'
        '{"serviceName":"xgboost-iris",'
        '"serviceUrl":"http://xgboost-iris-predictor.ml.svc.cluster.local'
        '/v1/models/xgboost-iris:predict","data":"$request"}]}},"resources":{}}'
    )


def test_go_escapes_html_characters_and_keeps_field_order():
    switch = {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"condition": "instances.#(intval>10)", "serviceUrl": "http://a/?x=1&y=2",
         "name": "big", "dependency": "Hard"},
    ]}}, "minReplicas": 2, "timeout": 30}  # fmt: skip
    assert graph_json(rendered(graph(switch))) == (
        '{"nodes":{"root":{"routerType":"Switch","steps":[{"name":"big",'
        '"serviceUrl":"http://a/?x=1\\u0026y=2","condition":"instances.#(intval\\u003e10)",'
        '"dependency":"Hard"}]}},"resources":{},"timeout":30,"minReplicas":2}'
    )


@pytest.mark.parametrize(
    ("predictor", "extra", "mode", "url"),
    [
        (SKLEARN, {}, "Standard", "http://m-predictor.ml.svc.cluster.local/v1/models/m:predict"),
        (SKLEARN, {}, "Knative", "http://m.ml.svc.cluster.local/v1/models/m:predict"),
        ({"model": {**SKLEARN["model"], "protocolVersion": "v2"}}, {}, "Knative",
         "http://m.ml.svc.cluster.local/v2/models/m/infer"),
        ({"model": {**SKLEARN["model"], "protocolVersion": "grpc-v2"}}, {}, "Knative",
         "http://m.ml.svc.cluster.local"),
        ({"model": {**SKLEARN["model"], "args": ["--model_name=iris"]}}, {}, "Standard",
         "http://m-predictor.ml.svc.cluster.local/v1/models/iris:predict"),
        ({"model": {**SKLEARN["model"], "env": [{"name": "MLSERVER_MODEL_NAME", "value": "x"}]}},
         {}, "Standard", "http://m-predictor.ml.svc.cluster.local/v1/models/x:predict"),
        ({"containers": [{"name": "kserve-container", "image": "c:1",
                          "args": ["--model_name", "custom"],
                          "env": [{"name": "PROTOCOL", "value": "v2"}]}]}, {}, "Standard",
         "http://m-predictor.ml.svc.cluster.local/v2/models/custom/infer"),
        (SKLEARN, {"spec": {"transformer": {"containers": [
            {"name": "kserve-container", "image": "t:1", "args": ["--model_name=t"]}]}}},
         "Standard", "http://m-transformer.ml.svc.cluster.local/v1/models/t:predict"),
        (SKLEARN, {"status": {"address": {"url": "http://elsewhere.ml.svc.cluster.local"}}},
         "Standard", "http://elsewhere.ml.svc.cluster.local/v1/models/m:predict"),
    ],
)  # fmt: skip
def test_a_service_name_resolves_as_kserves_get_predictor_endpoint(predictor, extra, mode, url):
    one = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}}
    objects = rendered(graph(one), isvc("m", predictor, **extra), mode=mode)
    kind = "Service" if mode == "Knative" else "Deployment"
    steps = json.loads(graph_json(objects, kind))["nodes"]["root"]["steps"]
    assert steps == [{"serviceName": "m", "serviceUrl": url}]


def test_a_service_not_among_the_documents_resolves_to_its_cluster_local_predictor():
    one = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "far"}]}}}
    steps = json.loads(graph_json(rendered(graph(one))))["nodes"]["root"]["steps"]
    assert (
        steps[0]["serviceUrl"] == "http://far-predictor.ml.svc.cluster.local/v1/models/far:predict"
    )


@pytest.mark.parametrize(
    ("fields", "minimum", "maximum"),
    [({}, 1, 1), ({"minReplicas": 0}, 1, 1), ({"minReplicas": 2}, 2, 2),
     ({"minReplicas": 2, "maxReplicas": 5}, 2, 5), ({"maxReplicas": 3}, 1, 3)],
)  # fmt: skip
def test_the_hpa_bounds_follow_kserves_create_hpa(fields, minimum, maximum):
    hpa = router(rendered(graph(graph()["spec"] | fields)), "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (minimum, maximum)


@pytest.mark.parametrize(
    ("fields", "metrics"),
    [
        ({}, [("cpu", 80)]),
        ({"scaleTarget": 60}, [("cpu", 60)]),
        ({"scaleMetric": "memory", "scaleTarget": 70}, [("memory", 70)]),
        ({"scaleMetric": "memory"}, []),
        ({"scaleMetric": "concurrency", "scaleTarget": 5}, []),
    ],
)
def test_the_hpa_metric_follows_scale_metric_and_target(fields, metrics):
    hpa = router(rendered(graph(graph()["spec"] | fields)), "HorizontalPodAutoscaler")
    found = [
        (m["resource"]["name"], m["resource"]["target"]["averageUtilization"])
        for m in hpa["spec"].get("metrics", [])
    ]
    assert found == metrics


def test_autoscaler_class_none_sets_replicas_and_makes_no_hpa():
    document = graph(graph()["spec"] | {"minReplicas": 3},
                     annotations={"serving.kserve.io/autoscalerClass": "none"})  # fmt: skip
    objects = rendered(document)
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]
    assert objects[0]["spec"]["replicas"] == 3


def test_keda_for_a_graph_is_reported_not_rendered():
    document = graph(annotations={"serving.kserve.io/autoscalerClass": "keda"})
    result = render.render_documents([document], ClusterConfig(), "Standard")
    assert result.objects == []
    assert "keda" in result.problems[0] and result.problems[0].startswith("chain: ")


def test_knative_mode_makes_one_knative_service_named_as_the_graph():
    spec = graph()["spec"] | {"minReplicas": 0, "maxReplicas": 4, "scaleTarget": 10,
                              "scaleMetric": "rps", "timeout": 30}  # fmt: skip
    objects = rendered(graph(spec, labels={"team": "a"}), mode="Knative")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("Service", "chain")]
    service = objects[0]
    assert service["apiVersion"] == "serving.knative.dev/v1"
    assert service["metadata"]["labels"] == {"team": "a"}
    template = service["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "team": "a", "serving.kserve.io/inferencegraph": "chain",
        "serving.kserve.io/kind": "InferenceGraph",
    }  # fmt: skip
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/target": "10",
        "autoscaling.knative.dev/metric": "rps",
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": "4",
    }
    assert template["spec"]["timeoutSeconds"] == 30
    assert "name" not in template["spec"]["containers"][0]
    assert "traffic" not in service["spec"]


def test_the_deployment_mode_annotation_beats_the_default():
    document = graph(annotations={"serving.kserve.io/deploymentMode": "Serverless"})
    assert [o["kind"] for o in rendered(document, mode="Standard")] == ["Service"]


def test_the_router_section_of_the_configmap_sets_resources_pulls_and_propagated_headers():
    config = from_configmap({"router": json.dumps({
        "image": "kserve/router:latest", "cpuRequest": "200m", "cpuLimit": "2",
        "memoryRequest": "200Mi", "memoryLimit": "2Gi", "imagePullPolicy": "Always",
        "imagePullSecrets": ["regcred"], "headers": {"propagate": ["Authorization", "X-Id"]},
    })})  # fmt: skip
    objects = rendered(graph(), config=config)
    found = container(objects)
    assert found["image"] == ClusterConfig().images.router  # ksrv runs its own router
    assert found["imagePullPolicy"] == "Always"
    assert found["resources"] == {
        "limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "200m", "memory": "200Mi"}
    }  # fmt: skip
    assert found["env"] == [{"name": "PROPAGATE_HEADERS", "value": "Authorization,X-Id"}]
    pod = router(objects)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize("path", GRAPH_EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_every_graph_example_renders_valid_router_objects(path: Path, mode: str):
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    objects = rendered(*documents, mode=mode)
    for document in documents:
        if document["kind"] == "InferenceGraph":
            name = document["metadata"]["name"]
            found = {o["kind"] for o in objects if o["metadata"]["name"] == name}
            assert found == ({"Service"} if mode == "Knative" else
                             {"Deployment", "Service", "HorizontalPodAutoscaler"})  # fmt: skip


def test_the_router_listens_on_the_pod_and_takes_the_step_timeouts_annotation():
    assert container(rendered(graph()))["args"][2:] == ["--host=0.0.0.0"]
    timed = graph(annotations={"ksrv.dev/step-timeouts": '{"*": 10}'})
    assert container(rendered(timed))["args"][2:] == [
        "--host=0.0.0.0", "--step-timeouts", '{"*": 10}'
    ]  # fmt: skip
