"""LLMInferenceService -> Kubernetes objects, through the InferenceService renderer.

ksrv serves an LLMInferenceService with its huggingface runtime (`control.llm_plan`: the spec
merged over its presets, then translated into the InferenceService that asks for the same
model, name, adapters, replicas, env and resources). On a cluster that InferenceService is
rendered in Standard mode, as KServe's LLM controller always makes Deployments: Deployment,
Service, Ingress or HTTPRoute; fixed `replicas` is carried by the Deployment (no scaler),
`scaling` by an HPA between its bounds. The objects carry KServe's LLM labels
(`app.kubernetes.io/name`, `app.kubernetes.io/part-of: llminferenceservice`), so the operator
finds them. What KServe's LLM controller would make and this does not (the llm-d scheduler and
its InferencePool, prefill/decode workloads, LeaderWorkerSets, the vLLM container...) is said
in warnings (`cluster_warnings`), as `unenforced` does for InferenceServices; `render` renders
it. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.llm_inference_service import MAIN_CONTAINER, merged_spec
from ksrv.control import llm_plan
from ksrv.k8s.config import STANDARD

NAME_LABEL: Final = "app.kubernetes.io/name"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
PART_OF: Final = "llminferenceservice"
DEPLOYMENT_MODE: Final = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS: Final = "serving.kserve.io/autoscalerClass"
Document = dict[str, Any]

# What KServe's LLM controller does with each field that the rendered objects leave out.
_NOT_RENDERED: Final = {
    "prefill": "KServe's LLM controller would run a separate prefill workload and llm-d's "
    "routing sidecar (prefill/decode disaggregation); one Deployment serves both phases here",
    "worker": "KServe's LLM controller would run a LeaderWorkerSet of multi-node workers; "
    "not rendered: one Deployment serves",
    "parallelism": "tensor/pipeline/data/expert parallelism is vLLM's; ksrv's huggingface "
    "runtime serves each replica with one process",
    "router.scheduler": "llm-d's scheduler (the endpoint picker Deployment and Service) and "
    "its InferencePool are not rendered; the Service balances between the pods",
    "router.gateway": "no Gateway is rendered or referred to; the InferenceService's ingress "
    "(Ingress, or an HTTPRoute with ingress.enableGatewayApi) routes",
    "router.route": "KServe's HTTPRoute to the InferencePool is not rendered; the "
    "InferenceService's ingress routes by host",
    "router.ingress": "KServe's Ingress for the LLM workload is not rendered; the "
    "InferenceService's is",
    "kvCacheOffloading": "vLLM's KV-cache offloading (LMCache) is not configured",
    "tracing": "vLLM's OpenTelemetry tracing is not configured",
    "storageInitializer": "the storage initializer is the InferenceService's (KServe's "
    "storageInitializer settings for LLMs are not read)",
    "model.confidential": "confidential computing is not rendered",
}


def as_inference_service(document: Document, lookup: llm_plan.Lookup) -> InferenceService:
    """The InferenceService rendered for `document` on a cluster: `llm_plan`'s translation, in
    Standard mode, with KServe's LLM labels.

    Raises:
        ResourceInvalid: the document is invalid, a baseRef is missing, or there is no model.
    """
    isvc, _ = llm_plan.as_inference_service(document, lookup)
    name = isvc.metadata.name
    body = isvc.to_dict()
    metadata = body["metadata"]
    metadata["labels"] = {**metadata.get("labels", {}), NAME_LABEL: name, PART_OF_LABEL: PART_OF}
    annotations = {**metadata.get("annotations", {}), DEPLOYMENT_MODE: STANDARD}
    if not merged(document, lookup).get("scaling"):
        annotations[AUTOSCALER_CLASS] = "none"  # the Deployment carries `replicas`
    metadata["annotations"] = annotations
    model = body["spec"]["predictor"]["model"]
    if "env" in model:  # KServe's LLM templates are its controller's (`templated_env`)
        model["env"] = [var for var in model["env"] if not _is_templated(var)]
    found = resources.load(body)
    assert isinstance(found, InferenceService)
    return found


def templated_env(spec: Document) -> list[str]:
    """The main container's env vars whose value is one of KServe's LLM controller templates
    (`{{ ChildName .ObjectMeta.Name ... }}`): they name objects only that controller makes."""
    containers = (spec.get("template") or {}).get("containers") or ()
    main: Document = next((c for c in containers if c.get("name") == MAIN_CONTAINER), {})
    return [var.get("name", "") for var in main.get("env") or () if _is_templated(var)]


def _is_templated(var: Document) -> bool:
    return "{{" in str(var.get("value") or "")


def merged(document: Document, lookup: llm_plan.Lookup) -> Document:
    """The document's spec over its presets, as KServe merges them."""
    return merged_spec(document.get("spec") or {}, llm_plan.presets(document, lookup))


def cluster_warnings(spec: Document, name: str) -> list[str]:
    """What the merged `spec` asks of KServe's LLM controller that the objects leave out."""
    warnings = [
        f"objects are named as an InferenceService's ({name}-predictor), not as KServe's LLM "
        f"controller names them ({name}-kserve, {name}-kserve-workload-svc)"
    ]
    for path, why in _NOT_RENDERED.items():
        head, _, tail = path.partition(".")
        value = spec.get(head)
        if tail and isinstance(value, dict):
            value = value.get(tail)
        if value is not None:
            warnings.append(f"spec.{path}: {why}")
    template = spec.get("template") or {}
    if any(c.get("name") == MAIN_CONTAINER for c in template.get("containers") or ()):
        warnings.append(
            "spec.template: the main container's image, command and args (vLLM) are replaced "
            "by ksrv's huggingface runtime container; its env and resources are kept"
        )
    for env in templated_env(spec):
        warnings.append(
            f"spec.template env {env}: a template of KServe's LLM controller, naming objects "
            "it makes; left out"
        )
    if (spec.get("scaling") or {}).keys() - {"minReplicas", "maxReplicas"}:
        warnings.append(
            "spec.scaling: KServe's LLM controller would scale with WVA/KEDA on the engine's "
            "metrics; rendered: an HPA on CPU between minReplicas and maxReplicas"
        )
    return warnings


def config_lookup(documents: Sequence[Document]) -> llm_plan.Lookup:
    """A lookup of the LLMInferenceServiceConfigs among `documents` (no namespace: default)."""
    configs = {
        ((d["metadata"].get("namespace") or "default"), d["metadata"].get("name")): d
        for d in documents
        if d.get("kind") == llm_plan.CONFIG and isinstance(d.get("metadata"), dict)
    }
    return lambda namespace, name: configs.get((namespace, name))
