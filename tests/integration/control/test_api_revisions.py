"""The management API serves revisions read-only under ksrv.dev/v1 (a real HTTPServer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ksrv.control.api_server import ManagementAPI
from ksrv.control.platforms.base import ReplicaState, RevisionSpec, RevisionState
from ksrv.control.revision_view import RevisionView
from ksrv.control.store import Store
from tests.api_server_support import running_api

REVISIONS = "/apis/ksrv.dev/v1/namespaces/default/revisions"
NAME = "iris-predictor-00001"


class Observed:
    """A platform snapshot, as `Platform.observe` returns it."""

    def __init__(self, states: dict) -> None:
        self.states = states

    def observe(self) -> dict:
        return self.states


def revision_record(name: str, namespace: str = "default") -> dict:
    return {
        "apiVersion": "ksrv.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"isvc": "iris", "component": "predictor", "number": 1, "fingerprint": "f"},
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    store = Store(tmp_path / "ksrv.db")
    store.create(revision_record(NAME))
    store.create(revision_record("other-predictor-00001", "elsewhere"))
    spec = RevisionSpec("default", "iris", "predictor", NAME, ("x",), replicas=2)
    replica = ReplicaState(0, 1, 1000, 2000, "Ready", 0, None, None, Path("/log"), 0.0, "127.0.0.1")
    observed = Observed({("default", NAME): RevisionState(spec, [replica])})
    api = ManagementAPI(store, revisions=RevisionView(store, observed))
    with running_api(api) as running, httpx.Client(base_url=running.url) as http:
        yield http
    store.close()


def test_revisions_are_listed_per_namespace_and_across_them(client):
    listed = client.get(REVISIONS).json()
    assert (listed["apiVersion"], listed["kind"]) == ("ksrv.dev/v1", "RevisionList")
    assert [item["metadata"]["name"] for item in listed["items"]] == [NAME]
    everywhere = client.get("/apis/ksrv.dev/v1/revisions").json()["items"]
    assert {item["metadata"]["namespace"] for item in everywhere} == {"default", "elsewhere"}


def test_one_revision_is_served_with_its_replicas(client):
    for path in (f"{REVISIONS}/{NAME}", f"{REVISIONS}/{NAME}/status"):
        found = client.get(path).json()
        assert found["metadata"]["name"] == NAME
        assert (found["status"]["actualReplicas"], found["status"]["desiredReplicas"]) == (1, 2)


def test_an_unknown_revision_is_404(client):
    answer = client.get(f"{REVISIONS}/iris-predictor-00009")
    assert answer.status_code == 404
    assert answer.json()["message"] == (
        'Revision "iris-predictor-00009" not found in namespace "default"'
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", REVISIONS), ("PUT", f"{REVISIONS}/{NAME}"), ("PATCH", f"{REVISIONS}/{NAME}"),
     ("DELETE", f"{REVISIONS}/{NAME}"), ("PUT", f"{REVISIONS}/{NAME}/status")],
)  # fmt: skip
def test_writes_are_refused_with_405_saying_why(client, method, path):
    answer = client.request(method, path, json=revision_record(NAME))
    assert answer.status_code == 405
    status = answer.json()
    assert status["kind"] == "Status"
    assert status["details"]["group"] == "ksrv.dev"
    assert "read-only" in status["message"]
    assert "change the InferenceService instead" in status["message"]
    assert client.get(f"{REVISIONS}/{NAME}").status_code == 200


def test_revisions_under_kserves_group_or_another_version_are_404(client):
    assert client.get("/apis/serving.kserve.io/v1/namespaces/default/revisions").status_code == 404
    assert client.get("/apis/ksrv.dev/v2/namespaces/default/revisions").status_code == 404


def test_a_control_plane_without_revisions_says_so(tmp_path):
    store = Store(tmp_path / "ksrv.db")
    with running_api(ManagementAPI(store)) as running:
        answer = httpx.get(f"{running.url}{REVISIONS}")
    store.close()
    assert answer.status_code == 404
    assert "serves no revisions" in answer.json()["message"]
