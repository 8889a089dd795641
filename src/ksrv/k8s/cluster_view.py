"""What the operator reads from the cluster before it renders: the configuration, the runtimes
and the renderer's `ClusterView` (service accounts, secrets, ClusterStorageContainers).

Read on every pass, as KServe's controller does, so an edited ConfigMap or runtime takes effect
at the next reconcile without a restart. The ConfigMap `inferenceservice-config` lives in the
operator's namespace (`kserve` by default); without one, KServe's defaults apply.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from ksrv.api import default_runtimes, resources
from ksrv.api.kinds import GROUP
from ksrv.api.serving_runtime import ClusterServingRuntime, Runtime, ServingRuntime
from ksrv.errors import ResourceInvalid
from ksrv.k8s import config
from ksrv.k8s.client import Api

logger = logging.getLogger(__name__)

RUNTIME_VERSION: Final = f"{GROUP}/v1alpha1"


def cluster_config(api: Api, namespace: str) -> config.ClusterConfig:
    """The cluster's settings from `inferenceservice-config` in `namespace`.

    Raises:
        ResourceInvalid: a section of the ConfigMap is not what KServe's controller accepts.
    """
    found = api.get("v1", "ConfigMap", config.CONFIGMAP_NAME, namespace)
    if found is None:
        return config.ClusterConfig()
    data = found.get("data") or {}
    return config.from_configmap({str(k): str(v) for k, v in data.items()})


def runtimes(api: Api, namespace: str) -> list[Runtime]:
    """The runtimes an InferenceService in `namespace` may be placed on, as KServe sees them:
    the namespace's ServingRuntimes, the ClusterServingRuntimes, and ksrv's defaults that no
    ClusterServingRuntime of the same name replaces."""
    found: list[Runtime] = []
    for document in [
        *api.list(RUNTIME_VERSION, "ServingRuntime", namespace),
        *api.list(RUNTIME_VERSION, "ClusterServingRuntime"),
    ]:
        try:
            resource = resources.load(document)
        except ResourceInvalid as exc:  # KServe's webhook would have refused it
            logger.warning("runtime ignored: %s", exc)
            continue
        if isinstance(resource, ServingRuntime | ClusterServingRuntime):
            found.append(resource)
    names = {r.metadata.name for r in found if isinstance(r, ClusterServingRuntime)}
    defaults = default_runtimes.unreplaced(default_runtimes.default_runtimes(), names)
    return [*found, *defaults]


class ApiClusterView:
    """The renderer's `ClusterView`, answered from the API (each object read once a pass)."""

    def __init__(self, api: Api) -> None:
        self._api = api
        self._cache: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        self._containers: list[dict[str, Any]] | None = None

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("ServiceAccount", namespace, name)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("Secret", namespace, name)

    def storage_containers(self) -> list[dict[str, Any]]:
        if self._containers is None:
            self._containers = self._api.list(RUNTIME_VERSION, "ClusterStorageContainer")
        return self._containers

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        if key not in self._cache:
            self._cache[key] = self._api.get("v1", kind, name, namespace)
        return self._cache[key]
