"""revision_view: the served Revision built from a record, its service's status and replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksrv import errors
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.revision_view import RevisionView, conditions, revision_document
from ksrv.control.revisions import RevisionRecords
from ksrv.control.store import Store

NAME = "iris-predictor-00002"


def record(name: str = NAME, number: int = 2, **extra) -> dict:
    return {
        "apiVersion": "ksrv.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": "ns", "uid": "u-2",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"isvc": "iris", "component": "predictor", "number": number,
                 "fingerprint": "f00d"},
        **extra,
    }  # fmt: skip


def replica(index: int, phase: str, failures: int = 0, exit_code: int | None = None,
            failure: str | None = None) -> ReplicaState:  # fmt: skip
    return ReplicaState(index, 100 + index, 1000 + index, 2000 + index, phase, failures,
                        exit_code, failure, Path("/log"), 0.0, "127.0.0.1", failures)  # fmt: skip


def state(*replicas: ReplicaState, desired: int | None = None) -> RevisionState:
    count = len(replicas) if desired is None else desired
    spec = RevisionSpec("ns", "iris", "predictor", NAME, ("x",), replicas=count)
    return RevisionState(spec, list(replicas))


def isvc(traffic: list[dict], **component: object) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ns", "uid": "isvc-uid"},
        "status": {"components": {"predictor": {"traffic": traffic, **component}}},
    }


CANARY = [
    {"revisionName": NAME, "percent": 20, "tag": "latest", "latestRevision": True},
    {"revisionName": "iris-predictor-00001", "percent": 80, "tag": "prev",
     "latestRevision": False},
]  # fmt: skip


def by_type(found: list[dict]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in found}


def test_a_canary_revision_reads_knative_style():
    document = revision_document(record(), isvc(CANARY), state(replica(0, "Ready")))
    assert document["apiVersion"] == "ksrv.dev/v1"
    assert document["kind"] == "Revision"
    metadata = document["metadata"]
    assert (metadata["name"], metadata["namespace"]) == (NAME, "ns")
    assert metadata["labels"] == {
        "serving.kserve.io/inferenceservice": "iris",
        "component": "predictor",
        "serving.knative.dev/configuration": "iris-predictor",
        "serving.knative.dev/configurationGeneration": "2",
        "serving.knative.dev/routingState": "active",
    }
    assert metadata["ownerReferences"][0]["uid"] == "isvc-uid"
    status = document["status"]
    assert status["traffic"] == {"percent": 20, "tag": "latest", "latestRevision": True}
    assert (status["actualReplicas"], status["desiredReplicas"]) == (1, 1)
    assert status["replicas"] == [
        {"index": 0, "phase": "Ready", "restarts": 0, "address": "127.0.0.1:1000"}
    ]
    assert by_type(status["conditions"]) == {
        "Active": ("True", None),
        "ContainerHealthy": ("True", None),
        "Ready": ("True", None),
        "ResourcesAvailable": ("True", None),
    }
    assert "autoscaler" not in status


def test_a_revision_no_route_names_is_in_reserve_at_zero_percent():
    document = revision_document(record(), isvc(CANARY[1:]), state(replica(0, "Ready")))
    assert document["status"]["traffic"] == {"percent": 0}
    assert document["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"


def test_desired_replicas_are_what_the_platform_was_asked_to_run():
    starting = state(replica(0, "Ready"), replica(1, "Starting"), desired=3)
    status = revision_document(record(), isvc(CANARY), starting)["status"]
    assert (status["actualReplicas"], status["desiredReplicas"]) == (1, 3)


@pytest.mark.parametrize(
    ("replicas", "desired", "expected"),
    [
        # starting: nothing ready, nothing failed yet
        ([replica(0, "Starting")], None,
         {"Active": ("Unknown", "Activating"), "ContainerHealthy": ("Unknown", "Deploying"),
          "Ready": ("Unknown", "Deploying"), "ResourcesAvailable": ("Unknown", "Deploying")}),
        # crash-looping with exit code 1
        ([replica(0, "Failed", failures=3, exit_code=1, failure="exited with code 1\ntail")], None,
         {"Active": ("Unknown", "Activating"), "ContainerHealthy": ("False", "ExitCode1"),
          "Ready": ("False", "ExitCode1"), "ResourcesAvailable": ("Unknown", "Deploying")}),
        # killed by SIGKILL, restarting: Kubernetes says 137
        ([replica(0, "Starting", failures=1, exit_code=-9, failure="killed by SIGKILL")], None,
         {"Active": ("Unknown", "Activating"), "ContainerHealthy": ("False", "ExitCode137"),
          "Ready": ("False", "ExitCode137"), "ResourcesAvailable": ("Unknown", "Deploying")}),
        # a failed readiness probe: no exit code
        ([replica(0, "Failed", failures=1, failure="readiness probe failed 3 times")], None,
         {"Active": ("Unknown", "Activating"),
          "ContainerHealthy": ("False", "CrashLoopBackOff"),
          "Ready": ("False", "CrashLoopBackOff"), "ResourcesAvailable": ("Unknown", "Deploying")}),
        # one of two replicas crash-loops while the other serves: not healthy, still active
        ([replica(0, "Ready"), replica(1, "Failed", failures=2, exit_code=2, failure="boom")],
         None,
         {"Active": ("True", None), "ContainerHealthy": ("False", "ExitCode2"),
          "Ready": ("False", "ExitCode2"), "ResourcesAvailable": ("True", None)}),
        # scaled to zero: ready, but inactive
        ([], 0,
         {"Active": ("False", "NoTraffic"), "ContainerHealthy": ("True", None),
          "Ready": ("True", None), "ResourcesAvailable": ("True", None)}),
    ],
    ids=["starting", "exit-code", "signal", "probe", "one-of-two-crashing", "at-zero"],
)  # fmt: skip
def test_conditions_follow_the_replicas(replicas, desired, expected):
    assert by_type(conditions(state(*replicas, desired=desired))) == expected


def test_a_crash_loop_message_names_the_failure_and_replica():
    failure = "exited with code 1; log tail:\nTraceback (most recent call last):\n  ...\n"
    failure += "StorageError: no model\n"
    failing = replica(0, "Failed", failures=3, exit_code=1, failure=failure)
    healthy = next(c for c in conditions(state(failing)) if c["type"] == "ContainerHealthy")
    assert healthy["message"] == (
        "Container failed with: exited with code 1: StorageError: no model "
        "(replica 0, 3 failures in a row, restarting with back-off)"
    )


def test_a_revision_the_platform_does_not_run_is_unknown_with_zero_replicas():
    status = revision_document(record(), None, None)["status"]
    assert (status["actualReplicas"], status["desiredReplicas"]) == (0, 0)
    assert {c["status"] for c in status["conditions"]} == {"Unknown"}
    assert {c["reason"] for c in status["conditions"]} == {"NotRunning"}


def test_the_autoscalers_decision_comes_from_the_component_when_it_names_the_revision():
    decision = {"revisionName": NAME, "mode": "panic", "metric": "concurrency",
                "observedStable": 3.0, "observedPanic": 7.5, "desiredReplicas": 4}  # fmt: skip
    status = revision_document(record(), isvc(CANARY, autoscaler=decision), None)["status"]
    assert status["autoscaler"] == {k: v for k, v in decision.items() if k != "revisionName"}
    other = {**decision, "revisionName": "iris-predictor-00001"}
    assert "autoscaler" not in revision_document(record(), isvc(CANARY, autoscaler=other),
                                                 None)["status"]  # fmt: skip


def test_the_autoscalers_decision_on_the_record_itself_wins():
    own = {"mode": "stable", "metric": "rps", "observedStable": 1.0}
    with_status = record(status={"autoscaler": own})
    found = revision_document(with_status, isvc(CANARY, autoscaler={"revisionName": NAME}), None)
    assert found["status"]["autoscaler"] == own


def test_scribbled_service_status_is_ignored():
    junk = {"metadata": {"name": "iris", "namespace": "ns"}, "status": {"components": "junk"}}
    status = revision_document(record(), junk, None)["status"]
    assert status["traffic"] == {"percent": 0}


class Observed:
    """A platform snapshot, as `Platform.observe` returns it."""

    def __init__(self, states: dict) -> None:
        self.states = states

    def observe(self) -> dict:
        return self.states


def test_the_view_serves_records_of_the_old_ksrv_io_group_as_ksrv_dev(tmp_path):
    store = Store(tmp_path / "ksrv.db")
    try:
        old = record("iris-predictor-00001", 1)
        store.create({**old, "apiVersion": "ksrv.io/v1"})  # as ksrv wrote them before
        store.create(record())
        service = isvc(CANARY)
        store.create({**service, "spec": {}})
        store.update_status("InferenceService", "ns", "iris", service["status"])
        observed = {("ns", NAME): state(replica(0, "Ready"))}
        view = RevisionView(store, Observed(observed))
        listed = view.list("ns")
        assert [d["metadata"]["name"] for d in listed] == ["iris-predictor-00001", NAME]
        assert {d["apiVersion"] for d in listed} == {"ksrv.dev/v1"}
        assert [d["status"]["traffic"]["percent"] for d in listed] == [80, 20]
        assert view.list("elsewhere") == []
        assert view.list(None) == listed
        assert view.get("ns", NAME)["status"]["actualReplicas"] == 1
        with pytest.raises(errors.ResourceNotFound):
            view.get("ns", "iris-predictor-00009")
        # The old record is still the component's revision 1: the same rendering reuses it.
        records = RevisionRecords(store)
        assert (
            records.latest("ns", "iris", "predictor", "f00d", running=[])["metadata"]["name"]
            == NAME
        )
    finally:
        store.close()


def router(revision: str, *replicas: ReplicaState) -> RevisionState:
    spec = RevisionSpec("ns", "chain", "router", revision, ("ksrv", "router"), replicas=1)
    return RevisionState(spec, list(replicas))


def test_a_graphs_router_revisions_are_listed_with_the_route_on_the_ready_one(tmp_path):
    store = Store(tmp_path / "ksrv.db")
    try:
        graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph"}
        store.create({**graph, "metadata": {"name": "chain", "namespace": "ns"}, "spec": {}})
        # The new router is starting: the route stays on the old one, which answers.
        observed = {
            ("ns", "chain-router-00001"): router("chain-router-00001", replica(0, "Ready")),
            ("ns", "chain-router-00002"): router("chain-router-00002", replica(0, "Starting")),
        }
        view = RevisionView(store, Observed(observed))
        listed = view.list("ns")
        assert [d["metadata"]["name"] for d in listed] == [
            "chain-router-00001",
            "chain-router-00002",
        ]
        old, new = listed
        assert old["metadata"]["labels"] == {
            "serving.kserve.io/inferencegraph": "chain",
            "component": "router",
            "serving.knative.dev/configuration": "chain-router",
            "serving.knative.dev/configurationGeneration": "1",
            "serving.knative.dev/routingState": "active",
        }
        assert old["metadata"]["ownerReferences"][0]["kind"] == "InferenceGraph"
        assert old["status"]["traffic"] == {"percent": 100}
        assert new["status"]["traffic"] == {"percent": 0}
        assert new["metadata"]["labels"]["serving.knative.dev/routingState"] == "reserve"
        assert by_type(new["status"]["conditions"])["Ready"][0] == "Unknown"
        assert view.get("ns", "chain-router-00002") == new
        # Once the new one is ready, the route moves to it.
        observed[("ns", "chain-router-00002")] = router("chain-router-00002", replica(0, "Ready"))
        assert view.get("ns", "chain-router-00002")["status"]["traffic"] == {
            "percent": 100, "latestRevision": True,
        }  # fmt: skip
        assert view.list(None) == view.list("ns") and view.list("elsewhere") == []
    finally:
        store.close()
