"""KServe's InferenceService status from what the cluster reports (ksrv.k8s.status), as
tables: Deployment conditions -> component readiness, pods -> modelStatus, Knative Services ->
revisions and rollout tracking."""

from __future__ import annotations

from typing import Any

import pytest

from ksrv.api import default_runtimes, resources
from ksrv.control.plan import desired_state
from ksrv.k8s import status
from ksrv.k8s.config import ClusterConfig
from tests.k8s_cluster import isvc

NOW = 1_700_000_000.0


def _deployment(conditions: list[dict[str, str]] | None = None, **counts: int) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "sk-predictor"}, "status": dict(counts)}
    if conditions is not None:
        body["status"]["conditions"] = conditions
    return body


def _c(kind: str, state: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (None, (None, "Creating", "the Deployment is being created")),
        (_deployment(), (None, "Starting", "Deployment sk-predictor has no ready replicas yet")),
        (_deployment(readyReplicas=1), (True, "", "")),
        (_deployment([_c("Available", "True", "MinimumReplicasAvailable")]), (True, "", "")),
        (_deployment([_c("Available", "True"), _c("Progressing", "True", "ReplicaSetUpdated",
                                                   "rolling")]),
         (None, "ReplicaSetUpdated", "rolling")),
        (_deployment([_c("Available", "True"), _c("Progressing", "True",
                                                   "NewReplicaSetAvailable")]), (True, "", "")),
        (_deployment([_c("Progressing", "False", "ProgressDeadlineExceeded", "too slow")]),
         (False, "ProgressDeadlineExceeded", "too slow")),
        (_deployment([_c("Available", "False", "MinimumReplicasUnavailable", "none")]),
         (False, "MinimumReplicasUnavailable", "none")),
        (_deployment([_c("Available", "True"), _c("ReplicaFailure", "True", "FailedCreate", "q")]),
         (False, "FailedCreate", "q")),
    ],
)  # fmt: skip
def test_deployment_readiness_follows_kserves_raw_rules(
    deployment: dict[str, Any] | None, expected: status.Readiness
) -> None:
    assert status.deployment_readiness(deployment) == expected


def _pod(init: dict[str, Any] | None = None, main: dict[str, Any] | None = None,
         ready: bool = False) -> dict[str, Any]:  # fmt: skip
    pod_status: dict[str, Any] = {"phase": "Running" if ready else "Pending"}
    pod_status["conditions"] = [_c("Ready", "True" if ready else "False")]
    if init is not None:
        pod_status["initContainerStatuses"] = [{"name": "storage-initializer", **init}]
    if main is not None:
        pod_status["containerStatuses"] = [{"name": "kserve-container", **main}]
    return {"status": pod_status}


CRASHED = {
    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
    "lastState": {"terminated": {"reason": "Error", "message": "no model", "exitCode": 1}},
}
FAILED = {"reason": "ModelLoadFailed", "message": "no model", "exitCode": 1}


@pytest.mark.parametrize(
    ("pods", "is_ready", "target", "transition", "failure"),
    [
        ((), False, "Pending", "InProgress", None),
        ((_pod(init={"state": {"running": {}}}),), False, "Loading", "InProgress", None),
        ((_pod(init=CRASHED),), False, "FailedToLoad", "BlockedByFailedLoad", FAILED),
        ((_pod(init={"state": {"terminated": {"reason": "Completed"}}}, main=CRASHED),), False,
         "FailedToLoad", "BlockedByFailedLoad", FAILED),
        ((_pod(main={"state": {"running": {}}}, ready=True),), True, "Loaded", "UpToDate", None),
    ],
)  # fmt: skip
def test_model_status_follows_kserves_pod_rules(
    pods: tuple[dict[str, Any], ...],
    is_ready: bool,
    target: str,
    transition: str,
    failure: dict[str, Any] | None,
) -> None:
    seen = status.Observed(_deployment(readyReplicas=len(pods) if is_ready else 0), pods)
    found = status.model_status(None, None, seen, is_ready, False, {}, {})
    assert found["states"]["targetModelState"] == target
    assert found["transitionStatus"] == transition
    assert found.get("lastFailureInfo") == failure
    assert found["states"]["activeModelState"] == ("Loaded" if target == "Loaded" else "Pending")


