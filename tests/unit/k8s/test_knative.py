"""Knative mode: the Knative Service of each component, checked against KServe's
ksvc_reconciler.go / SetAutoScalingAnnotations rules (expectations written from KServe's source)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from ksrv.k8s import knative as knative_module
from ksrv.k8s import render
from ksrv.k8s.config import ClusterConfig
from tests.k8s_support import SHARED, assert_valid

EXAMPLES = SHARED / "examples-kserve"
SKLEARN: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "iris", "namespace": "ml"},
    "spec": {
        "predictor": {
            "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}
        }
    },
}


def isvc(**changes: Any) -> dict[str, Any]:
    """SKLEARN with `metadata` / `predictor` / `spec` keys merged in."""
    document = copy.deepcopy(SKLEARN)
    document["metadata"].update(changes.pop("metadata", {}))
    document["spec"]["predictor"].update(changes.pop("predictor", {}))
    document["spec"].update(changes.pop("spec", {}))
    document.update(changes)
    return document


def knative(*documents: dict[str, Any], config: ClusterConfig | None = None) -> list[dict]:
    rendered = render.render_documents(documents, config or ClusterConfig(), "Knative")
    assert not rendered.problems
    assert_valid(rendered.objects)
    return rendered.objects


def ksvc(objects: list[dict], name: str = "iris-predictor") -> dict[str, Any]:
    return next(
        o for o in objects
        if o["apiVersion"] == "serving.knative.dev/v1" and o["metadata"]["name"] == name
    )  # fmt: skip


def revision_annotations(objects: list[dict], name: str = "iris-predictor") -> dict[str, str]:
    return ksvc(objects, name)["spec"]["template"]["metadata"]["annotations"]


def test_a_predictor_becomes_the_knative_service_isvc_predictor_with_kserves_labels():
    service = ksvc(knative(isvc(metadata={"labels": {"team": "a"}})))
    assert service["metadata"]["name"] == "iris-predictor"
    assert service["metadata"]["namespace"] == "ml"
    expected = {"team": "a", "serving.kserve.io/inferenceservice": "iris", "component": "predictor"}
    # Knative mode has no `app` label (KServe adds it for raw Deployments only).
    assert service["metadata"]["labels"] == expected
    assert service["spec"]["template"]["metadata"]["labels"] == expected


def test_default_annotations_are_kpa_and_min_scale_one_without_max_scale():
    annotations = revision_annotations(knative(isvc()))
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/min-scale"] == "1"
    assert "autoscaling.knative.dev/max-scale" not in annotations
    assert "autoscaling.knative.dev/target" not in annotations
    assert "autoscaling.knative.dev/metric" not in annotations


@pytest.mark.parametrize(
    ("predictor", "expected"),
    [
        ({"minReplicas": 0}, {"min-scale": "0"}),
        ({"minReplicas": 2, "maxReplicas": 5}, {"min-scale": "2", "max-scale": "5"}),
        ({"maxReplicas": 0}, {"min-scale": "1", "max-scale": None}),
        ({"scaleTarget": 10, "scaleMetric": "rps"}, {"target": "10", "metric": "rps"}),
        ({"scaleMetric": "concurrency"}, {"metric": "concurrency", "target": None}),
    ],
)
def test_replica_and_scale_fields_become_autoscaling_annotations(predictor, expected):
    annotations = revision_annotations(knative(isvc(predictor=predictor)))
    for key, value in expected.items():
        assert annotations.get(f"autoscaling.knative.dev/{key}") == value


def test_a_class_the_user_set_is_kept_and_other_knative_annotations_pass_through():
    annotations = revision_annotations(knative(isvc(metadata={"annotations": {
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/window": "30s",
        "autoscaling.knative.dev/initial-scale": "2",
    }})))  # fmt: skip
    assert annotations["autoscaling.knative.dev/class"] == "hpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/window"] == "30s"
    assert annotations["autoscaling.knative.dev/initial-scale"] == "2"


@pytest.mark.parametrize(("value", "kept"), [("2", True), ("0", False), ("two", False)])
def test_an_initial_scale_knative_would_refuse_is_dropped(value, kept):
    annotations = revision_annotations(
        knative(isvc(metadata={"annotations": {"autoscaling.knative.dev/initial-scale": value}}))
    )
    assert ("autoscaling.knative.dev/initial-scale" in annotations) is kept


def test_disallowed_annotations_are_dropped_and_min_max_come_from_the_replica_fields():
    annotations = revision_annotations(knative(isvc(
        metadata={"annotations": {
            "autoscaling.knative.dev/min-scale": "7",
            "autoscaling.knative.dev/max-scale": "9",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "modelFormat": "sklearn",
            "team": "a",
        }},
        predictor={"minReplicas": 3},
    )))  # fmt: skip
    assert annotations["autoscaling.knative.dev/min-scale"] == "3"
    assert "autoscaling.knative.dev/max-scale" not in annotations
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert "modelFormat" not in annotations
    assert annotations["team"] == "a"


def test_component_annotations_and_labels_win_over_the_inference_services():
    objects = knative(isvc(
        metadata={"annotations": {"a": "isvc", "b": "isvc"}, "labels": {"x": "isvc"}},
        predictor={"annotations": {"a": "predictor"}, "labels": {"x": "predictor"}},
    ))  # fmt: skip
    template = ksvc(objects)["spec"]["template"]["metadata"]
    assert (template["annotations"]["a"], template["annotations"]["b"]) == ("predictor", "isvc")
    assert template["labels"]["x"] == "predictor"


def test_the_runtimes_pod_annotations_are_overridden_by_the_inference_service():
    # ksrv's default runtime annotates its pods with prometheus.kserve.io/port = 8080.
    annotations = revision_annotations(
        knative(isvc(metadata={"annotations": {"prometheus.kserve.io/port": "9000"}}))
    )
    assert annotations["prometheus.kserve.io/port"] == "9000"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"


def test_rollout_duration_moves_from_the_revision_to_the_knative_service():
    service = ksvc(knative(isvc(metadata={"annotations": {
        "serving.knative.dev/rollout-duration": "380s"
    }})))  # fmt: skip
    assert service["metadata"]["annotations"] == {"serving.knative.dev/rollout-duration": "380s"}
    assert (
        "serving.knative.dev/rollout-duration"
        not in (service["spec"]["template"]["metadata"]["annotations"])
    )


def test_the_visibility_label_stays_on_the_knative_service_only():
    service = ksvc(knative(isvc(metadata={"labels": {
        "networking.knative.dev/visibility": "cluster-local"
    }})))  # fmt: skip
    assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert (
        "networking.knative.dev/visibility" not in service["spec"]["template"]["metadata"]["labels"]
    )


def test_timeout_sets_timeout_and_response_start_timeout_and_concurrency_passes_through():
    spec = ksvc(knative(isvc(predictor={"timeout": 120, "containerConcurrency": 4})))["spec"]
    revision = spec["template"]["spec"]
    assert revision["timeoutSeconds"] == 120
    assert revision["responseStartTimeoutSeconds"] == 120
    assert revision["containerConcurrency"] == 4


def test_without_timeout_knative_keeps_its_defaults():
    revision = ksvc(knative(isvc()))["spec"]["template"]["spec"]
    assert "timeoutSeconds" not in revision
    assert "responseStartTimeoutSeconds" not in revision
    assert "containerConcurrency" not in revision


def ports(objects: list[dict], name: str = "iris-predictor") -> list[dict[str, Any]]:
    containers = ksvc(objects, name)["spec"]["template"]["spec"]["containers"]
    return [port for container in containers for port in container.get("ports") or ()]


def test_a_model_server_gets_one_http_port():
    assert ports(knative(isvc())) == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]


def test_a_grpc_only_model_server_gets_its_grpc_port_named_h2c():
    model = {**SKLEARN["spec"]["predictor"]["model"], "protocolVersion": "grpc-v2"}
    assert ports(knative(isvc(predictor={"model": model}))) == [
        {"name": "h2c", "containerPort": 8081, "protocol": "TCP"}
    ]


def test_a_custom_container_with_two_ports_keeps_only_the_first():
    predictor = {
        "containers": [{
            "name": "kserve-container", "image": "example/server:1",
            "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"},
                      {"containerPort": 9000, "name": "grpc", "protocol": "TCP"}],
        }],
    }  # fmt: skip
    document = isvc()
    document["spec"]["predictor"] = predictor
    # "http" is not a name Knative accepts ('', h2c, http1): the port stays, unnamed.
    assert ports(knative(document)) == [{"containerPort": 8000, "protocol": "TCP"}]


def test_a_declared_h2c_port_is_kept_as_written():
    objects = knative(*yaml.safe_load_all(
        (EXAMPLES / "kserve__docs__samples__v1beta1__tensorflow__grpc.yaml").read_text()
    ))  # fmt: skip
    assert ports(objects, "flower-grpc-predictor") == [
        {"containerPort": 9000, "name": "h2c", "protocol": "TCP"}
    ]


def test_transformer_and_explainer_get_their_own_knative_services():
    transformer = {"containers": [{"name": "kserve-container", "image": "example/t:1"}]}
    explainer = {"containers": [{"name": "kserve-container", "image": "example/e:1"}]}
    objects = knative(isvc(spec={"transformer": transformer, "explainer": explainer}))
    for component in ("predictor", "transformer", "explainer"):
        service = ksvc(objects, f"iris-{component}")
        assert service["metadata"]["labels"]["component"] == component
    assert ports(objects, "iris-transformer") == [
        {"name": "http1", "containerPort": 8080, "protocol": "TCP"}
    ]


def test_the_knative_service_of_a_default_isvc_routes_all_traffic_to_the_latest_revision():
    assert ksvc(knative(isvc()))["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


HTTP = {"containerPort": 8080, "name": "http", "protocol": "TCP"}
GRPC = {"containerPort": 8081, "name": "grpc", "protocol": "TCP"}
MODEL_PORTS = {"http": 8080, "grpc": 8081}


@pytest.mark.parametrize(
    ("containers", "protocol", "expected"),
    [
        # A model server declaring both ports: HTTP keeps 8080, gRPC-only keeps 8081 as h2c.
        ([{"name": "kserve-container", "ports": [HTTP, GRPC]}], "v1",
         [[{"containerPort": 8080, "protocol": "TCP"}]]),
        ([{"name": "kserve-container", "ports": [HTTP, GRPC]}], "grpc-v2",
         [[{"containerPort": 8081, "name": "h2c", "protocol": "TCP"}]]),
        # Ports on two containers: one is kept, on the container that declared it.
        ([{"name": "kserve-container", "ports": [HTTP]},
          {"name": "sidecar", "ports": [{"containerPort": 9000}]}], "v2",
         [[{"containerPort": 8080, "protocol": "TCP"}], None]),
        ([{"name": "kserve-container"},
          {"name": "transformer-container", "ports": [{"containerPort": 8080, "name": "http1"}]}],
         "v1", [None, [{"containerPort": 8080, "name": "http1"}]]),
        # No ports: the plan's port for the protocol, on the first container.
        ([{"name": "kserve-container"}, {"name": "sidecar"}], "v2",
         [[{"containerPort": 8080, "protocol": "TCP"}], None]),
    ],
)  # fmt: skip
def test_exactly_one_port_survives(containers, protocol, expected):
    pod = knative_module.one_port({"containers": containers}, protocol, MODEL_PORTS)
    assert [c.get("ports") for c in pod["containers"]] == expected


def test_one_port_leaves_its_input_alone():
    pod = {"containers": [{"name": "kserve-container", "ports": [HTTP, GRPC]}]}
    knative_module.one_port(pod, "v1", MODEL_PORTS)
    assert pod["containers"][0]["ports"] == [HTTP, GRPC]
