"""Standard mode's Deployment and Service against KServe's (raw deployment reconciler,
service reconciler and predictor/transformer object meta); expected values written from
KServe's source, not from ksrv's output."""

from __future__ import annotations

import pytest

from ksrv.errors import ResourceInvalid
from tests.k8s_standard import container, custom, find, isvc, names, render_objects, with_workloads
from tests.k8s_support import assert_valid

LABELS = {
    "team": "a",
    "shared": "component",
    "serving.kserve.io/inferenceservice": "foo",
    "component": "predictor",
    "app": "isvc.foo-predictor",
}
ANNOTATIONS = {"serving.kserve.io/deploymentMode": "Standard", "note": "isvc", "comp": "y"}
METADATA = {
    "name": "foo-predictor",
    "namespace": "ns",
    "labels": LABELS,
    "annotations": ANNOTATIONS,
}


def labelled() -> dict:
    predictor = custom(("http", 8080), labels={"shared": "component"}, annotations={"comp": "y"})
    return isvc(
        predictor,
        labels={"team": "a", "shared": "isvc"},
        annotations={"note": "isvc", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
    )


def test_deployment_has_kserves_name_labels_annotations_and_rolling_update():
    objects = render_objects(labelled())
    assert_valid(objects)
    deployment = find(objects, "Deployment", "foo-predictor")
    template = deployment["spec"].pop("template")
    assert deployment == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": METADATA,
        "spec": {
            "selector": {"matchLabels": {"app": "isvc.foo-predictor"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }
    assert template["metadata"] == {"labels": LABELS, "annotations": ANNOTATIONS}
    assert template["spec"]["containers"][0]["image"] == "example.com/model:1"


def test_service_publishes_the_first_port_on_80():
    objects = render_objects(labelled())
    assert find(objects, "Service", "foo-predictor") == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": METADATA,
        "spec": {
            "selector": {"app": "isvc.foo-predictor"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def test_extra_ports_map_one_to_one_and_grpc_h2c_names_get_app_protocol():
    predictor = custom(("http", 8080), ("grpc", 8081), ("h2c-alt", 9000), ("metrics", 9090))
    service = find(render_objects(isvc(predictor)), "Service", "foo-predictor")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": 8081, "protocol": "TCP",
         "appProtocol": "kubernetes.io/h2c"},
        {"name": "h2c-alt", "port": 9000, "targetPort": 9000, "protocol": "TCP",
         "appProtocol": "kubernetes.io/h2c"},
        {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
    ]  # fmt: skip
    assert_valid([service])


def test_a_grpc_first_port_is_published_on_80_with_app_protocol():
    service = find(render_objects(isvc(custom(("grpc", 9000)))), "Service", "foo-predictor")
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 80, "targetPort": 9000, "protocol": "TCP",
         "appProtocol": "kubernetes.io/h2c"},
    ]  # fmt: skip


def test_a_container_without_ports_is_reached_on_8080():
    # ksrv declares the port a custom container serves on (KServe declares none and names the
    # Service port after the component); the Service targets it.
    service = find(render_objects(isvc(custom())), "Service", "foo-predictor")
    assert service["spec"]["ports"] == [
        {"name": "http1", "port": 80, "targetPort": 8080, "protocol": "TCP"}
    ]


def test_an_unnamed_first_port_keeps_no_name():
    service = find(render_objects(isvc(custom((None, 5000)))), "Service", "foo-predictor")
    assert service["spec"]["ports"] == [{"port": 80, "targetPort": 5000, "protocol": "TCP"}]
    assert_valid([service])


def test_the_collocated_transformer_container_is_the_one_published():
    predictor = {
        "containers": [
            container(("http", 8080)),
            container(("http", 8000), name="transformer-container"),
        ]
    }
    service = find(render_objects(isvc(predictor)), "Service", "foo-predictor")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}
    ]


def test_the_service_is_headless_when_the_config_says_so():
    objects = render_objects(isvc(), with_workloads(service_cluster_ip_none=True))
    service = find(objects, "Service", "foo-predictor")
    assert service["spec"]["clusterIP"] == "None"
    assert_valid([service])


