"""Knative (serverless) mode: a Knative Service per component (§5.5 and §5.6 of the KServe
reference), as KServe's `ksvc_reconciler.go` builds it.

The revision template carries the component's labels and annotations (runtime < InferenceService <
component, less KServe's disallowed keys) with the `autoscaling.knative.dev/*` annotations set
from `minReplicas`/`maxReplicas`/`scaleTarget`/`scaleMetric`; `rollout-duration` moves to the
Knative Service's own metadata. Traffic splits between the latest revision and the last rolled-out
one (read from the InferenceService's `status.components`, the operator's observation) when
`canaryTrafficPercent` is set. Knative routes one container port, so the pod keeps exactly one.
The service-level VirtualService lives in `virtual_service.py`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from ksrv.k8s import components, object_meta, virtual_service
from ksrv.k8s.context import ComponentContext

API_VERSION: Final = "serving.knative.dev/v1"
CLASS: Final = "autoscaling.knative.dev/class"
KPA: Final = "kpa.autoscaling.knative.dev"
TARGET: Final = "autoscaling.knative.dev/target"
METRIC: Final = "autoscaling.knative.dev/metric"
MIN_SCALE: Final = "autoscaling.knative.dev/min-scale"
MAX_SCALE: Final = "autoscaling.knative.dev/max-scale"
INITIAL_SCALE: Final = "autoscaling.knative.dev/initial-scale"
TAG_ROUTING: Final = "serving.kserve.io/enable-tag-routing"
# KServe's managedKsvcAnnotations: they belong on the Knative Service, not on its revisions.
KSVC_ANNOTATIONS: Final = (
    "serving.knative.dev/rollout-duration",
    "serving.knative.openshift.io/enablePassthrough",
)
# KServe's RevisionTemplateLabelDisallowedList: the visibility label stays on the ksvc.
DISALLOWED_TEMPLATE_LABELS: Final = frozenset({virtual_service.VISIBILITY_LABEL})
# Knative accepts these port names only (the name picks HTTP/1 or HTTP/2 cleartext).
_PORT_NAMES: Final = frozenset({"", "h2c", "http1"})
_GO_INT: Final = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi accepts


def component_objects(ctx: ComponentContext, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The Knative Service of one component."""
    meta = object_meta.component_meta(ctx)
    labels = meta.labels
    annotations = autoscaling_annotations(
        dict(meta.annotations),
        target=ctx.plan.autoscaling.scale_target,
        metric=ctx.plan.autoscaling.scale_metric,
        min_replicas=ctx.plan.autoscaling.min_replicas,
        max_replicas=ctx.plan.autoscaling.max_replicas,
    )
    ksvc_annotations = {k: annotations.pop(k) for k in KSVC_ANNOTATIONS if k in annotations}
    revision: dict[str, Any] = {}
    timeout = ctx.raw.get("timeout")
    if timeout is not None:
        # KServe: responseStartTimeoutSeconds follows timeoutSeconds when the user set it.
        revision["timeoutSeconds"] = timeout
        revision["responseStartTimeoutSeconds"] = timeout
    concurrency = ctx.raw.get("containerConcurrency")
    if concurrency is not None:
        revision["containerConcurrency"] = concurrency
    metadata: dict[str, Any] = {"name": ctx.name, "namespace": ctx.namespace, "labels": labels}
    if ksvc_annotations:
        metadata["annotations"] = ksvc_annotations
    status = _component_status(ctx)
    return [{
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {
                    "labels": template_labels(labels),
                    "annotations": annotations,
                },
                "spec": {**one_port(pod, ctx.plan.protocol, dict(ctx.plan.ports)), **revision},
            },
            "traffic": traffic(
                ctx.plan.canary_percent,
                status.get("latestRolledoutRevision"),
                is_tag_routing=annotations.get(TAG_ROUTING) == "true",
            ),
        },
    }]  # fmt: skip


