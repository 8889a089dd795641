"""The bar for the LLM kinds: every KServe example that mentions LLMInferenceService applies
(strict loading, as `kubectl apply` validates against the CRD) and each service translates into
the huggingface InferenceService the local platform plans, with its presets from the examples'
configs; the one that the CRD refuses is listed with the reason.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from ksrv.api import default_runtimes, resources
from ksrv.api.llm_inference_service import LLMInferenceService
from ksrv.control import llm_plan
from ksrv.control import plan as planning
from ksrv.errors import ResourceInvalid

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "examples-kserve"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"no examples under {EXAMPLES}")

# file -> why applying it fails, as the CRD schema says (INDEX.md: FAIL).
REFUSED = {
    "kserve__docs__samples__llmisvc__e2e-gpt-oss__llmisvc_config_default.yaml": (
        "spec.router.scheduler.pool.spec.selector: required"
    ),
}


@functools.cache
def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        text = path.read_text()
        if "LLMInferenceService" not in text:
            continue
        for document in yaml.safe_load_all(text):
            if isinstance(document, dict) and str(document.get("kind")).startswith("LLM"):
                found.append((path.name, document))
    return found


def test_there_are_the_38_example_files():
    # 39 files mention the kind: these 38 manifests and INDEX.md.
    assert len({name for name, _ in _documents()}) == 38


@pytest.mark.parametrize(("name", "document"), _documents(), ids=lambda v: str(v)[:60])
def test_each_example_applies_or_is_refused_with_the_crds_reason(name, document):
    document = copy.deepcopy(document)
    if name in REFUSED:
        with pytest.raises(ResourceInvalid, match=REFUSED[name]):
            resources.load(document, is_strict=True)
        return
    assert resources.load(document, is_strict=True).kind == document["kind"]


@functools.cache
def _configs() -> dict[tuple[str, str], dict]:
    configs = {}
    for name, document in _documents():
        if document["kind"] == llm_plan.CONFIG and name not in REFUSED:
            namespace = document["metadata"].get("namespace") or "default"
            configs[(namespace, document["metadata"]["name"])] = document
    return configs


SERVICES = [(n, d) for n, d in _documents() if d["kind"] == llm_plan.LLMISVC]


@pytest.mark.parametrize(("name", "document"), SERVICES, ids=[n[:60] for n, _ in SERVICES])
def test_each_service_is_planned_as_a_huggingface_predictor(name, document):
    configs = _configs()
    refs = [ref["name"] for ref in document["spec"].get("baseRefs") or ()]
    namespace = document["metadata"].get("namespace") or "default"
    if any({(namespace, ref), ("kserve", ref)}.isdisjoint(configs) for ref in refs):
        # The example names a preset of its own that no example defines: the service's status
        # says which (ReadyFalse, InvalidSpec) until it is applied.
        with pytest.raises(ResourceInvalid, match="no LLMInferenceServiceConfig"):
            llm_plan.as_inference_service(document, lambda ns, config: configs.get((ns, config)))
        return
    isvc, notes = llm_plan.as_inference_service(
        document, lambda ns, config: configs.get((ns, config))
    )
    predictor = planning.desired_state(isvc, default_runtimes.default_runtimes())
    server = predictor.components["predictor"].workload
    assert isinstance(server, planning.ModelServer), predictor.components["predictor"].error
    assert server.model_format == "huggingface" and server.args[0].startswith("--model_name=")
    llm = resources.load(document)
    assert isinstance(llm, LLMInferenceService)
    adapters = llm.spec.model.lora.adapters if llm.spec.model and llm.spec.model.lora else []
    assert ("--enable-lora" in server.args) == bool(adapters)
    if "prefill" in document["spec"]:
        assert any(note.startswith("spec.prefill:") for note in notes)