def test_model_server_service_follows_the_pods_container_ports():
    document = isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}})
    objects = render_objects(document)
    assert_valid(objects)
    pod = find(objects, "Deployment", "foo-predictor")["spec"]["template"]["spec"]
    ports = pod["containers"][0].get("ports") or [{"containerPort": 8080}]
    service = find(objects, "Service", "foo-predictor")
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == ports[0]["containerPort"]
    deployment = find(objects, "Deployment", "foo-predictor")
    annotations = deployment["metadata"]["annotations"]
    assert annotations["internal.serving.kserve.io/storage-initializer-sourceuri"] == "gs://b/m"


def test_replicas_are_set_only_for_autoscaler_class_none():
    annotations = {"serving.kserve.io/autoscalerClass": "none"}
    objects = render_objects(isvc(custom(("http", 8080), minReplicas=3), annotations=annotations))
    assert find(objects, "Deployment", "foo-predictor")["spec"]["replicas"] == 3
    assert names(objects) == [("Deployment", "foo-predictor"), ("Service", "foo-predictor"),
                              ("Ingress", "foo")]  # fmt: skip
    for kind in ("hpa", "external", "keda"):
        annotations = {"serving.kserve.io/autoscalerClass": kind}
        document = isvc(custom(("http", 8080), minReplicas=3), annotations=annotations)
        deployment = find(render_objects(document), "Deployment", "foo-predictor")
        assert "replicas" not in deployment["spec"], kind


def test_a_components_own_annotation_chooses_its_autoscaler_class():
    annotations = {"serving.kserve.io/autoscalerClass": "none"}
    document = isvc(custom(("http", 8080), annotations=annotations))
    objects = render_objects(document)
    assert find(objects, "Deployment", "foo-predictor")["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_a_deployment_strategy_replaces_kserves_rolling_update():
    strategy = {"type": "Recreate"}
    document = isvc(custom(("http", 8080), deploymentStrategy=strategy))
    deployment = find(render_objects(document), "Deployment", "foo-predictor")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "revisionHistoryLimit" not in deployment["spec"]
    assert_valid([deployment])


def test_the_configured_default_rollout_sets_surge_and_unavailability():
    config = with_workloads(max_surge="1", max_unavailable="0")
    deployment = find(render_objects(isvc(), config), "Deployment", "foo-predictor")
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "0", "maxSurge": "1"},
    }


def test_transformer_and_explainer_get_their_own_workloads():
    document = isvc(transformer=custom(("http", 8080)), explainer=custom(("http", 8080)))
    objects = render_objects(document)
    assert_valid(objects)
    assert names(objects) == [
        ("Deployment", "foo-predictor"), ("Service", "foo-predictor"),
        ("HorizontalPodAutoscaler", "foo-predictor"),
        ("Deployment", "foo-transformer"), ("Service", "foo-transformer"),
        ("HorizontalPodAutoscaler", "foo-transformer"),
        ("Deployment", "foo-explainer"), ("Service", "foo-explainer"),
        ("HorizontalPodAutoscaler", "foo-explainer"),
        ("Ingress", "foo"),
    ]  # fmt: skip
    transformer = find(objects, "Deployment", "foo-transformer")
    assert transformer["metadata"]["labels"] == {
        "serving.kserve.io/inferenceservice": "foo",
        "component": "transformer",
        "app": "isvc.foo-transformer",
    }


def test_a_named_predictor_is_foo_name_predictor():
    objects = render_objects(isvc(custom(("http", 8080), name="blue")))
    deployment = find(objects, "Deployment", "foo-blue-predictor")
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "isvc.foo-blue-predictor"}}
    assert find(objects, "Service", "foo-blue-predictor")["spec"]["selector"] == {
        "app": "isvc.foo-blue-predictor"
    }


def test_a_stopped_inference_service_renders_nothing():
    document = isvc(annotations={"serving.kserve.io/stop": "true"})
    assert render_objects(document) == []


def test_an_unknown_autoscaler_class_is_an_error_naming_the_annotation():
    annotations = {"serving.kserve.io/autoscalerClass": "kpa"}
    document = isvc(custom(("http", 8080), annotations=annotations))
    with pytest.raises(ResourceInvalid, match=r"serving\.kserve\.io/autoscalerClass: 'kpa'"):
        render_objects(document)
