"""Knative (serverless) mode: a Knative Service per component and an Istio VirtualService for
the top-level host (§5.5 of the KServe reference)."""

from __future__ import annotations

from typing import Any

from ksrv.k8s import naming
from ksrv.k8s.context import ComponentContext


def component_objects(ctx: ComponentContext, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The Knative Service of one component."""
    labels = {**naming.component_labels(ctx.isvc.metadata.name, ctx.component),
              **(ctx.raw.get("labels") or {})}  # fmt: skip
    return [{
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": ctx.name, "namespace": ctx.namespace, "labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": pod}},
    }]  # fmt: skip


def ingress_objects(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The service's VirtualService (filled in by the Knative-mode slice)."""
    return []
