"""service_status: a pass's outcome -> KServe-shaped conditions, components and modelStatus."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv.control import service_status
from ksrv.control.plan import ComponentPlan, ModelServer
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.rollout import Rollout, Traffic
from ksrv.control.service_status import ComponentOutcome, ServiceView

T0, T1 = 0.0, 60.0
SERVER = ModelServer("sklearn", "/m", "ksrv-sklearn", True, "sklearn", True)
REPLICA = {"http": "127.0.0.1:41001", "grpc": ""}
VIEW = ServiceView(3, "http://iris-ns.example.com", "http://gw/serving/ns/iris", "predictor", [])


def state(*phases: str, failure: str | None = None, failures: int = 1) -> RevisionState:
    """A revision whose replicas are in `phases`; each not Ready has failed `failures` times in
    a row when a `failure` is given."""
    spec = RevisionSpec("ns", "iris", "predictor", "iris-predictor-00001", ("x",))
    replicas = [
        ReplicaState(i, 100 + i, 1000 + i, 2000 + i, phase, 0, 1 if phase == "Failed" else None,
                     failure if phase != "Ready" else None, Path("/log"), 0.0, "127.0.0.1",
                     failures if failure and phase != "Ready" else 0)
        for i, phase in enumerate(phases)
    ]  # fmt: skip
    return RevisionState(spec, replicas)


def conditions(status: dict) -> dict[str, dict]:
    return {condition["type"]: condition for condition in status["conditions"]}


def test_a_ready_predictor_makes_the_service_ready_and_loaded():
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[{"revision": "iris-predictor-00001", "percent": 100, "replicas": [REPLICA]}],
        is_ready=True,
        latest_state=state("Ready"),
    )
    status = service_status.service_status(VIEW, {"predictor": outcome}, {}, T0)
    assert {k: c["status"] for k, c in conditions(status).items()} == {
        "PredictorReady": "True", "IngressReady": "True", "Ready": "True"
    }  # fmt: skip
    assert status["url"] == VIEW.url and status["address"] == {"url": VIEW.address_url}
    assert status["clusterServingRuntimeName"] == "ksrv-sklearn"
    assert status["modelStatus"]["transitionStatus"] == "UpToDate"
    assert status["observedGeneration"] == 3


def test_a_failed_load_is_the_reason_the_service_is_not_ready():
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        latest_state=state("Failed", failure="no model file", failures=3),
        notes=("spec.predictor.logger: not here",),
    )
    status = service_status.service_status(VIEW, {"predictor": outcome}, {}, T0)
    found = conditions(status)
    assert found["Ready"]["reason"] == "ModelLoadFailed"
    assert "no model file" in found["Ready"]["message"]
    assert found["LocalLimitations"]["message"] == "spec.predictor.logger: not here"
    assert status["modelStatus"]["lastFailureInfo"]["exitCode"] == 1
    assert status["modelStatus"]["copies"] == {"failedCopies": 1, "totalCopies": 1}


def test_an_invalid_spec_says_its_reason():
    plan = ComponentPlan("predictor", error="no runtime", error_reason="NoSupportingRuntime")
    status = service_status.service_status(VIEW, {"predictor": ComponentOutcome(plan)}, {}, T0)
    assert conditions(status)["PredictorReady"]["reason"] == "NoSupportingRuntime"
    assert status["modelStatus"]["transitionStatus"] == "InvalidSpec"


def test_transition_times_stay_while_a_condition_keeps_its_status():
    old = service_status.stopped_status(1, {}, T0)
    again = service_status.stopped_status(1, old, T1)
    assert again == old
    starting = {"predictor": ComponentOutcome(ComponentPlan("predictor"))}
    first = service_status.service_status(VIEW, starting, {}, T0)
    later = service_status.service_status(VIEW, starting, first, T1)
    assert conditions(later)["Ready"]["lastTransitionTime"] == "1970-01-01T00:00:00Z"
    stopped = service_status.stopped_status(1, later, T1)
    assert conditions(stopped)["Ready"]["lastTransitionTime"] == "1970-01-01T00:01:00Z"


def test_a_revision_still_starting_is_unknown_not_false():
    starting = {"predictor": ComponentOutcome(ComponentPlan("predictor"))}
    found = conditions(service_status.service_status(VIEW, starting, {}, T0))
    assert {k: c["status"] for k, c in found.items()} == {
        "PredictorReady": "Unknown", "IngressReady": "Unknown", "Ready": "Unknown"
    }  # fmt: skip
    assert found["Ready"]["reason"] == "Starting"


def test_a_rollout_under_way_is_unknown_while_the_old_revision_serves():
    serving = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[{"revision": "iris-predictor-00001", "percent": 100, "replicas": [REPLICA]}],
        latest_state=state("Starting"),
    )
    found = conditions(service_status.service_status(VIEW, {"predictor": serving}, {}, T0))
    assert {k: c["status"] for k, c in found.items()} == {
        "PredictorReady": "Unknown", "IngressReady": "True", "Ready": "Unknown"
    }  # fmt: skip


def test_a_revision_starting_with_no_ready_replica_is_not_yet_routable():
    starting = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[{"revision": "iris-predictor-00001", "percent": 100, "replicas": []}],
        latest_state=state("Starting"),
    )
    found = conditions(service_status.service_status(VIEW, {"predictor": starting}, {}, T0))
    assert found["IngressReady"]["status"] == "Unknown" and found["Ready"]["status"] == "Unknown"


def test_a_revision_scaled_to_zero_stays_ready_as_in_knative():
    at_zero = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[{"revision": "iris-predictor-00001", "percent": 100, "replicas": []}],
        is_ready=True,  # the reconciler's word: the rolled-out revision runs 0 replicas
    )
    status = service_status.service_status(VIEW, {"predictor": at_zero}, {}, T0)
    assert {k: c["status"] for k, c in conditions(status).items()} == {
        "PredictorReady": "True", "IngressReady": "True", "Ready": "True"
    }  # fmt: skip
    assert status["modelStatus"]["states"]["activeModelState"] == "Loaded"


def test_component_status_reports_traffic_and_pointers():
    decided = Rollout(
        (Traffic("r2", 20, "latest"), Traffic("r1", 80, "prev")), rolled_out="r1",
        previous_rolled_out=None,
    )  # fmt: skip
    urls = service_status.ComponentURLs(
        "http://u", "http://gw/serving/ns/u", {"latest": "http://latest-u", "prev": "http://prev-u"}
    )
    status = service_status.component_status(decided, "r2", {}, ["r1", "r2"], urls)
    assert status == {
        "latestCreatedRevision": "r2",
        "latestReadyRevision": "r2",
        "latestRolledoutRevision": "r1",
        "traffic": [
            {"revisionName": "r2", "percent": 20, "latestRevision": True, "tag": "latest",
             "url": "http://latest-u"},
            {"revisionName": "r1", "percent": 80, "latestRevision": False, "tag": "prev",
             "url": "http://prev-u"},
        ],
        "url": "http://u",
        "address": {"url": "http://gw/serving/ns/u"},
    }  # fmt: skip


def test_a_revision_reached_only_by_its_tag_does_not_make_the_service_ready():
    # Rolled back to 0 while the previous revision restarts: the canary answers on its tag
    # URL only, so nothing serves the main URL.
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[
            {"revision": "iris-predictor-00002", "percent": 0, "tag": "latest",
             "replicas": [REPLICA]},
            {"revision": "iris-predictor-00001", "percent": 100, "tag": "prev", "replicas": []},
        ],
        latest_state=state("Ready"),
    )  # fmt: skip
    assert not outcome.is_serving
    found = conditions(service_status.service_status(VIEW, {"predictor": outcome}, {}, T0))
    assert found["IngressReady"]["status"] != "True"


@pytest.mark.parametrize(
    ("phases", "failures", "reason", "transition", "is_terminal"),
    [
        (("Failed",), 1, "ModelLoadRetrying", "InProgress", False),
        (("Starting",), 2, "ModelLoadRetrying", "InProgress", False),
        (("Failed",), 3, "ModelLoadFailed", "BlockedByFailedLoad", True),
        # restarting after its last try: still terminal, so the status does not flap
        (("Starting",), 3, "ModelLoadFailed", "BlockedByFailedLoad", True),
        # every replica out of tries, whichever phase it is in
        (("Failed", "Starting"), 3, "ModelLoadFailed", "BlockedByFailedLoad", True),
        (("Starting",), 0, "Starting", "InProgress", False),
    ],
)
def test_a_load_failing_on_every_try_is_terminal_and_one_with_tries_left_is_not(
    phases, failures, reason, transition, is_terminal
):
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        latest_state=state(*phases, failure="no model file" if failures else None,
                           failures=failures),
    )  # fmt: skip
    status = service_status.service_status(VIEW, {"predictor": outcome}, {}, T0)
    assert conditions(status)["Ready"]["reason"] == reason
    assert status["modelStatus"]["transitionStatus"] == transition
    failure = outcome.failure()
    assert (failure is not None and failure.is_terminal) == is_terminal
    if failures:
        assert status["modelStatus"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"
        assert "no model file" in status["modelStatus"]["lastFailureInfo"]["message"]


def test_ready_names_a_terminal_reason_before_a_transient_one():
    starting = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER), latest_state=state("Starting")
    )
    broken = ComponentOutcome(
        ComponentPlan("transformer", error="no command", error_reason="InvalidSpec")
    )
    status = service_status.service_status(
        VIEW, {"predictor": starting, "transformer": broken}, {}, T0
    )
    assert conditions(status)["PredictorReady"]["reason"] == "Starting"
    assert conditions(status)["Ready"]["reason"] == "InvalidSpec"
