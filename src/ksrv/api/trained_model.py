"""TrainedModel (`serving.kserve.io/v1alpha1`): one more model for a running InferenceService.

KServe keeps these in a ConfigMap its multi-model predictor watches; here they are resources the
reconciler hands to the predictor's model repository.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from ksrv.api.admission import storage_uri_problem
from ksrv.api.meta import ApiModel, ObjectMeta, Quantity

API_VERSION: Final = "serving.kserve.io/v1alpha1"


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
