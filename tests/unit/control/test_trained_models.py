"""Where a multi-model service's TrainedModels go and why not (pure: typed resources in,
placement out)."""

from __future__ import annotations

from typing import Any

from ksrv.api import resources
from ksrv.control import trained_models


def isvc(memory: str | None = "3Mi", storage_uri: str | None = None) -> Any:
    model: dict[str, Any] = {"modelFormat": {"name": "sklearn"}}
    if memory is not None:
        model["resources"] = {"requests": {"memory": memory}}
    if storage_uri is not None:
        model["storageUri"] = storage_uri
    return resources.load({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "mms", "namespace": "default"},
        "spec": {"predictor": {"model": model}},
    })  # fmt: skip


def tm(name: str, memory: str = "1Mi", framework: str = "sklearn") -> Any:
    return resources.load({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"inferenceService": "mms", "model": {
            "storageUri": "s3://bucket/m", "framework": framework, "memory": memory}},
    })  # fmt: skip


def test_models_that_each_fit_the_budget_are_all_placed_though_their_sum_does_not():
    # KServe places while the sum fits; ksrv's replicas unload the least recently used.
    where, refused = trained_models.placement(isvc("3Mi"), [tm(f"m{i}") for i in range(10)])
    assert where.is_multi_model and len(where.placed) == 10 and refused == {}


def test_a_model_larger_than_the_budget_is_not_placed():
    where, _ = trained_models.placement(isvc("3Mi"), [tm("small"), tm("huge", "4Mi")])
    assert where.placed == {"small"}
    message = trained_models.memory_problem(tm("huge", "4Mi"), 3 * 2**20)
    assert message.startswith("spec.model.memory: 4Mi")


def test_a_model_of_another_framework_is_refused_by_name():
    _, refused = trained_models.placement(isvc(), [tm("x", framework="xgboost")])
    assert refused["x"].startswith("spec.model.framework: 'xgboost'")


def test_without_memory_on_the_predictor_there_is_no_budget():
    assert trained_models.memory_budget(isvc(None)) is None
    where, _ = trained_models.placement(isvc(None), [tm("huge", "100Gi")])
    assert where.placed == {"huge"}


def test_a_service_with_a_storage_uri_is_not_multi_model():
    where, _ = trained_models.placement(isvc(storage_uri="s3://bucket/one"), [tm("m")])
    assert not where.is_multi_model


def test_the_models_json_path_is_per_namespace_and_service(tmp_path):
    path = trained_models.models_config_path(tmp_path, "team-a", "mms")
    assert path == tmp_path / "team-a" / "modelconfig-mms-0" / "models.json"
