"""Standard (raw deployment) mode: the objects KServe's controller makes without Knative
(§5.4 of the KServe reference): per component a Deployment and a Service, a scaler (HPA by
default), and for the service an Ingress (or Gateway API HTTPRoutes)."""

from __future__ import annotations

from typing import Any

from ksrv.k8s import naming
from ksrv.k8s.context import ComponentContext


def component_objects(ctx: ComponentContext, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Deployment + Service (+ scaler) of one component."""
    labels = {**naming.component_labels(ctx.isvc.metadata.name, ctx.component),
              **(ctx.raw.get("labels") or {})}  # fmt: skip

    def meta() -> dict[str, Any]:
        return {"name": ctx.name, "namespace": ctx.namespace, "labels": dict(labels)}

    selector = {naming.APP_LABEL: labels[naming.APP_LABEL]}
    port = _first_port(pod)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def _first_port(pod: dict[str, Any]) -> int:
    for container in pod.get("containers") or ():
        for port in container.get("ports") or ():
            return int(port["containerPort"])
    return 8080


def ingress_objects(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The service's Ingress or HTTPRoutes (filled in by the Standard-mode slice)."""
    return []
