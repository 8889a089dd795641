"""graph_status: KServe's InferenceGraph status from what a pass found."""

from __future__ import annotations

from pathlib import Path

from ksrv.control import revisions
from ksrv.control.graph_plan import Waiting
from ksrv.control.graph_status import GraphView, failed_status, graph_status, stopped_status
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState

URL = "http://chain-ml.example.com"
ADDRESS = "http://127.0.0.1:8080/serving/ml/chain"
NOW = 0.0


def router(phase: str = "Ready", replicas: int = 1, failures: int = 0) -> RevisionState:
    spec = RevisionSpec("ml", "chain", revisions.ROUTER, "chain-router-00001", ("x",),
                        replicas=replicas)  # fmt: skip
    found = [
        ReplicaState(0, 1, 1000, None, phase, 0, 2 if failures else None,  # type: ignore[arg-type]
                     "exited with 2: bad graph" if failures else None, Path("/dev/null"), None,
                     "127.0.0.1", failures)
    ] if replicas else []  # fmt: skip
    return RevisionState(spec, found)


def view(**fields) -> GraphView:
    return GraphView(generation=2, url=URL, address_url=ADDRESS, **fields)


def conditions(status: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in status["conditions"]]


def test_a_ready_router_makes_the_graph_ready_with_knatives_conditions_and_its_url():
    ready = router()
    status = graph_status(view(latest=ready, routed=ready), {}, NOW)
    assert conditions(status) == [
        ("ConfigurationsReady", "True", ""),
        ("RoutesReady", "True", ""),
        ("Ready", "True", ""),
        ("Stopped", "False", ""),
    ]
    assert (status["url"], status["address"]["url"]) == (URL, ADDRESS)
    assert status["observedGeneration"] == 2


def test_standard_mode_has_only_ready_and_stopped():
    ready = router()
    status = graph_status(view(latest=ready, routed=ready, is_knative=False), {}, NOW)
    assert conditions(status) == [("Ready", "True", ""), ("Stopped", "False", "")]


def test_a_starting_router_is_unknown_and_has_no_url():
    starting = router(phase="Starting")
    status = graph_status(view(latest=starting, routed=starting), {}, NOW)
    assert conditions(status)[:3] == [
        ("ConfigurationsReady", "Unknown", "Deploying"),
        ("RoutesReady", "Unknown", "RevisionMissing"),
        ("Ready", "Unknown", "Deploying"),
    ]
    assert "url" not in status


def test_a_router_that_keeps_failing_says_why():
    failing = router(phase="Failed", failures=3)
    status = graph_status(view(latest=failing, routed=failing), {}, NOW)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RevisionFailed")
    assert "bad graph" in ready["message"]


def test_a_router_at_zero_is_ready_the_gateway_activates_it():
    zero = router(replicas=0)
    status = graph_status(view(latest=zero, routed=zero), {}, NOW)
    assert ("Ready", "True", "") in conditions(status)


def test_waiting_for_a_service_names_it_and_a_running_router_keeps_its_url():
    waiting = Waiting(
        "InferenceServiceNotFound", "InferenceService b (node root) is not found", "b"
    )
    status = graph_status(view(waiting=waiting), {}, NOW)
    assert conditions(status) == [
        ("Ready", "False", "InferenceServiceNotFound"),
        ("Stopped", "False", ""),
    ]
    assert "url" not in status
    ready = router()
    status = graph_status(view(waiting=waiting, latest=ready, routed=ready), {}, NOW)
    assert ("Ready", "False", "InferenceServiceNotFound") in conditions(status)
    assert status["url"] == URL


def test_transition_times_stay_while_a_condition_does():
    ready = router()
    first = graph_status(view(latest=ready, routed=ready), {}, 0.0)
    again = graph_status(view(latest=ready, routed=ready), first, 100.0)
    assert again == first


def test_stopped_and_failed_graphs():
    assert conditions(stopped_status(1, {}, NOW)) == [("Ready", "False", "Stopped"),
                                                     ("Stopped", "True", "")]  # fmt: skip
    failed = failed_status(1, "NameConflict", "taken", {}, NOW)
    assert conditions(failed) == [("Ready", "False", "NameConflict"), ("Stopped", "False", "")]
