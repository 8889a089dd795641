"""Seam 1 (docs/platform.md): text -> documents -> validated, defaulted resources.

`load` is the one door: it picks the model by apiVersion + kind, parses (the CRD's checks),
applies KServe's webhook defaulting and validation, and raises one `ResourceInvalid` naming
every bad field. Admission loads strictly: a field the CRD does not know is an error (kubectl's
default). A stored document loads leniently: its unknown fields are kept and
`local_limitations` reports each one.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from pydantic import ValidationError

from ksrv.api import admission, names
from ksrv.api.field_tree import missing_required, unknown_field_errors
from ksrv.api.inference_graph import InferenceGraph, graph_errors
from ksrv.api.inference_service import InferenceService
from ksrv.api.kinds import GROUP, KINDS, Kind
from ksrv.api.limitations import local_limitations
from ksrv.api.llm_inference_service import (
    LLMInferenceService,
    LLMInferenceServiceConfig,
    llm_errors,
)
from ksrv.api.local_model_cache import (
    LocalModelCache,
    LocalModelNamespaceCache,
    local_model_cache_errors,
    local_model_cache_update_errors,
)
from ksrv.api.meta import join
from ksrv.api.serving_runtime import ClusterServingRuntime, ServingRuntime
from ksrv.api.storage_container import ClusterStorageContainer, storage_container_errors
from ksrv.api.trained_model import TrainedModel, trained_model_errors, trained_model_update_errors
from ksrv.errors import ResourceInvalid

__all__ = [
    "KINDS",
    "Kind",
    "Resource",
    "kind_for",
    "load",
    "local_limitations",
    "parse_documents",
    "validate_update",
]

Resource = (
    InferenceService
    | ServingRuntime
    | ClusterServingRuntime
    | InferenceGraph
    | TrainedModel
    | ClusterStorageContainer
    | LocalModelCache
    | LocalModelNamespaceCache
    | LLMInferenceService
    | LLMInferenceServiceConfig
)
FieldErrors = list[tuple[str, str]]


_MODELS: Final[dict[str, type[Resource]]] = {
    "InferenceService": InferenceService,
    "InferenceGraph": InferenceGraph,
    "TrainedModel": TrainedModel,
    "ServingRuntime": ServingRuntime,
    "ClusterServingRuntime": ClusterServingRuntime,
    "ClusterStorageContainer": ClusterStorageContainer,
    "LocalModelCache": LocalModelCache,
    "LocalModelNamespaceCache": LocalModelNamespaceCache,
    "LLMInferenceService": LLMInferenceService,
    "LLMInferenceServiceConfig": LLMInferenceServiceConfig,
}
# Older API groups and versions KServe no longer serves (no CRD version for them in v0.20).
_OBSOLETE_GROUPS: Final = ("serving.kubeflow.org",)


def kind_for(text: str) -> str:
    """The kind a user typed: `isvc`, `inferenceservices`, `InferenceService.serving.kserve.io`."""
    wanted = text.strip().lower()
    if wanted.endswith("." + GROUP):
        wanted = wanted[: -len(GROUP) - 1]
    for kind in KINDS.values():
        if wanted in (kind.singular, kind.plural, *kind.short_names):
            return kind.kind
    known = ", ".join(
        sorted(name for kind in KINDS.values() for name in (kind.plural, *kind.short_names))
    )
    raise ResourceInvalid(f"unknown resource type {text!r}; ksrv serves {known}")  # fmt: skip


MAX_DEPTH = 100


def _check_shape(text: str) -> None:
    """Refuse, before anything is built, what could blow up building it: aliases (a small
    text expanding into gigabytes) and absurd nesting. Manifests need neither."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = 0
    for event in yaml.parse(text, loader):
        if isinstance(event, yaml.AliasEvent):
            raise ResourceInvalid("YAML aliases (*name) are not accepted in manifests")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ResourceInvalid(f"the document is nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_documents(text: str) -> list[dict[str, Any]]:
    """Every document in a YAML or JSON text (`---`-separated, `kind: List` unpacked)."""
    try:
        _check_shape(text)
        # libyaml's loader when built in: a thousand manifests should not take seconds
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw = [document for document in yaml.load_all(text, loader) if document is not None]
    except yaml.YAMLError as exc:
        raise ResourceInvalid(f"not valid YAML or JSON: {exc}") from exc
    documents: list[dict[str, Any]] = []
    for index, document in enumerate(raw, 1):
        if not isinstance(document, dict):
            raise ResourceInvalid(
                f"document {index}: expected a mapping, got {type(document).__name__}"
            )
        if document.get("kind") == "List" and isinstance(document.get("items"), list):
            documents.extend(item for item in document["items"] if isinstance(item, dict))
        else:
            documents.append(document)
    return documents


def load(document: dict[str, Any], *, is_strict: bool = False) -> Resource:
    """One document -> its resource, defaulted and validated as KServe's API server would.

    Args:
        is_strict: refuse fields the CRD does not define, as kubectl's default strict field
            validation does (admission); stored documents load without it, so one stored
            under looser rules still reconciles.

    Raises:
        ResourceInvalid: unsupported kind or apiVersion, or broken CRD/webhook rules; its
            `field_errors` name each bad field.
    """
    cls = _model_for(document)
    # What the user wrote, at any depth (pod-spec fields included), checked against the CRD.
    errors: FieldErrors = (
        unknown_field_errors(_tree_kind(cls, document), document) if is_strict else []
    )
    try:
        resource = cls.model_validate(document)
    except ValidationError as exc:
        errors += [_field_error(error) for error in exc.errors()]
        raise _invalid(document, errors) from exc
    if isinstance(resource, InferenceService):
        admission.apply_defaults(resource)
        errors += admission.inference_service_errors(resource)
    elif isinstance(resource, InferenceGraph):
        errors += graph_errors(resource)
    elif isinstance(resource, TrainedModel):
        errors += trained_model_errors(resource)
    elif isinstance(resource, ClusterStorageContainer):
        errors += storage_container_errors(resource)
    elif isinstance(resource, LocalModelCache | LocalModelNamespaceCache):
        errors += local_model_cache_errors(resource)
    elif isinstance(resource, LLMInferenceService | LLMInferenceServiceConfig):
        # Their typed models leave most of the spec as data: the CRD's required fields are
        # checked from the field tree.
        if is_strict:
            tree_kind = _tree_kind(cls, document)
            errors += [(path, "required") for path in missing_required(tree_kind, document)]
        errors += llm_errors(resource)
    if is_strict:
        errors += _name_errors(resource, errors)
    if errors:
        raise _invalid(document, errors)
    return resource


def _name_errors(resource: Resource, found: FieldErrors) -> FieldErrors:
    """Kubernetes' rule for every name (a DNS-1123 subdomain), unless a stricter rule of the
    kind (an InferenceService's DNS-1035 label) already refused it."""
    problem = names.name_problem(resource.metadata.name)
    if problem is None or any(path == "metadata.name" for path, _ in found):
        return []
    return [("metadata.name", problem)]


def validate_update(old: Resource, new: Resource) -> None:
    """KServe's rules for replacing `old` by `new` (both already loaded).

    Raises:
        ResourceInvalid: kind or name changed, the deployment mode changed, a predictor was
            renamed without a model change, or a TrainedModel's memory changed.
    """
    errors: FieldErrors = []
    if old.kind != new.kind:
        errors.append(("kind", f"cannot change from {old.kind} to {new.kind}"))
    elif old.metadata.name != new.metadata.name:
        errors.append(("metadata.name", f"cannot change from {old.metadata.name!r}"))
    elif isinstance(old, InferenceService) and isinstance(new, InferenceService):
        errors = admission.update_errors(old, new)
    elif isinstance(old, TrainedModel) and isinstance(new, TrainedModel):
        errors = trained_model_update_errors(old, new)
    elif isinstance(old, LocalModelCache | LocalModelNamespaceCache) and isinstance(
        new, LocalModelCache | LocalModelNamespaceCache
    ):
        errors = local_model_cache_update_errors(old, new)
    if errors:
        raise _invalid(new.to_dict(), errors)


def _model_for(document: Any) -> type[Resource]:
    if not isinstance(document, dict):
        raise ResourceInvalid(f"expected a mapping, got {type(document).__name__}")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    group = str(api_version or "").rpartition("/")[0]
    cls = _MODELS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        served = ", ".join(KINDS)
        raise ResourceInvalid(
            f"kind {kind!r} ({api_version}) is not served by ksrv; it serves {served}",
            field_errors=[("kind", f"{kind!r} is not one of {served}")],
        )
    expected = KINDS[cls.__name__].api_version
    if api_version not in KINDS[cls.__name__].api_versions:
        why = "is obsolete" if group in _OBSOLETE_GROUPS or group == GROUP else "is unknown"
        raise ResourceInvalid(
            f"{kind} apiVersion {api_version!r} {why}; ksrv serves {kind} as {expected}",
            field_errors=[("apiVersion", f"{api_version!r} {why}, expected {expected!r}")],
        )
    return cls


def _tree_kind(cls: type[Resource], document: dict[str, Any]) -> str:
    """The field tree's entry: `Kind@version` for a kind served in several versions."""
    kind = KINDS[cls.__name__]
    if not kind.other_versions:
        return kind.kind
    return f"{kind.kind}@{str(document.get('apiVersion')).rpartition('/')[2]}"


def _field_error(error: Any) -> tuple[str, str]:
    path = ""
    for part in error["loc"]:
        path = join(path, part)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required"
    return path or "(root)", message


def _invalid(document: dict[str, Any], errors: FieldErrors) -> ResourceInvalid:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    who = f"{namespace}/{name}" if namespace and name else name or "(unnamed)"
    details = "; ".join(f"{path}: {message}" for path, message in errors)
    return ResourceInvalid(
        f"{document.get('kind')} {who} is invalid: {details}", field_errors=errors
    )
