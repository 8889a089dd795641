"""Standard mode's HPA and KEDA ScaledObject against KServe's hpa and keda reconcilers (expected
shapes written from KServe's source)."""

from __future__ import annotations

import pytest

from ksrv.errors import ResourceInvalid
from tests.k8s_standard import custom, find, isvc, render_objects, with_workloads
from tests.k8s_support import assert_valid

KEDA = {"serving.kserve.io/autoscalerClass": "keda"}


def metadata(annotations: dict | None = None) -> dict:
    labels = {
        "serving.kserve.io/inferenceservice": "foo",
        "component": "predictor",
        "app": "isvc.foo-predictor",
    }
    annotations = {**(annotations or {}), "serving.kserve.io/deploymentMode": "Standard"}
    return {
        "name": "foo-predictor",
        "namespace": "ns",
        "labels": labels,
        "annotations": annotations,
    }


def cpu(utilization: int) -> dict:
    target = {"type": "Utilization", "averageUtilization": utilization}
    return {"type": "Resource", "resource": {"name": "cpu", "target": target}}


def hpa_spec(**fields) -> dict:
    document = isvc(custom(("http", 8080), **fields))
    hpa = find(render_objects(document), "HorizontalPodAutoscaler", "foo-predictor")
    assert_valid([hpa])
    return hpa["spec"]


def test_hpa_defaults_to_cpu_80_and_one_replica():
    document = isvc()
    hpa = find(render_objects(document), "HorizontalPodAutoscaler", "foo-predictor")
    assert hpa == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "foo-predictor",
            },
            "minReplicas": 1,
            "maxReplicas": 1,
            "metrics": [cpu(80)],
            "behavior": {},
        },
    }
    assert_valid([hpa])


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 0, (1, 1)), (2, 0, (2, 2)), (2, 5, (2, 5)), (1, 10, (1, 10))],
)
def test_hpa_min_is_at_least_one_and_max_at_least_min(low, high, expected):
    spec = hpa_spec(minReplicas=low, maxReplicas=high)
    assert (spec["minReplicas"], spec["maxReplicas"]) == expected


def test_hpa_scale_target_sets_cpu_utilization():
    assert hpa_spec(scaleMetric="cpu", scaleTarget=50)["metrics"] == [cpu(50)]


def test_hpa_memory_metric_needs_a_target():
    memory = {"type": "Utilization", "averageUtilization": 70}
    assert hpa_spec(scaleMetric="memory", scaleTarget=70)["metrics"] == [
        {"type": "Resource", "resource": {"name": "memory", "target": memory}}
    ]
    assert "metrics" not in hpa_spec(scaleMetric="memory")


def test_hpa_autoscaling_metrics_win_over_scale_metric():
    memory = {"type": "AverageValue", "averageValue": "1Gi"}
    metrics = [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
        {"type": "Resource", "resource": {"name": "memory", "target": memory}},
    ]
    spec = hpa_spec(autoScaling={"metrics": metrics})
    assert spec["metrics"] == [
        cpu(80),
        {"type": "Resource", "resource": {"name": "memory", "target": memory}},
    ]


def test_hpa_memory_metric_without_a_usable_target_is_an_error_naming_it():
    metrics = [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Value"}}}]
    with pytest.raises(ResourceInvalid, match=r"autoScaling.metrics\[0\].resource.target"):
        hpa_spec(autoScaling={"metrics": metrics})


@pytest.mark.parametrize("kind", ["none", "external"])
def test_none_and_external_make_no_scaler(kind):
    annotations = {"serving.kserve.io/autoscalerClass": kind}
    objects = render_objects(isvc(annotations=annotations))
    assert {o["kind"] for o in objects} == {"Deployment", "Service", "Ingress"}


def scaled_object(document, config=None) -> dict:
    found = find(render_objects(document, config), "ScaledObject", "foo-predictor")
    assert_valid([found])
    return found


def test_keda_scaled_object_may_scale_to_zero():
    memory = {"type": "AverageValue", "averageValue": "200Mi"}
    metrics = [cpu(60), {"type": "Resource", "resource": {"name": "memory", "target": memory}}]
    predictor = custom(
        ("http", 8080), minReplicas=0, maxReplicas=4, autoScaling={"metrics": metrics}
    )
    found = scaled_object(isvc(predictor, annotations=KEDA))
    assert found == {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(KEDA),
        "spec": {
            "scaleTargetRef": {"name": "foo-predictor"},
            "triggers": [
                {"type": "cpu", "metadata": {"value": "60"}, "metricType": "Utilization"},
                {"type": "memory", "metadata": {"value": "200Mi"}, "metricType": "AverageValue"},
            ],
            "minReplicaCount": 0,
            "maxReplicaCount": 4,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": 300},
                        "scaleUp": {"stabilizationWindowSeconds": 0},
                    }
                }
            },
        },
    }