def ingress_objects(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The service's VirtualService and the ExternalName Service for its top-level host."""
    return virtual_service.ingress_objects(contexts)


def autoscaling_annotations(
    annotations: Mapping[str, str],
    *,
    target: int | None,
    metric: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
) -> dict[str, str]:
    """KServe's SetAutoScalingAnnotations: KPA unless a class is set, min-scale always (default
    1), max-scale only when bounded, target and metric when given. An `initial-scale` that is
    not an integer, or is 0, is dropped as KServe's ValidateInitialScaleAnnotation drops it
    (Knative's default `allow-zero-initial-scale: false` is assumed)."""
    result = dict(annotations)
    initial = result.get(INITIAL_SCALE)
    if initial is not None and (not _GO_INT.fullmatch(initial) or int(initial) == 0):
        del result[INITIAL_SCALE]
    result.setdefault(CLASS, KPA)
    if target is not None:
        result[TARGET] = str(target)
    if metric is not None:
        result[METRIC] = metric
    result[MIN_SCALE] = str(1 if min_replicas is None else min_replicas)
    if max_replicas:
        result[MAX_SCALE] = str(max_replicas)
    return result


def traffic(
    canary_percent: int | None, rolled_out: str | None, *, is_tag_routing: bool
) -> list[dict[str, Any]]:
    """The Knative Service's traffic block (§5.6).

    With `canaryTrafficPercent` P and a revision already rolled out, P% goes to the latest
    revision and the rest to the rolled-out one (tagged `prev`; KServe tags it whether or not
    tag routing is on); otherwise all of it goes to the latest. `latest` is tagged only with
    `serving.kserve.io/enable-tag-routing: "true"`."""
    latest: dict[str, Any] = {"latestRevision": True, "percent": 100}
    if is_tag_routing:
        latest["tag"] = "latest"
    if canary_percent is None or not rolled_out:
        return [latest]
    latest["percent"] = canary_percent
    targets = [latest]
    if canary_percent < 100:
        targets.append({
            "revisionName": rolled_out,
            "latestRevision": False,
            "percent": 100 - canary_percent,
            "tag": "prev",
        })  # fmt: skip
    return targets


def template_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The revision template's labels: the visibility label stays on the Knative Service."""
    return {k: v for k, v in labels.items() if k not in DISALLOWED_TEMPLATE_LABELS}


def one_port(pod: dict[str, Any], protocol: str, ports: Mapping[str, int]) -> dict[str, Any]:
    """`pod` with exactly one container port (Knative's rule: one port across all containers,
    named '', `h2c` or `http1`): the first declared one, else the plan's HTTP port. A gRPC-only
    component's port is `h2c`: the declared gRPC port, else the plan's gRPC port. Knative sends
    every request to this port."""
    pod = copy.deepcopy(pod)
    containers = pod.get("containers") or []
    is_grpc = protocol.startswith("grpc")
    declared = [(c, p) for c in containers for p in c.get("ports") or ()]
    if not declared:
        key = "grpc" if is_grpc else "http"
        if key in ports and containers:
            port = {"containerPort": ports[key], "protocol": "TCP"}
            containers[0]["ports"] = [{"name": "h2c", **port} if is_grpc else port]
        return pod
    owner, chosen = declared[0]
    if is_grpc:
        owner, chosen = next(
            ((c, p) for c, p in declared if components.is_grpc_port(p)), declared[0]
        )
    port = dict(chosen)
    name = "h2c" if is_grpc or components.is_grpc_port(port) else str(port.get("name") or "")
    port.pop("name", None)
    if name in _PORT_NAMES and name:
        port["name"] = name
    for container in containers:
        container.pop("ports", None)
    owner["ports"] = [port]
    return pod


def _component_status(ctx: ComponentContext) -> dict[str, Any]:
    components = (ctx.isvc.status or {}).get("components") or {}
    status = components.get(ctx.component)
    return status if isinstance(status, dict) else {}
