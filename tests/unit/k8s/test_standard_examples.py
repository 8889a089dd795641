"""KServe's own examples that exercise Standard mode's parts (transformers, explainers, gRPC
ports, autoscaling, deployment strategies) render in Standard mode to objects that validate
strictly, with the Gateway API's HTTPRoutes and with an Ingress."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ksrv.errors import ResourceInvalid
from ksrv.k8s import config as k8s_config
from ksrv.k8s import render
from tests.k8s_support import SHARED, assert_valid

EXAMPLES = SHARED / "examples-kserve"
# What makes an example worth rendering here: it reaches past a single predictor Deployment.
FEATURES = ("canary:", "autoscalerClass", "transformer:", "explainer:", "grpc", "h2c",
            "deploymentStrategy", "autoScaling", "scaleMetric")  # fmt: skip


def examples() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    return [
        path
        for path in sorted(EXAMPLES.glob("*.yaml"))
        if "kind: InferenceService" in (text := path.read_text())
        and any(f in text for f in FEATURES)
    ]


def documents(path: Path) -> list[dict]:
    found = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return [
        d for d in found if str(d.get("apiVersion", "")).startswith(("serving.kserve.io/", "v1"))
    ]


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_example_renders_valid_standard_objects(path):
    base = k8s_config.ClusterConfig()
    gateway = dataclasses.replace(
        base, ingress=dataclasses.replace(base.ingress, enable_gateway_api=True)
    )
    try:
        rendered = render.render_documents(documents(path), gateway, mode="Standard")
    except ResourceInvalid as exc:
        pytest.skip(f"not an InferenceService ksrv accepts: {exc}")
    if not rendered.objects:
        pytest.skip(f"nothing ksrv renders: {rendered.problems}")
    assert_valid(rendered.objects)
    with_ingress = render.render_documents(documents(path), base, mode="Standard")
    assert_valid([o for o in with_ingress.objects if o["kind"] == "Ingress"])
