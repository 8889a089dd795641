"""TrainedModels -> the ConfigMap `modelconfig-{isvc}-0` a multi-model predictor reads (§4.3).

KServe's InferenceService controller creates the ConfigMap (`models.json: []`, the service's
labels) for a multi-model predictor, one with no storage; its TrainedModel controller then adds
and removes `{"modelName", "modelSpec": {storageUri, framework, memory}}` entries. Rendered here in
one step, from the full set of TrainedModels: the same document both controllers converge on.
KServe writes the entries in Go map order (random); they are sorted by name here so renders are
stable. There is one shard (KServe's memory sharding always answers 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel, is_multi_model, models_json

__all__ = ["config_map_name", "is_multi_model", "model_config", "model_configs", "models_json"]

MODELS_KEY: Final = "models.json"
SHARD: Final = 0


def config_map_name(isvc: str, shard: int = SHARD) -> str:
    """`modelconfig-{isvc}-{shard}` (KServe's ModelConfigName)."""
    return f"modelconfig-{isvc}-{shard}"


def model_config(
    isvc: str,
    namespace: str,
    models: Iterable[TrainedModel],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ConfigMap listing the TrainedModels of InferenceService `isvc` in `namespace`
    (those of other services and those being deleted are left out)."""
    mine = [
        model
        for model in models
        if model.spec.inference_service == isvc
        and (model.metadata.namespace or "default") == namespace
        and not (model.metadata.model_extra or {}).get("deletionTimestamp")
    ]
    metadata: dict[str, Any] = {"name": config_map_name(isvc), "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {MODELS_KEY: models_json(mine)},
    }


def model_configs(
    services: Iterable[InferenceService], models: Iterable[TrainedModel]
) -> list[dict[str, Any]]:
    """One ConfigMap per multi-model InferenceService and per InferenceService a TrainedModel
    names (KServe's TrainedModel controller updates the one its service created)."""
    models = list(models)
    known = {(s.metadata.namespace or "default", s.metadata.name): s for s in services}
    wanted = {key for key, service in known.items() if is_multi_model(service)}
    wanted |= {(m.metadata.namespace or "default", m.spec.inference_service) for m in models}
    objects = []
    for namespace, name in sorted(wanted):
        service = known.get((namespace, name))
        labels = service.metadata.labels if service is not None else None
        objects.append(model_config(name, namespace, models, labels))
    return objects
