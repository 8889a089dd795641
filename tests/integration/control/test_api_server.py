"""The management API on a real HTTPServer (127.0.0.1, free port), called with httpx."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ksrv.api import resources
from ksrv.control import api_paths
from ksrv.control.api_server import MAX_BODY_BYTES, MAX_POLL_S, ManagementAPI
from ksrv.control.store import Store
from tests.api_server_support import RunningAPI, running_api
from tests.conftest import HELD_TIMEOUT_S

ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
CSRS = "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes"


def isvc(
    name: str = "sklearn-iris", uri: str = "gs://kfserving-examples/models/sklearn/1.0/model"
) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


def runtime(name: str = "my-runtime") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": name},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True}],
            "containers": [{"name": "kserve-container", "image": "ksrv"}],
        },
    }


class FakeRouteFeed:
    """A route table whose version the test bumps; waits like the real one, and sets
    `waiting` once a long poll waits on it (so a test publishes or closes only then)."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {"version": 1, "services": []}
        self.changed = asyncio.Event()
        self.waiting = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        return self.table

    def publish(self, services: list[dict[str, Any]]) -> None:
        self.table = {"version": self.table["version"] + 1, "services": services}
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_newer(self, after: int, timeout_s: float) -> dict[str, Any] | None:
        self.waiting.set()
        while self.table["version"] <= after:
            try:
                await asyncio.wait_for(self.changed.wait(), timeout_s)
            except TimeoutError:
                return None
        return self.table


class FakeLogSource:
    def __init__(self, paths: dict[tuple[str, str, str], list[Path]]) -> None:
        self.paths = paths

    def log_paths(self, namespace: str, name: str, component: str) -> list[Path]:
        return self.paths.get((namespace, name, component), [])


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


@pytest.fixture
def changes(store) -> Callable[[], list[str]]:
    """The store's change feed so far, as change types."""
    return lambda: [change.type for change in store.changes_since(0)[0]]


@pytest.fixture
def feed() -> FakeRouteFeed:
    return FakeRouteFeed()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    (tmp_path / "r0.log").write_text("".join(f"line {i}\n" for i in range(1, 201)))
    (tmp_path / "r1.log").write_text("other replica\n")
    return tmp_path


@pytest.fixture
def running(store, feed, log_dir) -> Iterator[RunningAPI]:
    logs = FakeLogSource(
        {
            ("default", "sklearn-iris", "predictor"): [log_dir / "r0.log"],
            ("default", "two", "predictor"): [log_dir / "r0.log", log_dir / "r1.log"],
        }
    )
    api = ManagementAPI(store, routes=feed, logs=logs)
    with running_api(api) as running:
        yield running


@pytest.fixture
def client(running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=10) as client:
        yield client


def test_healthz_answers_200(client):
    assert client.get("/healthz").status_code == 200


def test_create_then_get_returns_the_stored_object_with_metadata(client, changes):
    created = client.post(ISVCS, json=isvc())
    assert created.status_code == 201
    body = created.json()
    assert body["metadata"]["namespace"] == "default"
    assert body["metadata"]["resourceVersion"] == "1"
    assert body["metadata"]["generation"] == 1
    assert body["metadata"]["uid"]
    got = client.get(f"{ISVCS}/sklearn-iris")
    assert got.status_code == 200
    assert got.json() == body
    assert changes() == ["ADDED"]


def test_create_twice_is_409_already_exists(client):
    client.post(ISVCS, json=isvc())
    again = client.post(ISVCS, json=isvc())
    assert again.status_code == 409
    status = again.json()
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == "AlreadyExists"
    assert status["code"] == 409
    assert status["details"]["name"] == "sklearn-iris"


def test_list_in_a_namespace_and_across_namespaces(client):
    client.post(ISVCS, json=isvc("a"))
    client.post(ISVCS, json=isvc("b"))
    other = "/apis/serving.kserve.io/v1beta1/namespaces/prod/inferenceservices"
    client.post(other, json=isvc("c"))
    listed = client.get(ISVCS).json()
    assert listed["kind"] == "InferenceServiceList"
    assert listed["apiVersion"] == "serving.kserve.io/v1beta1"
    assert listed["metadata"]["resourceVersion"] == "3"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a", "b"]
    everywhere = client.get("/apis/serving.kserve.io/v1beta1/inferenceservices").json()
    assert [item["metadata"]["name"] for item in everywhere["items"]] == ["a", "b", "c"]


