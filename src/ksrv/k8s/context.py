"""What the renderer knows about one component, and what it may look up in the cluster.

`ComponentContext` bundles the typed InferenceService, the component's neutral plan
(`control.plan.ComponentPlan`), its raw camelCase spec (the pod fields pass through as written),
the runtime it was placed on and the cluster's configuration. `ClusterView` is the one door to
live cluster state (service accounts and their secrets for storage credentials, the
ClusterStorageContainers): the operator answers from the API, `ksrv k8s render` from the
documents it was given, and pure tests from a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ksrv.api.inference_service import InferenceService
from ksrv.api.serving_runtime import Runtime
from ksrv.control.plan import ComponentPlan
from ksrv.k8s.config import ClusterConfig


class ClusterView(Protocol):
    """Read-only lookups the renderer needs from the cluster."""

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def storage_containers(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Documents:
    """A ClusterView over a fixed set of documents (a render from files, or a test)."""

    objects: list[dict[str, Any]] = field(default_factory=list)

    def _find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for document in self.objects:
            meta = document.get("metadata") or {}
            if document.get("kind") != kind or meta.get("name") != name:
                continue
            if namespace is None or meta.get("namespace", "default") == namespace:
                return document
        return None

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._find("ServiceAccount", namespace, name)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._find("Secret", namespace, name)

    def storage_containers(self) -> list[dict[str, Any]]:
        return [d for d in self.objects if d.get("kind") == "ClusterStorageContainer"]


@dataclass(frozen=True)
class Readiness:
    """What the operator has seen Ready; KServe gates some objects on it (the Ingress and
    HTTPRoutes wait for their components, only Ready canaries get traffic, the stable predictor
    shrinks by Ready canaries' replicas). `None` = steady state: everything Ready, what a
    render from files (`ksrv k8s render`) shows."""

    components: frozenset[str] | None = None
    canaries: frozenset[str] | None = None

    def is_component_ready(self, component: str) -> bool:
        return self.components is None or component in self.components

    def is_canary_ready(self, name: str) -> bool:
        return self.canaries is None or name in self.canaries

    @classmethod
    def from_status(cls, status: dict[str, Any] | None) -> Readiness:
        """KServe's sources: the `PredictorReady`/`TransformerReady`/`ExplainerReady`
        conditions and `canaryStatuses[].ready` of an InferenceService's status."""
        status = status or {}
        ready = {
            str(c.get("type", "")).removesuffix("Ready").lower()
            for c in status.get("conditions") or ()
            if c.get("status") == "True"
        }
        canaries = {
            str(c.get("name")) for c in status.get("canaryStatuses") or () if c.get("ready")
        }
        components = ready & {"predictor", "transformer", "explainer"}
        return cls(frozenset(components), frozenset(canaries))


@dataclass(frozen=True)
class ComponentContext:
    """One component of one InferenceService, as the renderer sees it.

    `name` is the objects' name (`foo-predictor`; `foo-{canary}-predictor` for a Standard-mode
    canary); `raw` is the component's spec as KServe's camelCase dict."""

    isvc: InferenceService
    component: str
    name: str
    plan: ComponentPlan
    raw: dict[str, Any]
    runtime: Runtime | None
    config: ClusterConfig
    cluster: ClusterView
    readiness: Readiness = Readiness()

    @property
    def namespace(self) -> str:
        return self.isvc.metadata.namespace or "default"

    @property
    def mode(self) -> str:
        return self.config.deployment_mode
