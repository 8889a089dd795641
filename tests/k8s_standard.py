"""Helpers for the Standard-mode render tests: an InferenceService document, its render, and
finding one object in it."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ksrv.api import default_runtimes, resources
from ksrv.api.inference_service import InferenceService
from ksrv.errors import ResourceInvalid
from ksrv.k8s import config as k8s_config
from ksrv.k8s import render
from ksrv.k8s.context import Readiness

IMAGE = "example.com/model:1"


def container(*ports: tuple[str, int], name: str = "kserve-container") -> dict[str, Any]:
    """A custom container listening on `ports` (`(name, number)`)."""
    found: dict[str, Any] = {"name": name, "image": IMAGE}
    if ports:
        found["ports"] = [
            {"name": port_name, "containerPort": number, "protocol": "TCP"}
            if port_name
            else {"containerPort": number}
            for port_name, number in ports
        ]
    return found


def custom(*ports: tuple[str, int], **fields: Any) -> dict[str, Any]:
    """A component spec running one custom container."""
    return {"containers": [container(*ports)], **fields}


def isvc(
    predictor: dict[str, Any] | None = None,
    *,
    name: str = "foo",
    namespace: str = "ns",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An InferenceService document in Standard mode (a custom-container predictor by default)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "annotations": {"serving.kserve.io/deploymentMode": "Standard", **(annotations or {})},
    }
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor or custom(("http", 8080)), **spec},
    }


def load(document: dict[str, Any]) -> InferenceService:
    resource = resources.load(copy.deepcopy(document))
    assert isinstance(resource, InferenceService)
    return resource


def render_objects(
    document: dict[str, Any],
    config: k8s_config.ClusterConfig | None = None,
    readiness: Readiness | None = None,
) -> list[dict[str, Any]]:
    """The objects of one InferenceService; a problem is raised as the ResourceInvalid the
    render reported it from (so a test that expects none fails on it)."""
    rendered = render.render_inference_service(
        load(document),
        default_runtimes.default_runtimes(),
        config or k8s_config.ClusterConfig(),
        readiness=readiness,
    )
    if rendered.problems:
        raise ResourceInvalid("; ".join(rendered.problems))
    return rendered.objects


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found in {names(objects)}"
    return found[0]


def names(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def with_ingress(**changes: Any) -> k8s_config.ClusterConfig:
    base = k8s_config.ClusterConfig()
    return dataclasses.replace(base, ingress=dataclasses.replace(base.ingress, **changes))


def with_workloads(**changes: Any) -> k8s_config.ClusterConfig:
    base = k8s_config.ClusterConfig()
    return dataclasses.replace(base, workloads=dataclasses.replace(base.workloads, **changes))
