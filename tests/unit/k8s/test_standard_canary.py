"""Standard-mode canaries (`spec.canary[]`) against KServe's predictor reconciler
(canaryReplicaCount, adjustStableMinReplicasForCanaries, buildCanaryPredictor); expected
values written from KServe's source."""

from __future__ import annotations

import pytest

from ksrv.k8s import canary
from ksrv.k8s.context import Readiness
from tests.k8s_standard import custom, find, isvc, load, names, render_objects
from tests.k8s_support import assert_valid


def with_canaries(stable_min: int | None, *canaries: dict, **stable) -> dict:
    predictor = custom(("http", 8080), **stable)
    if stable_min is not None:
        predictor["minReplicas"] = stable_min
    return isvc(predictor, canary=list(canaries))


def entry(name: str, percent: int, **predictor) -> dict:
    return {"trafficPercent": percent, "predictor": {"name": name, **predictor}}


@pytest.mark.parametrize(
    ("stable_min", "percent", "own_min", "expected"),
    [(3, 50, None, 2), (None, 10, None, 1), (4, 10, None, 1), (4, 50, 1, 1), (4, 50, 0, 0),
     (10, 0, None, 0)],
)  # fmt: skip
def test_canary_replicas_are_its_own_min_else_its_share_rounded_up(
    stable_min, percent, own_min, expected
):
    fields = {} if own_min is None else {"minReplicas": own_min}
    resource = load(with_canaries(stable_min, entry("blue", percent, **fields)))
    assert resource.spec.canary is not None
    assert canary.replicas(resource, resource.spec.canary[0]) == expected


@pytest.mark.parametrize(
    ("stable_min", "ready", "expected"),
    [(4, None, 1), (4, {"green"}, 2), (4, set(), 4), (2, None, 1), (4, {"blue"}, 3)],
)
def test_the_stable_min_shrinks_by_ready_canaries_never_below_one(stable_min, ready, expected):
    document = with_canaries(stable_min, entry("blue", 25), entry("green", 10, minReplicas=2))
    readiness = Readiness(canaries=None if ready is None else frozenset(ready))
    assert canary.stable_min_replicas(load(document), readiness) == expected


def test_overlay_merges_objects_and_replaces_values_and_lists_but_not_with_empty_ones():
    base = {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/v1"},
        "containers": [{"name": "a"}],
        "labels": {"x": "1"},
        "timeout": 30,
    }
    top = {"model": {"storageUri": "gs://b/v2"}, "containers": [{"name": "b"}],
           "labels": {"y": "2"}, "timeout": 0, "name": "blue"}  # fmt: skip
    assert canary.overlay(base, top) == {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/v2"},
        "containers": [{"name": "b"}],
        "labels": {"x": "1", "y": "2"},
        "timeout": 30,
        "name": "blue",
    }


def test_each_canary_is_a_deployment_service_and_fixed_size_hpa():
    image = {"name": "kserve-container", "image": "example.com/model:2"}
    blue = entry("blue", 50, containers=[image], annotations={"color": "blue"})
    document = with_canaries(4, blue, maxReplicas=8, scaleTarget=50)
    objects = render_objects(document)
    assert_valid(objects)
    assert names(objects) == [
        ("Deployment", "foo-predictor"), ("Service", "foo-predictor"),
        ("HorizontalPodAutoscaler", "foo-predictor"),
        ("Deployment", "foo-blue-predictor"), ("Service", "foo-blue-predictor"),
        ("HorizontalPodAutoscaler", "foo-blue-predictor"),
        ("Ingress", "foo"),
    ]  # fmt: skip
    deployment = find(objects, "Deployment", "foo-blue-predictor")
    assert deployment["metadata"]["labels"] == {
        "serving.kserve.io/inferenceservice": "foo",
        "component": "predictor",
        "app": "isvc.foo-blue-predictor",
    }
    assert deployment["metadata"]["annotations"]["color"] == "blue"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "example.com/model:2"
    # The canary runs ceil(4 x 50%) = 2 replicas: autoscaling stripped, so min = max = 2, CPU 80.
    hpa = find(objects, "HorizontalPodAutoscaler", "foo-blue-predictor")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 2)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    # The stable predictor gives the Ready canary's 2 replicas back.
    stable = find(objects, "HorizontalPodAutoscaler", "foo-predictor")["spec"]
    assert (stable["minReplicas"], stable["maxReplicas"]) == (2, 8)
    assert stable["metrics"][0]["resource"]["target"]["averageUtilization"] == 50


def test_a_canary_not_yet_ready_takes_nothing_from_the_stable_min():
    document = with_canaries(4, entry("blue", 50), maxReplicas=8)
    objects = render_objects(document, readiness=Readiness(canaries=frozenset()))
    assert find(objects, "HorizontalPodAutoscaler", "foo-predictor")["spec"]["minReplicas"] == 4
    assert find(objects, "Deployment", "foo-blue-predictor")


def test_with_autoscaler_class_none_the_canary_deployment_carries_its_replicas():
    annotations = {"serving.kserve.io/autoscalerClass": "none"}
    document = isvc(custom(("http", 8080), minReplicas=3), annotations=annotations,
                    canary=[entry("blue", 34)])  # fmt: skip
    objects = render_objects(document)
    assert find(objects, "Deployment", "foo-blue-predictor")["spec"]["replicas"] == 2
    assert find(objects, "Deployment", "foo-predictor")["spec"]["replicas"] == 1


def test_weights_give_the_stable_predictor_the_rest():
    document = with_canaries(1, entry("blue", 20), entry("green", 5))
    assert canary.weights(load(document), Readiness()) == [
        ("foo-predictor", 75), ("foo-blue-predictor", 20), ("foo-green-predictor", 5),
    ]  # fmt: skip


def test_kserves_canary_create_case_stable_three_canary_one():
    # KServe's canary_controller_test "Should create separate Deployments for stable and
    # canary": autoscalerClass none, stable min 4, canary v2 at 25%, canary Ready.
    model = {"modelFormat": {"name": "tensorflow"}, "storageUri": "s3://test/model-v1"}
    canary_model = {"modelFormat": {"name": "tensorflow"}, "storageUri": "s3://test/model-v2"}
    document = isvc(
        {"minReplicas": 4, "model": model},
        annotations={"serving.kserve.io/autoscalerClass": "none"},
        canary=[entry("v2", 25, model=canary_model)],
    )
    objects = render_objects(document)
    assert_valid(objects)
    stable = find(objects, "Deployment", "foo-predictor")
    candidate = find(objects, "Deployment", "foo-v2-predictor")
    assert (stable["spec"]["replicas"], candidate["spec"]["replicas"]) == (3, 1)
    uri = "internal.serving.kserve.io/storage-initializer-sourceuri"
    assert stable["spec"]["template"]["metadata"]["annotations"][uri] == "s3://test/model-v1"
    assert candidate["spec"]["template"]["metadata"]["annotations"][uri] == "s3://test/model-v2"
