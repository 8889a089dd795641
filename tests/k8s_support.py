"""Strict offline validation of rendered Kubernetes objects (tier 1 of ../shared/k8s/TESTING.md).

Built-in kinds are checked by kubernetes-validate against Kubernetes 1.32's schemas, strictly
(unknown fields are errors); custom resources (Knative, Istio, Gateway API, KEDA, KServe's own)
against the real CRD schemas in ../shared/schemas, with the reference validator kept there.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCHEMAS = SHARED / "schemas"
KUBERNETES_VERSION = "1.32"
_CRD_GROUPS = (
    "serving.knative.dev", "networking.istio.io", "gateway.networking.k8s.io", "keda.sh",
    "serving.kserve.io",
)  # fmt: skip


@cache
def _crd_registry() -> Any:
    tool = SCHEMAS / "tools" / "crdvalidate.py"
    if not tool.exists():
        pytest.skip(f"the CRD schemas are not here ({SCHEMAS})")
    spec = importlib.util.spec_from_file_location("crdvalidate", tool)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crdvalidate"] = module
    spec.loader.exec_module(module)
    return module.CRDRegistry.from_dir(str(SCHEMAS))


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Why `obj` would be refused by a strict API server (empty when it would be accepted)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group in _CRD_GROUPS:
        return [str(error) for error in _crd_registry().validate(obj, strict=True)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc)]
    return []


def assert_valid(objects: list[dict[str, Any]]) -> None:
    """Every object validates; the message names each object and its first error."""
    problems = [
        f"{o.get('kind')} {o.get('metadata', {}).get('name')}: {errors[0]}"
        for o in objects
        if (errors := validation_errors(o))
    ]
    assert not problems, "\n".join(problems)
