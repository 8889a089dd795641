"""The labels and annotations of a component's workload objects, with KServe's precedence.

KServe unions them lowest first: the runtime's (predictor only), the InferenceService's, the
component's, then its own (`serving.kserve.io/inferenceservice`, `component`). Annotations on
the configured disallowed lists never travel from the resource to the objects, and the
`internal.serving.kserve.io/*` annotations KServe adds for its pod webhook (the storage URI)
are kept: they say where the model came from. Deployment, pod template, Service and scaler all
carry the same set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ksrv.k8s import naming, podspec
from ksrv.k8s.context import ComponentContext

STORAGE_URI_ANNOTATION: Final = "internal.serving.kserve.io/storage-initializer-sourceuri"
STORAGE_CONTAINER_ANNOTATION: Final = "internal.serving.kserve.io/storage-container-name"


@dataclass(frozen=True, slots=True)
class Meta:
    """Labels and annotations, to copy onto each object (the dicts are never shared)."""

    labels: dict[str, str]
    annotations: dict[str, str]

    def object_meta(self, name: str, namespace: str) -> dict[str, object]:
        meta: dict[str, object] = {"name": name, "namespace": namespace}
        meta["labels"] = dict(self.labels)
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return meta

    def template_meta(self) -> dict[str, object]:
        meta: dict[str, object] = {"labels": dict(self.labels)}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return meta


def component_meta(ctx: ComponentContext) -> Meta:
    """The labels and annotations of `ctx`'s objects (without Standard mode's `app` label)."""
    isvc = ctx.isvc
    spec = isvc.components()[ctx.component]
    runtime_labels: dict[str, str] = {}
    runtime_annotations: dict[str, str] = {}
    if ctx.component == "predictor" and ctx.runtime is not None:
        runtime_labels = dict(ctx.runtime.spec.labels)
        runtime_annotations = allowed(ctx.runtime.spec.annotations, ctx)
    annotations = allowed(isvc.metadata.annotations, ctx)
    if spec.storage_uri:
        annotations[STORAGE_URI_ANNOTATION] = spec.storage_uri
    container_name = getattr(spec, "storage_container_name", None)
    if container_name:
        annotations[STORAGE_CONTAINER_ANNOTATION] = container_name
    labels = {
        **runtime_labels,
        **podspec.isvc_labels(ctx),
        **(spec.labels or {}),
        naming.ISVC_LABEL: isvc.metadata.name,
        naming.COMPONENT_LABEL: ctx.component,
    }
    return Meta(labels, {**runtime_annotations, **annotations, **allowed(spec.annotations, ctx)})


def allowed(annotations: dict[str, str] | None, ctx: ComponentContext) -> dict[str, str]:
    """`annotations` less the configured disallowed keys."""
    blocked = ctx.config.disallowed_annotations
    return {k: v for k, v in (annotations or {}).items() if k not in blocked}
