"""TrainedModel (`serving.kserve.io/v1alpha1`): one more model for a running InferenceService.

KServe keeps these in a ConfigMap (`models.json`) its multi-model predictor watches; ksrv writes
the same document for both platforms (`models_json`): the Kubernetes renderer into the
ConfigMap, the local platform into a file its replicas watch (`parse_models_json` reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from ksrv.api.admission import storage_uri_problem
from ksrv.api.inference_service import InferenceService
from ksrv.api.meta import ApiModel, ObjectMeta, Quantity, quantity_bytes
from ksrv.errors import InvalidInput

API_VERSION: Final = "serving.kserve.io/v1alpha1"
# KServe's HuggingFace runtime resolves model IDs itself: never a multi-model predictor.
_HUGGINGFACE: Final = "huggingface"


class TrainedModelSpecModel(ApiModel):
    storage_uri: str
    framework: str
    memory: Quantity


class TrainedModelSpec(ApiModel):
    inference_service: str
    model: TrainedModelSpecModel


class TrainedModel(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    kind: Literal["TrainedModel"] = "TrainedModel"
    metadata: ObjectMeta
    spec: TrainedModelSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


def trained_model_errors(model: TrainedModel) -> list[tuple[str, str]]:
    """KServe's webhook checks the storage URI as it does an InferenceService's."""
    problem = storage_uri_problem(model.spec.model.storage_uri)
    return [("spec.model.storageUri", problem)] if problem else []


def trained_model_update_errors(old: TrainedModel, new: TrainedModel) -> list[tuple[str, str]]:
    """Memory is fixed once placed: KServe rejects changing it (delete and recreate instead)."""
    if old.spec.model.memory != new.spec.model.memory:
        return [("spec.model.memory", f"is immutable (was {old.spec.model.memory!r})")]
    return []


def is_multi_model(isvc: InferenceService) -> bool:
    """KServe's IsMMSPredictor: a custom container that sets MULTI_MODEL_SERVER=true, or a
    model (not Hugging Face) with no storageUri, storage spec or storageUris."""
    predictor = isvc.spec.predictor
    if predictor.implementation == "containers":
        first = predictor.containers[0] if predictor.containers else None
        return first is not None and first.env_value("MULTI_MODEL_SERVER") == "true"
    model = predictor.model_spec
    if predictor.huggingface is not None or (
        model is not None
        and model.model_format is not None
        and model.model_format.name == _HUGGINGFACE
    ):
        return False
    main = predictor.main_container
    has_storage = getattr(main, "storage_uri", None) or getattr(main, "storage", None)
    return not has_storage and not predictor.storage_uris


def models_json(models: list[TrainedModel]) -> str:
    """The `models.json` value: compact, as Go's encoding/json writes it, sorted by name."""
    entries = [
        {
            "modelName": model.metadata.name,
            "modelSpec": {
                "storageUri": model.spec.model.storage_uri,
                "framework": model.spec.model.framework,
                "memory": str(model.spec.model.memory),
            },
        }
        for model in sorted(models, key=lambda m: m.metadata.name)
    ]
    text = json.dumps(entries, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One `models.json` entry, as a multi-model server reads it."""

    name: str
    storage_uri: str
    framework: str
    memory_bytes: int


def parse_models_json(text: str) -> dict[str, ModelEntry]:
    """`models.json` -> entries by name.

    Raises:
        InvalidInput: the text is not a list of `{modelName, modelSpec}` entries.
    """
    try:
        entries = json.loads(text or "[]")
        found = {}
        for entry in entries:
            spec = entry["modelSpec"]
            name = str(entry["modelName"])
            memory = int(quantity_bytes(spec.get("memory") or 0))
            found[name] = ModelEntry(name, str(spec["storageUri"]), str(spec["framework"]), memory)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"models.json is not a list of TrainedModel entries: {exc}") from exc
    return found