def test_get_missing_is_a_404_status(client):
    response = client.get(f"{ISVCS}/nope")
    assert response.status_code == 404
    status = response.json()
    assert status["reason"] == "NotFound"
    assert status["details"] == {
        "kind": "inferenceservices",
        "group": "serving.kserve.io",
        "name": "nope",
    }
    assert "nope" in status["message"]


def test_unknown_paths_are_404(client):
    assert (
        client.get("/apis/serving.kserve.io/v1beta1/namespaces/default/things").status_code == 404
    )
    assert (
        client.get(
            "/apis/serving.kserve.io/v1alpha1/namespaces/default/inferenceservices"
        ).status_code
        == 404
    )
    assert client.get("/nothing").status_code == 404


def test_put_with_the_current_version_replaces_and_a_stale_one_is_409(client, changes):
    created = client.post(ISVCS, json=isvc()).json()
    created["spec"]["predictor"]["minReplicas"] = 2
    replaced = client.put(f"{ISVCS}/sklearn-iris", json=created)
    assert replaced.status_code == 200
    assert replaced.json()["metadata"]["generation"] == 2
    stale = client.put(f"{ISVCS}/sklearn-iris", json=created)
    assert stale.status_code == 409
    assert stale.json()["reason"] == "Conflict"
    assert changes() == ["ADDED", "MODIFIED"]


def test_put_of_a_missing_object_is_404(client):
    doc = isvc()
    doc["metadata"]["resourceVersion"] = "1"
    assert client.put(f"{ISVCS}/sklearn-iris", json=doc).status_code == 404


def test_apply_patch_creates_then_configures_then_reports_unchanged(client):
    headers = {"content-type": "application/apply-patch+yaml"}
    first = client.patch(f"{ISVCS}/sklearn-iris", content=yaml.safe_dump(isvc()), headers=headers)
    assert first.status_code == 201
    assert first.headers["x-ksrv-apply"] == "created"
    changed = client.patch(
        f"{ISVCS}/sklearn-iris", content=yaml.safe_dump(isvc(uri="gs://b")), headers=headers
    )
    assert changed.status_code == 200
    assert changed.headers["x-ksrv-apply"] == "configured"
    assert changed.json()["metadata"]["generation"] == 2
    same = client.patch(
        f"{ISVCS}/sklearn-iris", content=yaml.safe_dump(isvc(uri="gs://b")), headers=headers
    )
    assert same.headers["x-ksrv-apply"] == "unchanged"
    assert (
        same.json()["metadata"]["resourceVersion"] == changed.json()["metadata"]["resourceVersion"]
    )


