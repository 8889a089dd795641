"""A TrainedModel's status, as KServe's trainedmodel controller writes it; shared by the
Kubernetes renderer and the local platform, which differ only in `Placement`.

Pure. Status: `InferenceServiceReady`, `IsMMSPredictor`, `MemoryResourceAvailable`, and
`Ready` over the three (KServe's living condition set: the reason of the last failing one);
`url` and `address.url` are the InferenceService's plus the model's predict path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel
from ksrv.control.service_status import condition, drop_none, keep_transition_times, mapping


@dataclass(frozen=True, slots=True)
class Placement:
    """Which of an InferenceService's TrainedModels are placed on its predictor."""

    is_multi_model: bool
    memory_limit: Decimal | None
    placed: frozenset[str]


def model_status(
    model: TrainedModel,
    isvc: InferenceService,
    isvc_status: dict[str, Any],
    where: Placement,
    old: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """KServe's TrainedModel status."""
    name = model.metadata.name
    is_isvc_ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in isvc_status.get("conditions") or ()
    )
    found = [
        condition("InferenceServiceReady", True, "", "") if is_isvc_ready else condition(
            "InferenceServiceReady", False, "InferenceServiceNotReady",
            "Inference Service needs to be ready before Trained Model can be ready"),
        condition("IsMMSPredictor", True, "", "") if where.is_multi_model else condition(
            "IsMMSPredictor", False, "IsNotMMSPredictor",
            "Inference Service predictor is not configured for multi-model serving"),
        condition("MemoryResourceAvailable", True, "", "") if name in where.placed else condition(
            "MemoryResourceAvailable", False, "MemoryResourceNotAvailable",
            "Inference Service does not have enough memory resources for Trained Model"),
    ]  # fmt: skip
    failing = [c for c in found if c["status"] != "True"]
    last = failing[-1] if failing else None
    ready = condition("Ready", last is None, (last or {}).get("reason", ""),
                      (last or {}).get("message", ""))  # fmt: skip
    conditions = [*found, ready]
    keep_transition_times(conditions, old.get("conditions") or [], now)
    path = _predict_path(name, isvc)
    url = isvc_status.get("url")
    address = mapping(isvc_status.get("address")).get("url")
    return drop_none({
        "observedGeneration": (model.metadata.model_extra or {}).get("generation"),
        "conditions": conditions,
        "url": f"{url}{path}" if url else None,
        "address": {"url": f"{address}{path}"} if address else None,
    })  # fmt: skip


def _predict_path(model: str, isvc: InferenceService) -> str:
    """KServe's PredictPath for the predictor's protocol (v2, else v1)."""
    predictor = isvc.spec.predictor
    main = predictor.main_container
    protocol = getattr(main, "protocol_version", None)
    if predictor.implementation == "containers" and main is not None:
        protocol = main.env_value("PROTOCOL")
    if protocol == "v2":
        return f"/v2/models/{model}/infer"
    return f"/v1/models/{model}:predict"
