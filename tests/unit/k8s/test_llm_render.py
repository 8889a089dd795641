"""LLMInferenceService on Kubernetes: every KServe LLM example renders, through the huggingface
InferenceService it translates into, to schema-valid Standard-mode objects that carry KServe's
LLM labels, with warnings naming what KServe's LLM controller would make besides; presets are
merged from the LLMInferenceServiceConfigs beside it, as locally."""

from __future__ import annotations

import copy

import pytest

from ksrv.api import default_runtimes
from ksrv.errors import ResourceInvalid
from ksrv.k8s import llm, render
from ksrv.k8s.config import ClusterConfig
from tests.k8s_standard import find, names
from tests.k8s_support import assert_valid
from tests.unit.control.test_llm_examples import SERVICES, _configs

PRESET = {
    "apiVersion": "serving.kserve.io/v1alpha2",
    "kind": "LLMInferenceServiceConfig",
    "metadata": {"name": "tiny-model", "namespace": "ns"},
    "spec": {
        "model": {"uri": "hf://org/tiny"},
        "template": {"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}]}]},
    },
}


def service(**spec) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "LLMInferenceService",
        "metadata": {"name": "chat", "namespace": "ns"},
        "spec": {"baseRefs": [{"name": "tiny-model"}], **spec},
    }


def rendered(*documents: dict) -> render.Rendered:
    return render.render_documents([copy.deepcopy(d) for d in documents], ClusterConfig())


@pytest.mark.parametrize(("name", "document"), SERVICES, ids=[n[:60] for n, _ in SERVICES])
def test_each_kserve_example_renders_valid_standard_objects(name, document):
    configs = _configs()
    lookup = lambda ns, config: configs.get((ns, config))  # noqa: E731
    runtimes = default_runtimes.default_runtimes()
    try:
        isvc, result = render.render_llm_service(document, lookup, runtimes, ClusterConfig())
    except ResourceInvalid as exc:  # a preset of its own that no example defines
        assert "no LLMInferenceServiceConfig" in str(exc)
        return
    assert result.problems == []
    assert_valid(result.objects)
    service_name = document["metadata"]["name"]
    deployment = find(result.objects, "Deployment", f"{service_name}-predictor")
    labels = deployment["metadata"]["labels"]
    assert labels[llm.PART_OF_LABEL] == "llminferenceservice"
    assert labels[llm.NAME_LABEL] == service_name
    assert any("named as an InferenceService's" in w for w in result.warnings)
    if "prefill" in document["spec"]:
        assert any(w.startswith("spec.prefill:") for w in result.warnings)
    assert isvc.metadata.annotations["serving.kserve.io/deploymentMode"] == "Standard"


def test_fixed_replicas_are_the_deployments_and_presets_are_merged():
    result = rendered(PRESET, service(replicas=3))
    assert result.problems == []
    assert_valid(result.objects)
    assert ("HorizontalPodAutoscaler", "chat-predictor") not in names(result.objects)
    deployment = find(result.objects, "Deployment", "chat-predictor")
    assert deployment["spec"]["replicas"] == 3
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["args"][0] == "hf://org/tiny"  # the preset's model
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "A", "value": "1"} in main["env"]  # the preset's main container env
    assert main["args"][-1] == "--model-name=chat"  # the served name, after the "--"


def test_scaling_bounds_become_an_hpa_and_what_is_not_rendered_is_said():
    scaling = {"minReplicas": 2, "maxReplicas": 4, "wva": {"hpa": {}}}
    router = {"scheduler": {}, "route": {}, "gateway": {}}
    result = rendered(PRESET, service(scaling=scaling, router=router, worker={"containers": []}))
    hpa = find(result.objects, "HorizontalPodAutoscaler", "chat-predictor")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    said = "\n".join(result.warnings)
    for path in ("spec.router.scheduler", "spec.router.route", "spec.router.gateway",
                 "spec.worker", "spec.scaling"):  # fmt: skip
        assert f"chat: {path}:" in said
    assert "InferencePool" in said and "LeaderWorkerSet" in said


def test_a_missing_preset_or_an_unknown_field_is_a_problem_naming_it():
    assert "no LLMInferenceServiceConfig 'tiny-model'" in rendered(service()).problems[0]
    bad = service(replica=2)
    problems = rendered(PRESET, bad).problems
    assert problems and "spec.replica" in problems[0] and "replicas" in problems[0]
