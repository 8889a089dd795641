"""LLMInferenceService -> the InferenceService the local platform runs for it, and back to status.

Design: the local platform serves an LLMInferenceService with ksrv's huggingface runtime, so
the reconciler translates it into the InferenceService that asks for exactly that (one
predictor, `modelFormat: huggingface`, the model's uri as storageUri, the served name and LoRA
adapters as the runtime's flags, `replicas` / `scaling` as replica bounds, the `main`
container's env and resources) and plans it like any other: revisions, autoscaling, routes and
the gateway come from the same code. Its spec is first merged over its presets (well-known
KServe configs when they are stored, then `baseRefs`, then its own spec), as KServe does. What
needs a cluster (llm-d's scheduler, prefill/decode disaggregation, LeaderWorkerSet workers,
parallelism, the vLLM container itself) is said in `LocalLimitations`. The status is KServe's
for the kind: `url`, `addresses`, and its conditions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.llm_inference_service import (
    MAIN_CONTAINER,
    LLMInferenceService,
    LLMInferenceServiceSpec,
    merged_spec,
)
from ksrv.errors import ResourceInvalid

LLMISVC: Final = "LLMInferenceService"
CONFIG: Final = "LLMInferenceServiceConfig"
KINDS: Final = (LLMISVC, CONFIG)
# Where KServe installs its well-known presets; a baseRef is looked up beside the service first.
SYSTEM_NAMESPACE: Final = "kserve"
Document = dict[str, Any]
Lookup = Callable[[str, str], Document | None]  # (namespace, name) -> a stored config

_CLUSTER_ONLY: Final = {
    "prefill": "prefill/decode disaggregation needs llm-d on a cluster; the service's own "
    "workload serves both phases here",
    "worker": "multi-node workers (LeaderWorkerSet) need a cluster; one process serves here",
    "parallelism": "tensor, pipeline, data and expert parallelism need GPUs and vLLM; "
    "the huggingface runtime serves with one process",
    "router.scheduler": "the llm-d scheduler (endpoint picker) and its InferencePool need a "
    "cluster; ksrv's gateway balances between replicas",
    "router.gateway": "Gateway API gateways are a cluster's; ksrv's own gateway serves",
    "router.route": "the HTTPRoute is a cluster's; ksrv's gateway routes by host and path",
    "router.ingress": "Ingress objects are a cluster's; ksrv's gateway serves",
    "kvCacheOffloading": "KV-cache offloading is vLLM's (LMCache); not done here",
    "tracing": "vLLM's OpenTelemetry tracing is not configured here",
    "storageInitializer": "ksrv downloads with its own storage layer",
    "model.confidential": "confidential computing needs a cluster",
}


def presets(document: Document, lookup: Lookup) -> list[Document]:
    """The specs `document` is merged over, in KServe's order: the well-known configs its shape
    calls for (when stored), then its `baseRefs` (each must exist)."""
    namespace = document["metadata"].get("namespace") or "default"
    spec = document.get("spec") or {}
    found: list[Document] = []
    for name in _well_known(spec):
        config = lookup(namespace, name) or lookup(SYSTEM_NAMESPACE, name)
        if config is not None:
            found.append(config.get("spec") or {})
    for index, ref in enumerate(spec.get("baseRefs") or ()):
        name = ref.get("name", "")
        config = lookup(namespace, name) or lookup(SYSTEM_NAMESPACE, name)
        if config is None:
            raise ResourceInvalid(
                f"spec.baseRefs[{index}]: no {CONFIG} {name!r} in namespace {namespace!r} "
                f"or {SYSTEM_NAMESPACE!r}",
                field_errors=[(f"spec.baseRefs[{index}].name", "not found")],
            )
        found.append(config.get("spec") or {})
    return found


def _well_known(spec: Document) -> list[str]:
    """KServe's implicit presets for a spec of this shape."""
    names = ["kserve-config-llm-template"]
    if spec.get("prefill"):
        names = ["kserve-config-llm-decode-template", "kserve-config-llm-prefill-template"]
    elif spec.get("worker"):
        names = ["kserve-config-llm-worker-data-parallel"]
    router = spec.get("router") or {}
    if router.get("route") is not None:
        names.append("kserve-config-llm-router-route")
    if router.get("scheduler") is not None:
        names.append("kserve-config-llm-scheduler")
    return names