def test_model_status_counts_ready_replicas_when_no_pods_are_listed() -> None:
    found = status.model_status(
        None, None, status.Observed(_deployment(readyReplicas=2)), True, False, {}, {}
    )
    assert found["copies"] == {"failedCopies": 0, "totalCopies": 2}
    assert found["states"]["targetModelState"] == "Loaded"


def test_a_loaded_model_stays_active_while_the_next_revision_loads() -> None:
    old = {"states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}
    found = status.model_status(
        None, None, status.Observed(_deployment(), (_pod(init={"state": {"running": {}}}),)),
        False, False, {}, old,
    )  # fmt: skip
    assert found["states"] == {"activeModelState": "Loaded", "targetModelState": "Loading"}


def _ksvc(ready: str, created: str, latest_ready: str, percent: int) -> dict[str, Any]:
    return {"status": {
        "conditions": [_c("Ready", ready), _c("RoutesReady", ready),
                       _c("ConfigurationsReady", ready)],
        "latestCreatedRevisionName": created, "latestReadyRevisionName": latest_ready,
        "url": "http://sk-predictor.ns1.example.com",
        "address": {"url": "http://sk-predictor.ns1.svc.cluster.local"},
        "traffic": [{"revisionName": latest_ready, "latestRevision": True, "percent": percent}],
    }}  # fmt: skip


def test_knative_component_tracks_the_revisions_rolled_out() -> None:
    first = status.knative_component(_ksvc("True", "sk-1", "sk-1", 100), {})
    assert first["latestRolledoutRevision"] == "sk-1" and "previousRolledoutRevision" not in first
    assert first["url"] == "http://sk-predictor.ns1.example.com"
    second = status.knative_component(_ksvc("True", "sk-2", "sk-2", 100), first)
    assert second["latestRolledoutRevision"] == "sk-2"
    assert second["previousRolledoutRevision"] == "sk-1"
    starting = status.knative_component(_ksvc("Unknown", "sk-3", "sk-2", 100), second)
    assert "url" not in starting and starting["latestCreatedRevision"] == "sk-3"


def _isvc_status(body: dict[str, Any], deployment: dict[str, Any] | None) -> dict[str, Any]:
    body = {**body, "metadata": {**body["metadata"], "namespace": "ns1", "generation": 3}}
    resource = resources.load(body)
    plan = desired_state(resource, default_runtimes.default_runtimes())
    observed = {"predictor": status.Observed(deployment)}
    return status.inference_service_status(resource, plan, ClusterConfig(), observed, {}, NOW)


def test_standard_service_is_ready_with_urls_once_its_deployment_is() -> None:
    ready = _deployment([_c("Available", "True")])
    found = _isvc_status(isvc("sk"), ready)
    kinds = {c["type"]: c["status"] for c in found["conditions"]}
    assert kinds == {"PredictorReady": "True", "IngressReady": "True", "Ready": "True"}
    assert found["url"] == "http://sk-ns1.example.com"
    assert found["address"] == {"url": "http://sk-predictor.ns1.svc.cluster.local"}
    assert found["observedGeneration"] == 3


def test_standard_service_waits_for_its_ingress_as_kserve_says() -> None:
    found = _isvc_status(isvc("sk"), _deployment())
    ingress = next(c for c in found["conditions"] if c["type"] == "IngressReady")
    ready = found["conditions"][-1]
    assert (ingress["status"], ingress["reason"]) == ("False", "Predictor ingress not created")
    assert (ready["type"], ready["status"]) == ("Ready", "False")
    assert "url" not in found and "address" not in found


def test_invalid_status_names_kserves_failure_reason() -> None:
    found = status.invalid_status(2, "InvalidSpec", "spec.predictor: bad", {}, NOW)
    assert found["conditions"][-1]["reason"] == "InvalidSpec"
    assert found["modelStatus"]["lastFailureInfo"] == {
        "reason": "InvalidPredictorSpec", "message": "spec.predictor: bad",
    }  # fmt: skip
