"""Where LocalModelCache copies live on this machine, and how a replica starts from one.

A cached URI is downloaded once into `<root>/<key>` (`key` = KServe's storage key, the first
16 hex digits of sha256(uri)), so every cache of one URI shares one copy. The folder appears
in one rename when the download is complete, so a folder that exists is a whole copy. An
InferenceService whose predictor a cache serves (`api.local_model_cache.cache_for`) gets its
plan's storageUri rewritten to that folder (plus the part of its URI under the cached one),
as KServe rewrites it to the cache's PVC: the replica reads the files in place, with no
listing and no download. Until the copy is complete the service downloads as before. The
stored caches and which services each serves (`stored_caches`, `users`) are read here too,
for the InferenceService and cache reconcilers and for admission alike.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksrv.api import resources
from ksrv.api.inference_service import InferenceService
from ksrv.api.local_model_cache import (
    KINDS,
    CacheRef,
    LocalModelCache,
    LocalModelNamespaceCache,
    cache_for,
    cache_ref,
)
from ksrv.control.plan import ModelServer, ServicePlan
from ksrv.control.store import Store
from ksrv.errors import KsrvError

logger = logging.getLogger(__name__)

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredCache:
    """A stored cache document, its matching facts, and what is not honoured locally."""

    document: Document
    ref: CacheRef
    notes: tuple[str, ...]


def stored_caches(store: Store) -> list[StoredCache]:
    """Every stored cache of both kinds; one that no longer loads (stored under older rules)
    is skipped with a warning."""
    found: list[StoredCache] = []
    for kind in KINDS:
        for document in store.list(kind):
            body = {key: value for key, value in document.items() if key != "status"}
            try:
                resource = resources.load(body)
            except KsrvError as exc:
                logger.warning("skipping %s %s: %s", kind, document["metadata"]["name"], exc)
                continue
            assert isinstance(resource, LocalModelCache | LocalModelNamespaceCache)
            notes = tuple(resources.local_limitations(resource))
            found.append(StoredCache(document, cache_ref(resource), notes))
    return found


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """What the matching rule reads of an InferenceService."""

    name: str
    namespace: str
    annotations: dict[str, str]
    storage_uri: str | None


def service_facts(document: Document) -> ServiceFacts | None:
    """The facts of a stored InferenceService; None when it no longer loads."""
    body = {key: value for key, value in document.items() if key != "status"}
    try:
        isvc = resources.load(body)
    except KsrvError:
        return None
    if not isinstance(isvc, InferenceService):
        return None
    metadata = document["metadata"]
    namespace = metadata.get("namespace") or "default"
    annotations = dict(isvc.metadata.annotations or {})
    return ServiceFacts(metadata["name"], namespace, annotations, isvc.spec.predictor.storage_uri)


def users(
    caches: list[CacheRef], services: Iterable[ServiceFacts]
) -> dict[tuple[str, str, str], list[Document]]:
    """(kind, namespace, name) of each cache -> `{name, namespace}` of the InferenceServices
    it serves (KServe's `status.inferenceServices`)."""
    found: dict[tuple[str, str, str], list[Document]] = {}
    for service in services:
        ref = cache_for(service.storage_uri, service.namespace, service.annotations, caches)
        if ref is not None:
            entry = {"name": service.name, "namespace": service.namespace}
            found.setdefault((ref.kind, ref.namespace, ref.name), []).append(entry)
    return found


class ModelCopies:
    """The folder that holds every cached copy, named by storage key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def free_bytes(self) -> int:
        """Free space where copies go (on the nearest folder that exists yet)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def is_complete(self, key: str) -> bool:
        return self.path(key).is_dir()

    def local_path(self, ref: CacheRef, storage_uri: str) -> Path | None:
        """Where `storage_uri` is in `ref`'s copy; None until the copy is complete or when it
        does not hold that part (an HTTP file cached under a "folder" URI)."""
        if not self.is_complete(ref.key):
            return None
        subpath = ref.subpath(storage_uri)
        path = self.path(ref.key) / subpath if subpath else self.path(ref.key)
        if ".." in Path(subpath).parts or not path.exists():
            return None
        return path

    def with_copies(
        self, plan: ServicePlan, annotations: Mapping[str, str], caches: list[CacheRef]
    ) -> ServicePlan:
        """`plan` with the predictor reading a complete cached copy in place, when a cache
        serves it (KServe applies caches to the predictor's storageUri only)."""
        predictor = plan.components.get("predictor")
        if predictor is None or not isinstance(predictor.workload, ModelServer):
            return plan
        uri = predictor.workload.storage_uri
        ref = cache_for(uri, plan.namespace, annotations, caches)
        path = self.local_path(ref, uri) if ref is not None else None
        if path is None:
            return plan
        workload = dataclasses.replace(predictor.workload, storage_uri=str(path))
        components = {
            **plan.components,
            "predictor": dataclasses.replace(predictor, workload=workload),
        }
        return dataclasses.replace(plan, components=components)
