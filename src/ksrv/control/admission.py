"""What every body goes through before the store: parse, default, validate (KServe's webhooks).

The management API and `ksrv apply --dry-run` call only these functions, so `ksrv.api`'s
resource models are reached from this one module. Most rules read one document; the model
caches' and TrainedModels' also read what is stored (`admit_among`, `admit_delete`), as
KServe's webhooks list.
"""

from __future__ import annotations

from typing import Any

from ksrv import errors
from ksrv.api import local_model_cache, resources, trained_model
from ksrv.api.inference_service import InferenceService
from ksrv.api.trained_model import TrainedModel
from ksrv.control import model_copies, response_cache_plan, trained_models
from ksrv.control.store import Store

Document = dict[str, Any]


def parse(text: str) -> list[Document]:
    """The documents in a YAML or JSON text (multi-document, empty ones skipped)."""
    return resources.parse_documents(text)


def admit(document: Document) -> Document:
    """The document as it will be stored: defaults applied; `ResourceInvalid` when invalid
    (a field the CRD does not define included, as kubectl's strict validation refuses it)."""
    loaded = resources.load(document, is_strict=True)
    if isinstance(loaded, InferenceService):
        for spec in loaded.components().values():  # a component's annotations win
            response_cache_plan.from_annotations(
                {**loaded.metadata.annotations, **(spec.annotations or {})}
            )
    return loaded.to_dict()


def admit_update(old: Document, new: Document) -> None:
    """KServe's update rules between the stored document and its replacement.

    A stored document that no longer loads (stored under older rules) has nothing to compare
    against: the replacement alone was already validated by `admit`.
    """
    try:
        before = resources.load(old)
    except errors.ResourceInvalid:
        return
    resources.validate_update(before, resources.load(new))


def field_errors(exc: errors.ResourceInvalid) -> list[tuple[str, str]]:
    """(path, message) pairs of a validation failure; empty when it names no field."""
    return list(exc.field_errors)


def admit_among(document: Document, store: Store) -> None:
    """KServe's webhook rule that reads the other objects of a kind: no two LocalModelCaches
    name the same sourceModelUri.

    Raises:
        ResourceInvalid: naming `spec.sourceModelUri` and the other cache.
    """
    if document.get("kind") == "TrainedModel":
        _admit_trained_model(document, store)
    if document.get("kind") != local_model_cache.CLUSTER_KIND:
        return
    name, uri = document["metadata"]["name"], document["spec"]["sourceModelUri"]
    for other in store.list(local_model_cache.CLUSTER_KIND, ""):
        other_name = other["metadata"]["name"]
        if other_name != name and (other.get("spec") or {}).get("sourceModelUri") == uri:
            problem = f"LocalModelCache {other_name} has the same StorageURI {uri}"
            raise errors.ResourceInvalid(
                f"LocalModelCache {name} is invalid: spec.sourceModelUri: {problem}",
                field_errors=[("spec.sourceModelUri", problem)],
            )


def _admit_trained_model(document: Document, store: Store) -> None:
    """A TrainedModel for a stored multi-model InferenceService must be of its model format
    and fit its predictor's memory (a model applied before its service is judged in its
    status instead: `trained_models`)."""
    namespace = document["metadata"].get("namespace") or "default"
    try:
        stored = store.get("InferenceService", namespace, document["spec"]["inferenceService"])
        isvc = resources.load({k: v for k, v in stored.items() if k != "status"})
    except errors.KsrvError:
        return
    model = resources.load(document)
    if not isinstance(isvc, InferenceService) or not isinstance(model, TrainedModel):
        return
    if not trained_model.is_multi_model(isvc):
        return
    placement, unsupported = trained_models.placement(isvc, [model])
    problems = list(unsupported.values())
    budget = trained_models.memory_budget(isvc)
    if model.metadata.name not in placement.placed and budget is not None:
        problems.append(trained_models.memory_problem(model, budget))
    if problems:
        raise errors.ResourceInvalid(
            f"TrainedModel {model.metadata.name} is invalid: " + "; ".join(problems),
            field_errors=[tuple(problem.split(": ", 1)) for problem in problems],  # type: ignore[misc]
        )


def admit_delete(kind: str, namespace: str, name: str, store: Store) -> None:
    """KServe refuses to delete a model cache an InferenceService uses (by the matching rule
    now, not a status that may lag a second behind). Other kinds delete freely.

    Raises:
        Conflict: naming the cache and one InferenceService that uses it.
    """
    if kind not in local_model_cache.KINDS:
        return
    caches = [cache.ref for cache in model_copies.stored_caches(store)]
    services = (model_copies.service_facts(isvc) for isvc in store.list("InferenceService"))
    found = model_copies.users(caches, (facts for facts in services if facts is not None))
    using = found.get((kind, namespace, name))
    if using:
        who = f"{namespace}/{name}" if namespace else name
        isvc = f"{using[0]['namespace']}/{using[0]['name']}"
        raise errors.Conflict(f"{kind} {who} is being used by InferenceService {isvc}")