def test_keda_prometheus_trigger_from_an_external_metric():
    external = {
        "metric": {
            "backend": "prometheus",
            "serverAddress": "http://prometheus:9090",
            "query": "sum(rate(requests[1m]))",
            "namespace": "monitoring",
        },
        "target": {"type": "Value", "value": "50"},
        "authenticationRef": {"authModes": "bearer", "authenticationRef": {"name": "prom-auth"}},
    }
    predictor = custom(
        ("http", 8080), autoScaling={"metrics": [{"type": "External", "external": external}]}
    )
    found = scaled_object(isvc(predictor, annotations=KEDA))
    assert found["spec"]["triggers"] == [
        {
            "type": "prometheus",
            "metadata": {
                "serverAddress": "http://prometheus:9090",
                "query": "sum(rate(requests[1m]))",
                "threshold": "50",
                "namespace": "monitoring",
                "authModes": "bearer",
            },
            "authenticationRef": {"name": "prom-auth"},
        }
    ]
    assert (found["spec"]["minReplicaCount"], found["spec"]["maxReplicaCount"]) == (1, 1)


def test_keda_windows_come_from_behavior_else_the_config():
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    predictor = custom(("http", 8080), autoScaling={"metrics": [cpu(70)], "behavior": behavior})
    config = with_workloads(scale_up_window_s=None, scale_down_window_s=120)
    found = scaled_object(isvc(predictor, annotations=KEDA), config)
    assert found["spec"]["advanced"] == {
        "horizontalPodAutoscalerConfig": {
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
        }
    }
    config = with_workloads(scale_up_window_s=None, scale_down_window_s=None)
    assert (
        "advanced"
        not in scaled_object(isvc(custom(("http", 8080)), annotations=KEDA), config)["spec"]
    )


def test_keda_without_metrics_scales_on_cpu_80():
    found = scaled_object(isvc(annotations=KEDA))
    assert found["spec"]["triggers"] == [
        {"type": "cpu", "metadata": {"value": "80"}, "metricType": "Utilization"}
    ]


def test_keda_pod_metrics_are_refused_with_the_field_named():
    podmetric = {
        "metric": {"backend": "opentelemetry", "query": "q"},
        "target": {"type": "Value", "value": "1"},
    }
    predictor = custom(
        ("http", 8080), autoScaling={"metrics": [{"type": "PodMetric", "podmetric": podmetric}]}
    )
    with pytest.raises(ResourceInvalid, match=r"autoScaling.metrics\[0\].type"):
        render_objects(isvc(predictor, annotations=KEDA))


def test_kserves_llm_autoscaling_guide_renders_a_prometheus_trigger_on_vllms_gauge():
    """The guide's huggingface service (the one the local platform scales on its replicas'
    /metrics, docs/llm.md) becomes KServe's ScaledObject: a Prometheus trigger on the query."""
    from tests.platform_support import example

    name = (
        "website__docs__model-serving__generative-inference__autoscaling__autoscaling__block02.yaml"
    )
    document = example(name)[0]
    document["metadata"]["namespace"] = "ns"
    scaled = find(render_objects(document), "ScaledObject", "huggingface-qwen-predictor")
    assert_valid([scaled])
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 5)
    assert scaled["spec"]["triggers"] == [{
        "type": "prometheus",
        "metadata": {
            "serverAddress": "http://prometheus.istio-system.svc.cluster.local:9090",
            "query": "vllm:num_requests_running",
            "threshold": "2",
        },
    }]  # fmt: skip
