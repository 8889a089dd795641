"""LocalModelCache (cluster-scoped) and LocalModelNamespaceCache (`serving.kserve.io/v1alpha1`):
a model downloaded ahead of time, so InferenceServices that name it start without a download.

Also the rule that decides which InferenceService a cache serves, which KServe's webhook
applies (`MatchStorageURI`, the `serving.kserve.io/nodegroup` and `disable-localmodel`
annotations, a namespace cache before a cluster one) and which the local reconcilers share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field

from ksrv.api.admission import storage_uri_problem
from ksrv.api.meta import ApiModel, ObjectMeta, Quantity, quantity_bytes

API_VERSION: Final = "serving.kserve.io/v1alpha1"
CLUSTER_KIND: Final = "LocalModelCache"
NAMESPACE_KIND: Final = "LocalModelNamespaceCache"
KINDS: Final = (CLUSTER_KIND, NAMESPACE_KIND)
NODE_GROUP_ANNOTATION: Final = "serving.kserve.io/nodegroup"
DISABLE_ANNOTATION: Final = "serving.kserve.io/disable-localmodel"
# KServe's nodeStatus values (the CRD's enum) and what `copies` counts.
NODE_PENDING: Final = "NodeDownloadPending"
NODE_DOWNLOADING: Final = "NodeDownloading"
NODE_DOWNLOADED: Final = "NodeDownloaded"
NODE_ERROR: Final = "NodeDownloadError"


class LocalModelStorage(ApiModel):
    """Credentials and storage parameters for the download (`storage.key` in the secret)."""

    key: str | None = None
    parameters: dict[str, str] | None = None


class LocalModelCacheSpec(ApiModel):
    source_model_uri: str
    model_size: Quantity
    node_groups: list[str] = Field(min_length=1)
    service_account_name: str | None = None
    storage: LocalModelStorage | None = None

    def matches(self, storage_uri: str) -> bool:
        return matches(self.source_model_uri, storage_uri)


def matches(source_model_uri: str, storage_uri: str) -> bool:
    """KServe's `MatchStorageURI`: the same URI, or one under it as a folder (trailing
    slashes ignored; `s3://b/iris` does not cache `s3://b/iris-v2`)."""
    cached, wanted = source_model_uri.rstrip("/"), storage_uri.rstrip("/")
    return wanted == cached or wanted.startswith(cached + "/")


class LocalModelCache(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    kind: Literal["LocalModelCache"] = CLUSTER_KIND
    metadata: ObjectMeta
    spec: LocalModelCacheSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


class LocalModelNamespaceCache(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    kind: Literal["LocalModelNamespaceCache"] = NAMESPACE_KIND
    metadata: ObjectMeta
    spec: LocalModelCacheSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name


def local_model_cache_errors(
    resource: LocalModelCache | LocalModelNamespaceCache,
) -> list[tuple[str, str]]:
    """What the CRD cannot say: a URI KServe's webhook would refuse for an InferenceService
    (nothing could use the cache), an empty node group name."""
    errors: list[tuple[str, str]] = []
    uri = resource.spec.source_model_uri
    problem = "required" if not uri.strip() else storage_uri_problem(uri)
    if problem:
        errors.append(("spec.sourceModelUri", problem))
    for index, group in enumerate(resource.spec.node_groups):
        if not group.strip():
            errors.append((f"spec.nodeGroups[{index}]", "must not be empty"))
    return errors


def cache_notes(resource: LocalModelCache | LocalModelNamespaceCache) -> list[str]:
    """What a local download does not honour: it runs with the control plane's environment."""
    why = "the download uses the credentials in ksrv's own environment, as replicas do"
    spec = resource.spec
    fields = {"serviceAccountName": spec.service_account_name, "storage": spec.storage}
    return [f"spec.{field}: {why}" for field, value in fields.items() if value]


def local_model_cache_update_errors(
    old: LocalModelCache | LocalModelNamespaceCache, new: LocalModelCache | LocalModelNamespaceCache
) -> list[tuple[str, str]]:
    """The CRD's rule `self == oldSelf` on sourceModelUri, with its message."""
    if old.spec.source_model_uri != new.spec.source_model_uri:
        return [("spec.sourceModelUri", "StorageUri is immutable")]
    return []


def storage_key(uri: str) -> str:
    """KServe's `GetStorageKey`: the folder name of a cached URI; caches of one URI share it."""
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CacheRef:
    """One stored cache, as the matching rule needs it (namespace "" for a cluster cache)."""

    kind: str
    namespace: str
    name: str
    source_model_uri: str
    node_groups: tuple[str, ...]
    model_size_bytes: float = 0.0

    @property
    def key(self) -> str:
        return storage_key(self.source_model_uri)

    def subpath(self, storage_uri: str) -> str:
        """Where `storage_uri` lies inside the cached copy ("" for the URI itself)."""
        return storage_uri.rstrip("/")[len(self.source_model_uri.rstrip("/")) :].lstrip("/")


def cache_ref(resource: LocalModelCache | LocalModelNamespaceCache) -> CacheRef:
    return CacheRef(
        kind=resource.kind,
        namespace=(resource.metadata.namespace or "") if resource.kind == NAMESPACE_KIND else "",
        name=resource.name,
        source_model_uri=resource.spec.source_model_uri,
        node_groups=tuple(resource.spec.node_groups),
        model_size_bytes=quantity_bytes(resource.spec.model_size),
    )


def cache_for(
    storage_uri: str | None,
    namespace: str,
    annotations: Mapping[str, str],
    caches: Iterable[CacheRef],
) -> CacheRef | None:
    """The cache an InferenceService's predictor uses, by KServe's rule; None for none.

    Skipped with `serving.kserve.io/disable-localmodel: "true"`. A LocalModelNamespaceCache in
    the service's namespace comes before a LocalModelCache. The URI must match; with a
    `serving.kserve.io/nodegroup` annotation the cache must list that node group, without one
    the cache's first node group serves it (locally every node group is this machine).
    """
    if not storage_uri or annotations.get(DISABLE_ANNOTATION, "").lower() == "true":
        return None
    group = annotations.get(NODE_GROUP_ANNOTATION)
    candidates = sorted(caches, key=lambda ref: (ref.kind != NAMESPACE_KIND, ref.name))
    for ref in candidates:
        if ref.kind == NAMESPACE_KIND and ref.namespace != namespace:
            continue
        if group is not None and group not in ref.node_groups:
            continue
        if matches(ref.source_model_uri, storage_uri):
            return ref
    return None
