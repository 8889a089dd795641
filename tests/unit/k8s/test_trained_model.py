"""TrainedModels -> the ConfigMap modelconfig-{isvc}-0 (KServe's pkg/modelconfig and its
TrainedModel controller); the models.json text is KServe's configmap_test.go format."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.k8s import render, trained_model
from ksrv.k8s.config import ClusterConfig
from tests.k8s_support import SHARED, assert_valid

EXAMPLES = SHARED / "examples-kserve"


def model(name: str, isvc: str = "iris", namespace: str = "ml", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": name, "namespace": namespace, **extra},
        "spec": {
            "inferenceService": isvc,
            "model": {"storageUri": f"s3://bucket/{name}", "framework": "sklearn", "memory": "1G"},
        },
    }


def isvc(predictor: dict[str, Any], name: str = "iris", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ml", **metadata},
        "spec": {"predictor": predictor},
    }


def config_maps(*documents: dict[str, Any]) -> list[dict[str, Any]]:
    result = render.render_documents(documents, ClusterConfig(), "Standard")
    found = [o for o in result.objects if o["kind"] == "ConfigMap"]
    assert_valid(found)
    return found


def test_models_json_is_kserves_compact_list_of_model_name_and_spec():
    (config_map,) = config_maps(model("model2"), model("model1"))
    assert config_map == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "modelconfig-iris-0", "namespace": "ml"},
        "data": {"models.json": (
            '[{"modelName":"model1","modelSpec":{"storageUri":"s3://bucket/model1",'
            '"framework":"sklearn","memory":"1G"}},'
            '{"modelName":"model2","modelSpec":{"storageUri":"s3://bucket/model2",'
            '"framework":"sklearn","memory":"1G"}}]'
        )},
    }  # fmt: skip


def test_each_service_gets_its_own_config_map_with_only_its_models():
    found = config_maps(model("a", "iris"), model("b", "wine"), model("c", "iris", namespace="x"))
    names = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in found}
    assert sorted(names) == [("ml", "modelconfig-iris-0"), ("ml", "modelconfig-wine-0"),
                             ("x", "modelconfig-iris-0")]  # fmt: skip
    listed = json.loads(names["ml", "modelconfig-iris-0"]["data"]["models.json"])
    assert [entry["modelName"] for entry in listed] == ["a"]


def test_a_model_being_deleted_is_left_out():
    (config_map,) = config_maps(model("a"), model("b", deletionTimestamp="2026-01-01T00:00:00Z"))
    assert [e["modelName"] for e in json.loads(config_map["data"]["models.json"])] == ["a"]


def test_a_multi_model_service_without_models_gets_an_empty_list_and_its_labels():
    mms = isvc({"sklearn": {"protocolVersion": "v1"}}, labels={"team": "a"})
    (config_map,) = config_maps(mms)
    assert config_map["data"] == {"models.json": "[]"}
    assert config_map["metadata"]["labels"] == {"team": "a"}


def test_a_single_model_service_gets_no_config_map():
    single = isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}})
    assert config_maps(single) == []


@pytest.mark.parametrize(
    ("predictor", "expected"),
    [
        ({"sklearn": {"protocolVersion": "v1"}}, True),
        ({"model": {"modelFormat": {"name": "sklearn"}}}, True),
        ({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}, False),
        ({"model": {"modelFormat": {"name": "sklearn"}},
          "storageUris": [{"uri": "gs://b/m"}]}, False),
        ({"model": {"modelFormat": {"name": "huggingface"}}}, False),
        ({"huggingface": {"args": ["--model_id=x"]}}, False),
        ({"containers": [{"name": "c", "image": "c:1",
                          "env": [{"name": "MULTI_MODEL_SERVER", "value": "true"}]}]}, True),
        ({"containers": [{"name": "c", "image": "c:1"}]}, False),
    ],
)  # fmt: skip
def test_is_multi_model_follows_kserves_is_mms_predictor(predictor, expected):
    resource = resources.load(isvc(predictor))
    assert isinstance(resource, InferenceService)
    assert trained_model.is_multi_model(resource) is expected


def test_the_multimodelserving_examples_render_one_config_map_with_both_models():
    documents = [
        d
        for name in ("inferenceservice", "trainedmodels")
        for d in yaml.safe_load_all(
            (
                EXAMPLES / f"kserve__docs__samples__multimodelserving__sklearn__{name}.yaml"
            ).read_text()
        )
        if d
    ]
    (config_map,) = config_maps(*documents)
    assert config_map["metadata"] == {"name": "modelconfig-sklearn-iris-example-0",
                                      "namespace": "default"}  # fmt: skip
    listed = json.loads(config_map["data"]["models.json"])
    assert listed == [
        {"modelName": name, "modelSpec": {
            "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model",
            "framework": "sklearn", "memory": "256Mi"}}
        for name in ("model1-sklearn", "model2-sklearn")
    ]  # fmt: skip
