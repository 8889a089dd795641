"""LLMInferenceService / LLMInferenceServiceConfig: both CRD versions, the CRD's and KServe's
rules, and presets merged as KServe merges them."""

from __future__ import annotations

import copy

import pytest

from ksrv.api import resources
from ksrv.api.llm_inference_service import merged_spec
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


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2"])
def test_both_served_versions_load_strictly(version):
    document = {**service(), "apiVersion": f"serving.kserve.io/{version}"}
    assert resources.load(document, is_strict=True).kind == "LLMInferenceService"
    assert resources.kind_for("llmisvc") == "LLMInferenceService"


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (service(replicas=2, scaling={"minReplicas": 1}), "spec", "mutually exclusive"),
        (service(model={"name": "x"}), "spec.model.uri", "required"),
        (service(model={"uri": "ftp://x/y"}), "spec.model.uri", "must start with"),
        ({**SERVICE, "spec": {}}, "spec.model", "required"),
        (service(model={"uri": "hf://o/m", "lora": {"adapters": [{"uri": "hf://o/a"}]}}),
         "spec.model.lora.adapters[0].name", "required"),
        (service(model={"uri": "hf://o/m", "lora": {"adapters": [
            {"name": "a", "uri": "hf://o/a"}, {"name": "a", "uri": "hf://o/b"}]}}),
         "spec.model.lora.adapters[1].name", "names two adapters"),
        (service(model={"uri": "hf://o/m", "lora": {"maxRank": 0}}), "spec.model.lora.maxRank",
         "greater than or equal to 1"),
        (service(replica=1), "spec.replica", "did you mean replicas"),
        # v1alpha2's kvCacheOffloading is not a field of v1alpha1
        (service(kvCacheOffloading={}), "spec.kvCacheOffloading", "unknown field"),
    ],
)  # fmt: skip
def test_invalid_services_name_the_field(document, path, message):
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(document, is_strict=True)
    assert any(p == path and message in m for p, m in caught.value.field_errors), caught.value


def test_presets_merge_in_order_then_the_service_containers_and_env_by_name():
    first = {"model": {"uri": "hf://o/base"}, "replicas": 3,
             "template": {"containers": [{"name": "main", "image": "vllm",
                                          "env": [{"name": "A", "value": "1"}]}]}}  # fmt: skip
    second = {"template": {"containers": [{"name": "main", "args": ["--x"]}]}}
    own = {"baseRefs": [{"name": "p"}], "model": {"name": "served"},
           "template": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]},
                                       {"name": "sidecar"}]}}  # fmt: skip
    merged = merged_spec(own, [first, second])
    assert "baseRefs" not in merged and merged["replicas"] == 3
    assert merged["model"] == {"uri": "hf://o/base", "name": "served"}
    main, sidecar = merged["template"]["containers"]
    assert (main["image"], main["args"], sidecar["name"]) == ("vllm", ["--x"], "sidecar")
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
