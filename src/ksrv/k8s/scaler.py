"""A Standard-mode component's scaler, by `serving.kserve.io/autoscalerClass` (§5.4, §6.2-6.3).

`hpa` (the default): an autoscaling/v2 HorizontalPodAutoscaler, min = max(1, minReplicas),
max = max(maxReplicas, min), metrics from `autoScaling.metrics` (Resource ones) or
`scaleMetric` + `scaleTarget`, CPU 80% utilisation by default. `keda`: a KEDA ScaledObject
(min may be 0; triggers from `autoScaling.metrics`; stabilisation windows from `behavior`, else
the ConfigMap's `autoscaler` section). `external` and `none`: no scaler (with `none` the
Deployment carries the replicas itself).
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.errors import ResourceInvalid
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.object_meta import Meta

AUTOSCALER_CLASS: Final = "serving.kserve.io/autoscalerClass"
HPA: Final = "hpa"
KEDA: Final = "keda"
EXTERNAL: Final = "external"
NONE: Final = "none"
CLASSES: Final = (HPA, KEDA, EXTERNAL, NONE)
DEFAULT_CPU_UTILIZATION: Final = 80


def autoscaler_class(annotations: dict[str, str]) -> str:
    """The component's class (its objects' annotations), `hpa` when unset."""
    value = annotations.get(AUTOSCALER_CLASS, HPA)
    if value not in CLASSES:
        raise ResourceInvalid(
            f"annotation {AUTOSCALER_CLASS}: {value!r} is not one of {', '.join(CLASSES)}",
            "InvalidSpec",
        )
    return value


def scaler_objects(
    ctx: ComponentContext, meta: Meta, min_replicas: int | None
) -> list[dict[str, Any]]:
    """The HPA or ScaledObject of `ctx` (none for `external`/`none`)."""
    kind = autoscaler_class(meta.annotations)
    if kind == HPA:
        return [_hpa(ctx, meta, min_replicas)]
    if kind == KEDA:
        return [_scaled_object(ctx, meta, min_replicas)]
    return []


def _hpa(ctx: ComponentContext, meta: Meta, min_replicas: int | None) -> dict[str, Any]:
    low = max(1, min_replicas or 0)
    high = max(int(ctx.raw.get("maxReplicas") or 0), low)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ctx.name},
        "minReplicas": low,
        "maxReplicas": high,
    }
    metrics = _hpa_metrics(ctx.raw)
    if metrics:
        spec["metrics"] = metrics
    spec["behavior"] = {}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta.object_meta(ctx.name, ctx.namespace),
        "spec": spec,
    }


def _hpa_metrics(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """KServe's rule: `autoScaling` (Resource metrics only) wins over scaleMetric/scaleTarget;
    memory gets no default target, so memory without a target means no metric."""
    auto = raw.get("autoScaling")
    if auto is not None:
        found = []
        for index, metric in enumerate(auto.get("metrics") or ()):
            resource = metric.get("resource")
            if resource is None or resource.get("name") not in ("cpu", "memory"):
                continue
            found.append(_hpa_resource(resource, f"autoScaling.metrics[{index}].resource"))
        return found
    name = raw.get("scaleMetric") or "cpu"
    target = raw.get("scaleTarget")
    if name == "cpu":
        target = DEFAULT_CPU_UTILIZATION if target is None else target
    elif name != "memory" or target is None:
        return []
    return [_resource_metric(name, {"type": "Utilization", "averageUtilization": int(target)})]


def _hpa_resource(resource: dict[str, Any], where: str) -> dict[str, Any]:
    name = resource["name"]
    target = resource.get("target") or {}
    if name == "cpu":
        utilization = target.get("averageUtilization", DEFAULT_CPU_UTILIZATION)
        return _resource_metric(name, {"type": "Utilization", "averageUtilization": utilization})
    kind = target.get("type")
    if kind == "Utilization" and target.get("averageUtilization") is not None:
        return _resource_metric(
            name, {"type": kind, "averageUtilization": target["averageUtilization"]}
        )
    if kind == "AverageValue" and target.get("averageValue") is not None:
        return _resource_metric(name, {"type": kind, "averageValue": str(target["averageValue"])})
    raise ResourceInvalid(
        f"{where}.target: a memory metric needs type Utilization with averageUtilization or "
        "AverageValue with averageValue",
        "InvalidSpec",
    )


def _resource_metric(name: str, target: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def _scaled_object(ctx: ComponentContext, meta: Meta, min_replicas: int | None) -> dict[str, Any]:
    low = 1 if min_replicas is None else min_replicas
    high = max(int(ctx.raw.get("maxReplicas") or 0), low)
    auto = ctx.raw.get("autoScaling") or {}
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": ctx.name},
        "triggers": _keda_triggers(auto.get("metrics") or ()),
        "minReplicaCount": low,
        "maxReplicaCount": high,
    }
    behavior = _keda_behavior(auto.get("behavior") or {}, ctx)
    if behavior:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta.object_meta(ctx.name, ctx.namespace),
        "spec": spec,
    }


def _keda_triggers(metrics: Any) -> list[dict[str, Any]]:
    triggers = []
    for index, metric in enumerate(metrics):
        where = f"autoScaling.metrics[{index}]"
        if metric.get("type") == "Resource":
            triggers.append(_keda_resource(metric.get("resource") or {}))
        elif metric.get("type") == "External":
            triggers.append(_keda_external(metric.get("external") or {}))
        else:
            # KServe scales PodMetric (opentelemetry) through an OpenTelemetryCollector sidecar
            # it creates; ksrv does not create one.
            raise ResourceInvalid(
                f"{where}.type: {metric.get('type')!r} is not supported by ksrv with KEDA "
                "(use Resource or External)",
                "InvalidSpec",
            )
    if not triggers:
        # KServe would write `triggers: null`, which the ScaledObject CRD refuses; ksrv scales
        # on KServe's default instead (CPU at 80% utilisation).
        triggers.append({
            "type": "cpu",
            "metadata": {"value": str(DEFAULT_CPU_UTILIZATION)},
            "metricType": "Utilization",
        })  # fmt: skip
    return triggers


def _keda_resource(resource: dict[str, Any]) -> dict[str, Any]:
    target = resource.get("target") or {}
    kind = target.get("type")
    value = "0"
    if kind == "Utilization":
        utilization = target.get("averageUtilization")
        if utilization is None and resource.get("name") == "cpu":
            utilization = DEFAULT_CPU_UTILIZATION
        if utilization is not None:
            value = str(utilization)
    elif kind == "AverageValue":
        value = _quantity(target.get("averageValue"))
    elif kind == "Value":
        value = _quantity(target.get("value"))
    trigger: dict[str, Any] = {"type": resource.get("name"), "metadata": {"value": value}}
    if kind:
        trigger["metricType"] = kind
    return trigger


def _keda_external(external: dict[str, Any]) -> dict[str, Any]:
    metric = external.get("metric") or {}
    backend = metric.get("backend", "")
    metadata = {
        "serverAddress": metric.get("serverAddress", ""),
        "query": metric.get("query", ""),
        "threshold": _quantity((external.get("target") or {}).get("value")),
    }
    if backend == "prometheus" and metric.get("namespace"):
        metadata["namespace"] = metric["namespace"]
    trigger: dict[str, Any] = {"type": backend, "metadata": metadata}
    # KServe's field: `authenticationRef: {authenticationRef: {name}, authModes}`.
    auth = external.get("authenticationRef") or {}
    if auth.get("authModes"):
        metadata["authModes"] = auth["authModes"]
    name = (auth.get("authenticationRef") or {}).get("name")
    if name:
        trigger["authenticationRef"] = {"name": name}
    return trigger


def _quantity(value: Any) -> str:
    """A target as the user wrote it ("10", "100Mi"); KServe's default is "0"."""
    return "0" if value is None or value == "" else str(value)


def _keda_behavior(behavior: dict[str, Any], ctx: ComponentContext) -> dict[str, Any]:
    windows = ctx.config.workloads
    found = {}
    for key, default in (("scaleDown", windows.scale_down_window_s),
                         ("scaleUp", windows.scale_up_window_s)):  # fmt: skip
        window = (behavior.get(key) or {}).get("stabilizationWindowSeconds", default)
        if window is not None:
            found[key] = {"stabilizationWindowSeconds": int(window)}
    return found
