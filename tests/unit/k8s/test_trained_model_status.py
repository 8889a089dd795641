"""TrainedModel placement and status (ksrv.k8s.trained_model_status), as tables."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel
from ksrv.k8s import trained_model_status as tms

GI = Decimal(2**30)


def _isvc(**predictor: Any) -> InferenceService:
    spec = predictor or {"containers": [{
        "name": "kserve-container", "image": "example.com/mms:1",
        "env": [{"name": "MULTI_MODEL_SERVER", "value": "true"}],
    }]}  # fmt: skip
    found = resources.load({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                            "metadata": {"name": "mms", "namespace": "ns"},
                            "spec": {"predictor": spec}})  # fmt: skip
    assert isinstance(found, InferenceService)
    return found


def _model(
    name: str, memory: str, created: str = "2026-01-01T00:00:00Z", **meta: Any
) -> TrainedModel:
    found = resources.load({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "TrainedModel",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, **meta},
        "spec": {"inferenceService": "mms",
                 "model": {"storageUri": f"gs://m/{name}", "framework": "sklearn",
                           "memory": memory}},
    })  # fmt: skip
    assert isinstance(found, TrainedModel)
    return found


@pytest.mark.parametrize(("text", "value"), [
    ("1Gi", GI), ("512Mi", Decimal(2**29)), ("1G", Decimal(10**9)), ("1e9", Decimal(10**9)),
    (1024, Decimal(1024)), ("100m", Decimal("0.1")), ("2k", Decimal(2000)), ("lots", None),
])  # fmt: skip
def test_quantities_read_as_kubernetes_writes_them(text: Any, value: Decimal | None) -> None:
    assert tms.quantity(text) == value


@pytest.mark.parametrize(("models", "limit", "placed"), [
    ([("a", "1Gi"), ("b", "1Gi")], GI * 2, {"a", "b"}),
    ([("a", "1Gi"), ("b", "1536Mi")], GI * 2, {"a"}),
    ([("b", "1536Mi"), ("a", "1Gi")], GI * 2, {"a"}),  # same creation time: by name
    ([("a", "3Gi"), ("b", "1Gi")], GI * 2, {"b"}),  # one too big does not block the rest
    ([("a", "1Gi")], None, set()),  # no memory limit: nothing fits (KServe compares with 0)
])  # fmt: skip
def test_models_are_placed_while_their_memory_fits_the_predictors_limit(
    models: list[tuple[str, str]], limit: Decimal | None, placed: set[str]
) -> None:
    where = tms.placement(_isvc(), [_model(n, m) for n, m in models], limit)
    assert where.placed == placed
    assert where.is_multi_model


def test_a_model_placed_before_keeps_its_place_over_an_older_one() -> None:
    labels = {tms.ALLOCATED_LABEL: "mms"}
    older = _model("a", "1536Mi", "2026-01-01T00:00:00Z")
    placed_before = _model("b", "1536Mi", "2026-01-02T00:00:00Z", labels=labels)
    assert tms.placement(_isvc(), [older, placed_before], GI * 2).placed == {"b"}


def test_a_model_being_deleted_is_neither_placed_nor_deployed() -> None:
    going = _model("a", "1Gi", deletionTimestamp="2026-01-03T00:00:00Z")
    where = tms.placement(_isvc(), [going, _model("b", "1536Mi")], GI * 2)
    assert where.placed == {"b"}
    assert [m.metadata.name for m in tms.deployed([going, _model("b", "1Gi")], where)] == ["b"]


def test_predictor_memory_comes_from_the_rendered_kserve_container() -> None:
    deployment = {"kind": "Deployment", "metadata": {"name": "mms-predictor"},
                  "spec": {"template": {"spec": {"containers": [
                      {"name": "agent", "resources": {"limits": {"memory": "1Gi"}}},
                      {"name": "kserve-container", "resources": {"limits": {"memory": "2Gi"}}},
                  ]}}}}  # fmt: skip
    assert tms.predictor_memory([deployment], _isvc()) == GI * 2
    assert tms.predictor_memory([], _isvc()) is None


READY_ISVC = {"conditions": [{"type": "Ready", "status": "True"}],
              "url": "http://mms-ns.example.com",
              "address": {"url": "http://mms-predictor.ns.svc.cluster.local"}}  # fmt: skip


@pytest.mark.parametrize(("isvc_status", "placed", "ready", "reason"), [
    (READY_ISVC, {"m"}, "True", None),
    ({"conditions": [{"type": "Ready", "status": "False"}]}, {"m"}, "False",
     "InferenceServiceNotReady"),
    (READY_ISVC, set(), "False", "MemoryResourceNotAvailable"),
    ({}, set(), "False", "MemoryResourceNotAvailable"),  # the last failing one, as KServe
])  # fmt: skip
def test_ready_is_the_three_conditions_together(
    isvc_status: dict[str, Any], placed: set[str], ready: str, reason: str | None
) -> None:
    where = tms.Placement(True, GI * 2, frozenset(placed))
    found = tms.model_status(_model("m", "1Gi"), _isvc(), isvc_status, where, {}, 0.0)
    by_type = {c["type"]: c for c in found["conditions"]}
    assert list(by_type) == [
        "InferenceServiceReady", "IsMMSPredictor", "MemoryResourceAvailable", "Ready"
    ]  # fmt: skip
    assert by_type["Ready"]["status"] == ready
    assert by_type["Ready"].get("reason") == reason


def test_urls_are_the_services_plus_the_models_predict_path() -> None:
    where = tms.Placement(True, GI * 2, frozenset({"m"}))
    found = tms.model_status(_model("m", "1Gi"), _isvc(), READY_ISVC, where, {}, 0.0)
    assert found["url"] == "http://mms-ns.example.com/v1/models/m:predict"
    assert found["address"] == {
        "url": "http://mms-predictor.ns.svc.cluster.local/v1/models/m:predict"
    }
    v2 = _isvc(
        containers=[
            {
                "name": "kserve-container",
                "image": "x",
                "env": [
                    {"name": "MULTI_MODEL_SERVER", "value": "true"},
                    {"name": "PROTOCOL", "value": "v2"},
                ],
            }
        ]
    )
    found = tms.model_status(_model("m", "1Gi"), v2, READY_ISVC, where, {}, 0.0)
    assert found["url"] == "http://mms-ns.example.com/v2/models/m/infer"
    assert "url" not in tms.model_status(_model("m", "1Gi"), v2, {}, where, {}, 0.0)


def test_a_single_model_predictor_places_no_model() -> None:
    single = _isvc(model={"modelFormat": {"name": "sklearn"}, "storageUri": "gs://m/one"})
    where = tms.placement(single, [_model("m", "1Gi")], GI * 2)
    assert not where.is_multi_model and tms.deployed([_model("m", "1Gi")], where) == []
    found = tms.model_status(_model("m", "1Gi"), single, READY_ISVC, where, {}, 0.0)
    mms = {c["type"]: c for c in found["conditions"]}["IsMMSPredictor"]
    assert (mms["status"], mms["reason"]) == ("False", "IsNotMMSPredictor")
