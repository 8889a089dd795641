"""Where an InferenceService's TrainedModels go and what their status says, as KServe's
trainedmodel controller decides it.

Pure. A model is placed (listed in `modelconfig-{isvc}-0` and labelled
`serving.kserve.io/trainedmodel-allocated`) when the predictor is multi-model and the memory of
the models placed so far plus its own fits the predictor's `kserve-container` memory limit.
KServe places models in the order its controller meets them and never takes a placement back;
here those already labelled come first, then the rest by creation time and name, so the same
cluster always gives the same answer. Status: `InferenceServiceReady`, `IsMMSPredictor`,
`MemoryResourceAvailable`, and `Ready` over the three (KServe's living condition set: the
reason of the last failing one); `url` and `address.url` are the InferenceService's plus the
model's predict path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel
from ksrv.control.service_status import mapping
from ksrv.control.trained_model_status import Placement, model_status
from ksrv.k8s import naming, trained_model

__all__ = ["Placement", "model_status", "placement", "predictor_memory", "quantity"]

PARENT_LABEL: Final = "inferenceservice"
ALLOCATED_LABEL: Final = "serving.kserve.io/trainedmodel-allocated"
MODEL_CONTAINER: Final = "kserve-container"
_SUFFIXES: Final = {
    "Ki": "1024", "Mi": "1048576", "Gi": "1073741824", "Ti": "1099511627776",
    "Pi": "1125899906842624", "Ei": "1152921504606846976",
    "n": "1e-9", "u": "1e-6", "m": "1e-3", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12",
    "P": "1e15", "E": "1e18",
}  # fmt: skip


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`1Gi`, `512M`, `1e9`, 1024) in base units; None if it is not one."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], Decimal(_SUFFIXES[suffix])
            break
    else:
        number, scale = text, Decimal(1)
    try:
        return Decimal(number) * scale
    except InvalidOperation:
        return None


def predictor_memory(objects: Iterable[dict[str, Any]], isvc: InferenceService) -> Decimal | None:
    """The memory limit of the predictor's `kserve-container`, as rendered (runtime and
    configured defaults applied), from its Deployment or Knative Service."""
    name = naming.predictor_name(isvc.metadata.name, isvc.spec.predictor.name)
    for obj in objects:
        if obj["metadata"]["name"] != name or obj["kind"] not in ("Deployment", "Service"):
            continue
        pod = mapping(mapping(mapping(obj.get("spec")).get("template")).get("spec"))
        for container in pod.get("containers") or ():
            if container.get("name") == MODEL_CONTAINER:
                limits = mapping(mapping(container.get("resources")).get("limits"))
                found = limits.get("memory")
                return None if found is None else quantity(found)
    return None


def placement(
    isvc: InferenceService, models: Sequence[TrainedModel], memory_limit: Decimal | None
) -> Placement:
    """The models placed on `isvc`'s predictor (those being deleted are left out)."""
    is_multi_model = trained_model.is_multi_model(isvc)
    placed: set[str] = set()
    total = Decimal(0)
    for model in sorted(models, key=lambda m: _order(m, isvc.metadata.name)):
        if _is_deleting(model):
            continue
        memory = quantity(model.spec.model.memory) or Decimal(0)
        if memory_limit is not None and total + memory <= memory_limit:
            total += memory
            placed.add(model.metadata.name)
    return Placement(is_multi_model, memory_limit, frozenset(placed))


def deployed(models: Iterable[TrainedModel], where: Placement) -> list[TrainedModel]:
    """The models the predictor's ConfigMap lists."""
    if not where.is_multi_model:
        return []
    return [m for m in models if m.metadata.name in where.placed and not _is_deleting(m)]


def wanted_labels(model: TrainedModel, isvc: str, where: Placement) -> dict[str, str | None]:
    """The labels KServe's controller keeps on a TrainedModel (None: to remove)."""
    return {
        PARENT_LABEL: isvc,
        ALLOCATED_LABEL: isvc if model.metadata.name in where.placed else None,
    }


def _order(model: TrainedModel, isvc: str) -> tuple[bool, str, str]:
    labels = model.metadata.labels or {}
    created = str((model.metadata.model_extra or {}).get("creationTimestamp") or "")
    return labels.get(ALLOCATED_LABEL) != isvc, created, model.metadata.name


def _is_deleting(model: TrainedModel) -> bool:
    return bool((model.metadata.model_extra or {}).get("deletionTimestamp"))
