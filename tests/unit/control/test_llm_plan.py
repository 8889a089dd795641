"""An LLMInferenceService as the local platform runs it: the huggingface InferenceService it
translates to (LoRA flags, replica bounds, env, LocalLimitations), its presets, and its status
recast as KServe writes it."""

from __future__ import annotations

import copy

import pytest

from ksrv.control import llm_plan
from ksrv.errors import ResourceInvalid

SERVICE = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "LLMInferenceService",
    "metadata": {"name": "chat", "namespace": "team"},
    "spec": {"model": {"uri": "hf://org/model", "name": "org/model"}},
}


def service(**spec):
    document = copy.deepcopy(SERVICE)
    document["spec"].update(spec)
    return document


def test_a_service_becomes_a_huggingface_predictor_with_lora_flags_and_bounds():
    document = service(
        model={"uri": "hf://o/m", "lora": {"adapters": [{"name": "sql", "uri": "s3://b/sql"}]}},
        replicas=2,
        router={"scheduler": {}},
        template={"containers": [{"name": "main", "image": "vllm",
                                  "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}]}]},
    )  # fmt: skip
    isvc, notes = llm_plan.as_inference_service(document, lambda namespace, name: None)
    predictor = isvc.spec.predictor
    assert (predictor.min_replicas, predictor.max_replicas) == (2, 2)
    model = predictor.model
    assert model is not None and model.storage_uri == "hf://o/m"
    assert model.args == ["--model_name=chat", "--enable-lora", "--lora-modules", "sql=s3://b/sql",
                          "--max-lora-rank=64", "--max-loras=1", "--max-cpu-loras=1"]  # fmt: skip
    assert model.env_value("HF_HUB_OFFLINE") == "1"
    assert [note.split(":")[0] for note in notes] == ["spec.router.scheduler", "spec.template"]


def test_a_missing_base_ref_is_refused_by_name_and_a_stored_one_is_merged():
    document = service(baseRefs=[{"name": "gpu-profile"}])
    with pytest.raises(ResourceInvalid, match="no LLMInferenceServiceConfig 'gpu-profile'"):
        llm_plan.as_inference_service(document, lambda namespace, name: None)
    preset = {"spec": {"scaling": {"minReplicas": 1, "maxReplicas": 4}}}
    isvc, _ = llm_plan.as_inference_service(
        document, lambda namespace, name: preset if namespace == "kserve" else None
    )
    assert (isvc.spec.predictor.min_replicas, isvc.spec.predictor.max_replicas) == (1, 4)


def test_status_is_recast_as_kserve_writes_it_for_the_kind():
    status = {
        "observedGeneration": 2,
        "url": "http://chat.team.example.com",
        "address": {"url": "http://chat-predictor.team"},
        "components": {"predictor": {}},
        "conditions": [
            {"type": "PredictorReady", "status": "True"},
            {"type": "IngressReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    }
    recast = llm_plan.llm_status(status)
    assert [c["type"] for c in recast["conditions"]] == [
        "PresetsCombined", "MainWorkloadReady", "WorkloadsReady", "RouterReady", "Ready",
    ]  # fmt: skip
    assert recast["addresses"] == [{"url": "http://chat.team.example.com"}]
    assert "address" not in recast
