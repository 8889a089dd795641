"""Standard (raw deployment) mode: the objects KServe's controller makes without Knative
(§5.4 of the KServe reference): per component a Deployment, a Service (service.py) and a scaler
(scaler.py); for the InferenceService an Ingress (ingress.py) or Gateway API HTTPRoutes
(httproute.py). Canaries (canary.py) are more predictors rendered through the same path.

`serving.kserve.io/stop: "true"` renders nothing: KServe deletes the workloads and routes of a
stopped InferenceService, and the operator prunes what is no longer rendered.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.api.inference_service import InferenceService
from ksrv.k8s import canary, httproute, ingress, naming, object_meta, podspec, scaler, service
from ksrv.k8s.context import ComponentContext

STOP_ANNOTATION: Final = "serving.kserve.io/stop"
VISIBILITY_LABEL: Final = "networking.kserve.io/visibility"
ROLLING_UPDATE: Final = {"maxUnavailable": "25%", "maxSurge": "25%"}


def component_objects(ctx: ComponentContext, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Deployment + Service (+ HPA or ScaledObject) of one component."""
    if is_stopped(ctx.isvc):
        return []
    meta = object_meta.component_meta(ctx)
    meta.labels[naming.APP_LABEL] = naming.app_label(ctx.name)
    low = min_replicas(ctx)
    return [
        _deployment(ctx, podspec.with_readiness_probes(pod), meta, low),
        service.service(ctx, pod, meta),
        *scaler.scaler_objects(ctx, meta, low),
    ]


def ingress_objects(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The InferenceService's Ingress, or its HTTPRoutes when the Gateway API is enabled;
    nothing when stopped, cluster-local or `disableIngressCreation`."""
    if not contexts:
        return []
    first = contexts[0]
    isvc, config = first.isvc, first.config.ingress
    if (
        is_stopped(isvc)
        or config.disable_ingress_creation
        or is_cluster_local(isvc, config.ingress_domain)
    ):
        return []
    if config.enable_gateway_api:
        return httproute.routes(contexts)
    return ingress.ingress(contexts)


def is_stopped(isvc: InferenceService) -> bool:
    return isvc.metadata.annotations.get(STOP_ANNOTATION, "").lower() == "true"


def is_cluster_local(isvc: InferenceService, ingress_domain: str) -> bool:
    """KServe keeps a service internal (no Ingress or routes) by label or cluster-local domain."""
    is_labelled = isvc.metadata.labels.get(VISIBILITY_LABEL) == "cluster-local"
    return is_labelled or ingress_domain == naming.CLUSTER_DOMAIN


def min_replicas(ctx: ComponentContext) -> int | None:
    """The component's minReplicas; a stable predictor's shrinks by its Ready canaries'."""
    if ctx.component == "predictor":
        return canary.stable_min_replicas(ctx.isvc, ctx.readiness)
    value = ctx.raw.get("minReplicas")
    return None if value is None else int(value)


def _deployment(
    ctx: ComponentContext, pod: dict[str, Any], meta: object_meta.Meta, low: int | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {naming.APP_LABEL: naming.app_label(ctx.name)}},
        "template": {"metadata": meta.template_meta(), "spec": pod},
    }
    strategy = ctx.raw.get("deploymentStrategy")
    if strategy is not None:
        spec["strategy"] = strategy  # the user's strategy wins, as written
    else:
        workloads = ctx.config.workloads
        rolling = dict(ROLLING_UPDATE)
        if workloads.max_surge:
            rolling["maxSurge"] = workloads.max_surge
        if workloads.max_unavailable:
            rolling["maxUnavailable"] = workloads.max_unavailable
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": rolling}
        spec["revisionHistoryLimit"] = 10
        spec["progressDeadlineSeconds"] = 600
    if low is not None and scaler.autoscaler_class(meta.annotations) == scaler.NONE:
        spec["replicas"] = low
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object_meta(ctx.name, ctx.namespace),
        "spec": spec,
    }
