"""The route table says `failed` (with the reason) for a component no replica will serve
until something changes, and only then: a revision still starting is left to be held."""

from __future__ import annotations

from pathlib import Path

from ksrv.api import conditions
from ksrv.control import isvc_routes, rollout
from ksrv.control.plan import ComponentPlan, ModelServer
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.service_status import ComponentOutcome

SERVER = ModelServer("sklearn", "/m", "ksrv-sklearn", True, "sklearn", True)
TRIES = conditions.LOAD_ATTEMPTS


def _state(*replicas: tuple[str, int]) -> RevisionState:
    """A revision whose replicas are (phase, failures in a row)."""
    spec = RevisionSpec("ns", "iris", "predictor", "iris-predictor-00001", ("x",))
    return RevisionState(
        spec,
        [
            ReplicaState(i, None, None, None, phase, failures, 1, "storageUri /nope does not exist",
                         Path("/log"), None, "127.0.0.1", failures_in_a_row=failures)
            for i, (phase, failures) in enumerate(replicas)
        ],
    )  # fmt: skip


def _route(outcome: ComponentOutcome) -> dict:
    return dict(isvc_routes.component_route(outcome))


def test_a_plan_that_cannot_run_is_failed_with_its_reason():
    plan = ComponentPlan("predictor", error="no runtime supports 'pmml2'",
                         error_reason="NoSupportingRuntime")  # fmt: skip
    route = _route(ComponentOutcome(plan))
    assert route["failed"] == "NoSupportingRuntime: no runtime supports 'pmml2'"
    assert route["backends"] == []


def test_a_revision_that_failed_to_load_on_every_try_is_failed_with_the_last_failure():
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        latest_state=_state(("Failed", TRIES), ("Starting", TRIES + 1)),
    )
    failed = _route(outcome)["failed"]
    assert failed.startswith("ModelLoadFailed: ")
    assert "storageUri /nope does not exist" in failed


def test_a_revision_still_starting_or_with_tries_left_is_not_failed():
    for replicas in ([("Starting", 0)], [("Failed", TRIES - 1)], [("Failed", TRIES), ("Ready", 0)]):
        outcome = ComponentOutcome(
            ComponentPlan("predictor", workload=SERVER), latest_state=_state(*replicas)
        )
        assert "failed" not in _route(outcome), replicas
    assert "failed" not in _route(ComponentOutcome(ComponentPlan("predictor", workload=SERVER)))


def test_a_component_that_still_routes_to_an_older_revision_is_not_failed():
    plan = ComponentPlan("predictor", error="bad", error_reason="InvalidSpec")
    old = {"revision": "iris-predictor-00001", "percent": 100.0,
           "replicas": [{"http": "127.0.0.1:1", "grpc": ""}]}  # fmt: skip
    assert "failed" not in _route(ComponentOutcome(plan, backends=[old]))


def test_a_failed_revision_listed_without_replicas_is_still_failed():
    outcome = ComponentOutcome(
        ComponentPlan("predictor", workload=SERVER),
        backends=[{"revision": "iris-predictor-00001", "percent": 100, "replicas": []}],
        latest_state=_state(("Failed", TRIES)),
    )
    assert _route(outcome)["failed"].startswith("ModelLoadFailed: ")


def test_revisions_at_zero_are_listed_without_replicas_with_the_concurrency_limit():
    decided = rollout.Rollout(
        (rollout.Traffic("iris-predictor-00001", 100),), "iris-predictor-00001",
        None,
    )  # fmt: skip
    at_zero = RevisionState(_state().spec, [])
    shares = [(share, share.percent) for share in decided.traffic]
    backends = isvc_routes.backends("ns", shares, {at_zero.spec.key: at_zero})
    assert backends == [{"revision": "iris-predictor-00001", "percent": 100, "replicas": []}]
    plan = ComponentPlan("predictor", workload=SERVER, container_concurrency=2)
    route = _route(ComponentOutcome(plan, backends=backends, latest_state=at_zero))
    assert route["container_concurrency"] == 2 and "failed" not in route
