"""Standard-mode canaries in an InferenceService's status (ksrv.k8s.canary_status)."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.k8s import canary_status
from ksrv.k8s.context import Readiness
from tests.k8s_standard import custom, isvc, load

READY = {"status": {"readyReplicas": 1, "conditions": [
    {"type": "Available", "status": "True"},
    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}  # fmt: skip
FAILED = {"status": {"conditions": [
    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
     "message": "Deployment does not have minimum availability."}]}}  # fmt: skip


def _with_canaries(*names: str) -> Any:
    canaries = [{"trafficPercent": 10, "predictor": {"name": n, **custom(("http", 8080))}}
                for n in names]  # fmt: skip
    return load(isvc(canary=canaries))


def _deployment(name: str, seen: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name}, **seen}


@pytest.mark.parametrize(("seen", "status", "reason"), [
    ({"blue": READY, "green": READY}, "True", "AllCanariesReady"),
    ({"blue": READY}, "Unknown", "CanaryNotReady"),
    ({"blue": READY, "green": FAILED}, "False", "MinimumReplicasUnavailable"),
])  # fmt: skip
def test_canary_predictor_ready_is_every_canarys_deployment(
    seen: dict[str, dict[str, Any]], status: str, reason: str
) -> None:
    service = _with_canaries("blue", "green")
    deployments = {f"foo-{n}-predictor": _deployment(f"foo-{n}-predictor", s)
                   for n, s in seen.items()}  # fmt: skip
    found = canary_status.with_canaries({"conditions": []}, service, deployments, {}, 0.0)
    (ready,) = found["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == (
        "CanaryPredictorReady",
        status,
        reason,
    )
    entries = {c["name"]: c for c in found["canaryStatuses"]}
    assert entries["blue"]["ready"] is True and entries["blue"]["trafficPercent"] == 10
    assert entries["green"]["ready"] is (status == "True")
    assert entries["blue"]["modelStatus"]["states"]["targetModelState"] == "Loaded"


def test_what_the_renderer_reads_back_is_the_ready_canaries() -> None:
    service = _with_canaries("blue", "green")
    deployments = {"foo-blue-predictor": _deployment("foo-blue-predictor", READY)}
    found = canary_status.with_canaries({"conditions": []}, service, deployments, {}, 0.0)
    assert Readiness.from_status(found).canaries == frozenset({"blue"})


def test_a_service_without_canaries_keeps_its_status_as_it_is() -> None:
    status = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert canary_status.with_canaries(status, load(isvc()), {}, {}, 0.0) is status
