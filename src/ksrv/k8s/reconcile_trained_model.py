"""TrainedModels on a cluster: what their own handler does (validate, adopt, finalizer) and what
their InferenceService's pass does for them (the `modelconfig-{isvc}-0` ConfigMap, their status
and labels).

As KServe: the ConfigMap belongs to the InferenceService (its controller makes it; ownerReference
and label to the service), lists the models placed on the predictor (`trained_model_status`),
and loses a model before the model is gone, which the finalizer `trainedmodel.finalizer`
guarantees. A TrainedModel whose InferenceService does not exist is deleted, and an
InferenceService's deletion deletes its TrainedModels (label `inferenceservice`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.api import conditions as api_conditions
from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel
from ksrv.control.service_status import mapping
from ksrv.errors import ResourceInvalid
from ksrv.k8s import trained_model, trained_model_status
from ksrv.k8s.client import Api, ApiFailure
from ksrv.k8s.outcome import (
    DEPENDENT_VERSION,
    ISVC_VERSION,
    Rejected,
    failed_status,
    write_status,
)
from ksrv.k8s.trained_model_status import PARENT_LABEL, Placement

FINALIZER: Final = "trainedmodel.finalizer"
KIND: Final = "TrainedModel"
Found = tuple[dict[str, Any], TrainedModel]


def prepare(
    api: Api, namespace: str, name: str, now: Callable[[], float] = time.time
) -> str | None:
    """Validate a TrainedModel, delete it if its InferenceService does not exist, else give it
    the finalizer and the parent label; the InferenceService whose pass serves it (None: none).
    """
    body = api.get(DEPENDENT_VERSION, KIND, name, namespace)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    try:
        model = resources.load(body)
    except ResourceInvalid as exc:
        old = mapping(body.get("status"))
        generation = body["metadata"].get("generation")
        write_status(api, body, failed_status(generation, api_conditions.INVALID_SPEC, str(exc),
                                              old, now()))  # fmt: skip
        raise Rejected(str(exc)) from None
    assert isinstance(model, TrainedModel)
    parent = model.spec.inference_service
    if api.get(ISVC_VERSION, "InferenceService", parent, namespace) is None:
        api.delete(DEPENDENT_VERSION, KIND, name, namespace)
        return None
    meta = body["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    labels = meta.get("labels") or {}
    if FINALIZER not in finalizers or labels.get(PARENT_LABEL) != parent:
        patch: dict[str, Any] = {"labels": {PARENT_LABEL: parent},
                                 "resourceVersion": meta.get("resourceVersion")}  # fmt: skip
        if FINALIZER not in finalizers:
            patch["finalizers"] = [*finalizers, FINALIZER]
        api.patch(DEPENDENT_VERSION, KIND, name, namespace, {"metadata": patch})
    return parent


def release(api: Api, namespace: str, name: str) -> None:
    """Remove the finalizer of a TrainedModel being deleted (its ConfigMap no longer lists it)."""
    body = api.get(DEPENDENT_VERSION, KIND, name, namespace)
    if body is None:
        return
    meta = body["metadata"]
    finalizers = [f for f in meta.get("finalizers") or () if f != FINALIZER]
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
    try:
        api.patch(DEPENDENT_VERSION, KIND, name, namespace, patch)
    except ApiFailure as failure:
        if failure.status != 404:
            raise


def models_of(api: Api, namespace: str, isvc: str) -> list[Found]:
    """The TrainedModels that name `isvc` (those that fail to load are their handler's)."""
    found = []
    for body in api.list(DEPENDENT_VERSION, KIND, namespace):
        if (body.get("spec") or {}).get("inferenceService") != isvc:
            continue
        try:
            model = resources.load(body)
        except ResourceInvalid:
            continue
        assert isinstance(model, TrainedModel)
        found.append((body, model))
    return found


def placed(
    api: Api, isvc: InferenceService, rendered: list[dict[str, Any]]
) -> tuple[list[Found], Placement, list[dict[str, Any]]]:
    """The TrainedModels naming `isvc`, where they go on its predictor (as `rendered`), and
    the ConfigMap listing them (none when there is nothing to list)."""
    models = models_of(api, isvc.metadata.namespace or "default", isvc.metadata.name)
    memory = trained_model_status.predictor_memory(rendered, isvc)
    where = trained_model_status.placement(isvc, [m for _, m in models], memory)
    config = model_config(isvc, models, where)
    return models, where, [config] if config is not None else []


def model_config(
    isvc: InferenceService, models: list[Found], where: Placement
) -> dict[str, Any] | None:
    """The `modelconfig-{isvc}-0` ConfigMap: for a multi-model predictor, or one that
    TrainedModels name (KServe's model puller reads it; it lists the placed models)."""
    if not where.is_multi_model and not models:
        return None
    placed = trained_model_status.deployed([m for _, m in models], where)
    namespace = isvc.metadata.namespace or "default"
    return trained_model.model_config(isvc.metadata.name, namespace, placed,
                                      isvc.metadata.labels)  # fmt: skip


def write_statuses(
    api: Api,
    isvc: InferenceService,
    models: list[Found],
    where: Placement,
    isvc_status: dict[str, Any],
    now: float,
) -> None:
    """Each TrainedModel's status and labels, from the InferenceService's new status."""
    for body, model in models:
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        old = mapping(body.get("status"))
        new = trained_model_status.model_status(model, isvc, isvc_status, where, old, now)
        write_status(api, body, new)
        labels = meta.get("labels") or {}
        wanted = trained_model_status.wanted_labels(model, isvc.metadata.name, where)
        changed = {k: v for k, v in wanted.items() if labels.get(k) != v}
        if changed:
            patch = {"metadata": {"labels": changed}}
            api.patch(DEPENDENT_VERSION, KIND, meta["name"], meta.get("namespace"), patch)


def delete_models(api: Api, namespace: str, isvc: str) -> None:
    """Delete the TrainedModels of a deleted InferenceService (KServe's external resources)."""
    for body in api.list(DEPENDENT_VERSION, KIND, namespace, f"{PARENT_LABEL}={isvc}"):
        meta = body["metadata"]
        if not meta.get("deletionTimestamp"):
            api.delete(DEPENDENT_VERSION, KIND, meta["name"], namespace)