def test_patch_with_another_patch_type_is_415(client):
    client.post(ISVCS, json=isvc())
    response = client.patch(
        f"{ISVCS}/sklearn-iris",
        json={"spec": {}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 415
    assert response.json()["reason"] == "UnsupportedMediaType"


def test_delete_answers_the_deleted_object_then_404(client, changes):
    created = client.post(ISVCS, json=isvc()).json()
    deleted = client.delete(f"{ISVCS}/sklearn-iris")
    assert deleted.status_code == 200
    assert deleted.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert client.get(f"{ISVCS}/sklearn-iris").status_code == 404
    assert client.delete(f"{ISVCS}/sklearn-iris").status_code == 404
    assert changes() == ["ADDED", "DELETED"]


def test_dry_run_validates_and_answers_without_storing(client, changes):
    response = client.post(f"{ISVCS}?dryRun=All", json=isvc())
    assert response.status_code == 201
    assert response.json()["metadata"]["name"] == "sklearn-iris"
    assert client.get(f"{ISVCS}/sklearn-iris").status_code == 404
    applied = client.patch(
        f"{ISVCS}/sklearn-iris?dryRun=All",
        content=yaml.safe_dump(isvc()),
        headers={"content-type": "application/apply-patch+yaml"},
    )
    assert applied.status_code == 201
    assert client.get(ISVCS).json()["items"] == []
    assert changes() == []
    invalid = client.post(
        f"{ISVCS}?dryRun=All",
        json={"kind": "InferenceService", "metadata": {"name": "x"}, "spec": {}},
    )
    assert invalid.status_code == 422


def test_dry_run_delete_keeps_the_object(client):
    client.post(ISVCS, json=isvc())
    assert client.delete(f"{ISVCS}/sklearn-iris?dryRun=All").status_code == 200
    assert client.get(f"{ISVCS}/sklearn-iris").status_code == 200


def test_an_unknown_dry_run_value_is_400(client):
    assert client.post(f"{ISVCS}?dryRun=Yes", json=isvc()).status_code == 400


def test_yaml_in_and_yaml_out(client):
    response = client.post(
        ISVCS,
        content=yaml.safe_dump(isvc()),
        headers={"content-type": "application/yaml", "accept": "application/yaml"},
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(response.text)["metadata"]["name"] == "sklearn-iris"
    missing = client.get(f"{ISVCS}/nope", headers={"accept": "application/yaml"})
    assert yaml.safe_load(missing.text)["reason"] == "NotFound"


def test_invalid_resource_is_422_with_field_causes(client):
    bad = isvc()
    del bad["spec"]["predictor"]
    response = client.post(ISVCS, json=bad)
    assert response.status_code == 422
    status = response.json()
    assert status["reason"] == "Invalid"
    assert status["code"] == 422
    causes = status["details"]["causes"]
    assert causes and all({"field", "message"} <= set(cause) for cause in causes)
    assert any(cause["field"].startswith("spec.predictor") for cause in causes)


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"{not json", "application/json"),
        (b"a: [unclosed", "application/yaml"),
        (b"- just\n- a list\n", "application/yaml"),
        (b"\xff\xfe", "application/json"),
        (b"a: 1\n---\nb: 2\n", "application/yaml"),
        (b"", "application/json"),
    ],
)
def test_garbage_bodies_are_400_never_500(client, content, content_type):
    response = client.post(ISVCS, content=content, headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"


def test_kind_or_namespace_or_name_not_matching_the_url_is_400(client):
    assert client.post(CSRS, json=isvc()).status_code == 400
    wrong_namespace = isvc()
    wrong_namespace["metadata"]["namespace"] = "prod"
    response = client.post(ISVCS, json=wrong_namespace)
    assert response.status_code == 400
    assert "namespace" in response.json()["message"]
    other_name = isvc("other")
    other_name["metadata"]["resourceVersion"] = "1"
    assert client.put(f"{ISVCS}/sklearn-iris", json=other_name).status_code == 400
    wrong_version = isvc()
    wrong_version["apiVersion"] = "serving.kserve.io/v1alpha1"
    assert client.post(ISVCS, json=wrong_version).status_code == 400


def test_methods_a_path_does_not_take_are_405(client):
    assert client.put(ISVCS, json=isvc()).status_code == 405
    assert client.delete(ISVCS).status_code == 405
    response = client.post(f"{ISVCS}/sklearn-iris", json=isvc())
    assert response.status_code == 405
    assert response.json()["reason"] == "MethodNotAllowed"
    all_namespaces = "/apis/serving.kserve.io/v1beta1/inferenceservices"
    assert client.post(all_namespaces, json=isvc()).status_code == 405


def test_cluster_scoped_runtimes_live_without_a_namespace(client):
    created = client.post(CSRS, json=runtime())
    assert created.status_code == 201
    assert "namespace" not in created.json()["metadata"]
    assert client.get(f"{CSRS}/my-runtime").status_code == 200
    names = [i["metadata"]["name"] for i in client.get(CSRS).json()["items"]]
    assert names[-1] == "my-runtime" and "ksrv-sklearn" in names
    namespaced = "/apis/serving.kserve.io/v1alpha1/namespaces/default/clusterservingruntimes"
    assert client.get(namespaced).status_code == 404


def test_status_subresource_reads_and_replaces_status_only(client):
    created = client.post(ISVCS, json=isvc()).json()
    body = {
        "metadata": {"name": "sklearn-iris"},
        "status": {"url": "http://sklearn-iris.default.example.com"},
    }
    updated = client.put(f"{ISVCS}/sklearn-iris/status", json=body)
    assert updated.status_code == 200
    assert updated.json()["status"]["url"].startswith("http://sklearn-iris")
    assert updated.json()["metadata"]["generation"] == created["metadata"]["generation"]
    assert client.get(f"{ISVCS}/sklearn-iris/status").json()["status"] == body["status"]


def test_too_large_bodies_are_413(client):
    response = client.post(ISVCS, content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413


def test_routes_answer_at_once_for_an_older_version(client):
    response = client.get("/ksrv/v1/routes", params={"after": 0})
    assert response.status_code == 200
    assert response.json()["version"] == 1


def test_routes_long_poll_answers_304_when_nothing_newer(client):
    response = client.get("/ksrv/v1/routes", params={"after": 1, "timeout_s": 0.1})
    assert response.status_code == 304


def pending_long_poll(client: httpx.Client, feed: FakeRouteFeed) -> Future[httpx.Response]:
    """A `GET /ksrv/v1/routes` that is waiting in the API for a newer table than version 1.

    It asks to wait far longer than the client waits for it: only the API being woken up
    (a publish, a close) can answer it before the client gives up.
    """
    pool = ThreadPoolExecutor(1)
    params = {"after": 1, "timeout_s": MAX_POLL_S}
    poll = pool.submit(client.get, "/ksrv/v1/routes", params=params, timeout=HELD_TIMEOUT_S)
    pool.shutdown(wait=False)
    assert feed.waiting.wait(HELD_TIMEOUT_S), "the long poll never reached the route feed"
    return poll


def test_routes_long_poll_wakes_up_on_a_new_table(client, running, feed):
    poll = pending_long_poll(client, feed)
    running.call(feed.publish, [{"name": "sklearn-iris"}])
    response = poll.result()
    assert response.status_code == 200
    assert response.json() == {"version": 2, "services": [{"name": "sklearn-iris"}]}


def test_routes_with_a_bad_after_is_400(client):
    assert client.get("/ksrv/v1/routes", params={"after": "x"}).status_code == 400


def test_logs_answer_the_tail_as_text(client):
    response = client.get("/ksrv/v1/namespaces/default/logs/sklearn-iris", params={"tail": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "line 198\nline 199\nline 200\n"
    everything = client.get("/ksrv/v1/namespaces/default/logs/sklearn-iris?tail=-1").text
    assert everything.count("\n") == 200
    default = client.get("/ksrv/v1/namespaces/default/logs/sklearn-iris").text
    assert default.count("\n") == 100


def test_logs_of_several_replicas_name_each_file(client):
    text = client.get("/ksrv/v1/namespaces/default/logs/two", params={"tail": 1}).text
    assert "==> r0.log <==\nline 200\n" in text
    assert "==> r1.log <==\nother replica\n" in text


def test_logs_of_an_unknown_component_or_service(client):
    assert (
        client.get("/ksrv/v1/namespaces/default/logs/sklearn-iris?component=x").status_code == 400
    )
    missing = client.get("/ksrv/v1/namespaces/default/logs/sklearn-iris?component=explainer")
    assert missing.status_code == 404


def test_put_breaking_an_update_rule_is_422(client):
    created = client.post(ISVCS, json=isvc()).json()
    created["spec"]["predictor"]["name"] = "renamed"
    response = client.put(f"{ISVCS}/sklearn-iris", json=created)
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == "spec.predictor.name"


def test_defaults_are_applied_before_storing(client):
    stored = client.post(ISVCS, json=isvc()).json()
    assert stored["spec"]["predictor"]["minReplicas"] == 1  # KServe's webhook default
    assert client.get(f"{ISVCS}/sklearn-iris").json()["spec"] == stored["spec"]


def test_the_served_kinds_are_the_kinds_the_api_layer_knows():
    served = {(t.kind, t.api_version, t.plural, t.is_namespaced) for t in api_paths.RESOURCE_TYPES}
    known = {(k.kind, k.api_version, k.plural, k.is_namespaced) for k in resources.KINDS.values()}
    assert served == known
    for resource_type in api_paths.RESOURCE_TYPES:
        for alias in resource_type.short_names:
            assert resources.kind_for(alias) == resource_type.kind


def test_close_answers_a_pending_long_poll_at_once(client, running, feed):
    poll = pending_long_poll(client, feed)
    running.call(running.api.close)
    assert poll.result().status_code == 304
    assert client.get("/ksrv/v1/routes", params={"after": 1, "timeout_s": 20}).status_code == 304


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_absurdly_nested_bodies_are_400_not_500(client, content_type):
    nested = "[" * 100_000 + "]" * 100_000
    answer = client.post(ISVCS, content=nested, headers={"content-type": content_type})
    assert answer.status_code == 400, answer.text
    assert answer.json()["kind"] == "Status"


@pytest.mark.parametrize("metadata", ["x", ["y"]])
def test_a_status_update_with_junk_metadata_is_400(client, metadata):
    assert client.post(ISVCS, json=isvc()).status_code == 201
    answer = client.put(f"{ISVCS}/sklearn-iris/status", json={"metadata": metadata, "status": {}})
    assert answer.status_code == 400, answer.text