def as_inference_service(document: Document, lookup: Lookup) -> tuple[InferenceService, list[str]]:
    """The InferenceService that serves `document` locally, and what it asks for that the local
    platform does not do.

    Raises:
        ResourceInvalid: a baseRef is missing, or the merged spec is invalid (no model uri).
    """
    body = {key: value for key, value in document.items() if key != "status"}
    merged = merged_spec(body.get("spec") or {}, presets(body, lookup))
    llm = resources.load({**body, "spec": merged})
    assert isinstance(llm, LLMInferenceService)
    spec = llm.spec
    if spec.model is None:
        raise ResourceInvalid(
            f"{LLMISVC} {llm.name}: spec.model is required (neither it nor its presets set it)",
            field_errors=[("spec.model", "required")],
        )
    predictor: Document = {"model": _model(llm, spec), **_bounds(spec)}
    metadata = llm.metadata.to_dict()
    isvc = resources.load(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                **metadata,
                "labels": {**metadata.get("labels", {}), **(spec.labels or {})},
            },
            "spec": {"predictor": predictor},
        }
    )
    assert isinstance(isvc, InferenceService)
    return isvc, _limitations(merged)


def _model(llm: LLMInferenceService, spec: LLMInferenceServiceSpec) -> Document:
    model = spec.model
    assert model is not None
    args = [f"--model_name={model.name or llm.name}"]
    lora = model.lora
    adapters = [a for a in (lora.adapters if lora else None) or () if a.name]
    if adapters and lora is not None:
        # KServe's defaults for vLLM: rank 64, as many adapters as configured.
        args += ["--enable-lora", "--lora-modules", *(f"{a.name}={a.uri}" for a in adapters)]
        args += [f"--max-lora-rank={lora.max_rank or 64}"]
        args += [f"--max-loras={lora.max_adapters or len(adapters)}"]
        args += [f"--max-cpu-loras={lora.max_cpu_adapters or len(adapters)}"]
    found: Document = {
        "modelFormat": {"name": "huggingface"},
        "storageUri": model.uri,
        "args": args,
    }
    main = spec.template.main() if spec.template is not None else None
    if main is not None:
        if main.env:
            found["env"] = [var.to_dict() for var in main.env]
        if main.resources is not None:
            found["resources"] = main.resources.to_dict()
    return found


def _bounds(spec: LLMInferenceServiceSpec) -> Document:
    """`replicas` is a fixed count (default 1); `scaling` gives bounds ksrv's autoscaler keeps."""
    scaling = spec.scaling or {}
    if scaling:
        low = scaling.get("minReplicas", 1)
        return {"minReplicas": low, "maxReplicas": scaling.get("maxReplicas", low)}
    count = 1 if spec.replicas is None else spec.replicas
    return {"minReplicas": count, "maxReplicas": count}


def _limitations(spec: Document) -> list[str]:
    notes = []
    for path, why in _CLUSTER_ONLY.items():
        head, _, tail = path.partition(".")
        value = spec.get(head)
        if tail and isinstance(value, dict):
            value = value.get(tail)
        if value is not None:  # present, even empty (`scheduler: {}` asks for the default)
            notes.append(f"spec.{path}: {why}")
    template = spec.get("template") or {}
    if any(c.get("name") == MAIN_CONTAINER for c in template.get("containers") or ()):
        notes.append(
            "spec.template: the main container's image, command and args (vLLM) are not run; "
            "ksrv's huggingface runtime serves the model (its env and resources are kept)"
        )
    if (spec.get("scaling") or {}).keys() - {"minReplicas", "maxReplicas"}:
        notes.append(
            "spec.scaling: HPA, KEDA and WVA metrics are not read; ksrv's autoscaler keeps the "
            "replicas between minReplicas and maxReplicas on concurrency"
        )
    return notes


def llm_status(status: Document) -> Document:
    """An InferenceService status recast as KServe writes an LLMInferenceService's: `url`,
    `addresses`, and its conditions (`components` is kept: the reconciler reads it back)."""
    kept = ("Ready", "LocalLimitations", "Stopped")
    renamed = {"PredictorReady": "MainWorkloadReady", "IngressReady": "RouterReady"}
    conditions = []
    for found in status.get("conditions") or ():
        kind = found.get("type")
        if kind in renamed:
            conditions.append({**found, "type": renamed[kind]})
            if kind == "PredictorReady":
                conditions.append({**found, "type": "WorkloadsReady"})
        elif kind in kept:
            conditions.append(found)
    conditions.insert(0, {"type": "PresetsCombined", "status": "True"})
    out: Document = {
        "observedGeneration": status.get("observedGeneration"),
        "conditions": conditions,
    }
    if status.get("url"):
        out["url"] = status["url"]
        out["addresses"] = [{"url": status["url"]}]
    if "components" in status:
        out["components"] = status["components"]
    return out
