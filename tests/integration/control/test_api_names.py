"""What the management API refuses at the door, said once and in words: namespaces and names
that could reach a path, a header or argv (400 or 422), and bodies that do not parse. Objects
stored under older, looser rules still list and delete."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ksrv.cli.main import cli
from ksrv.control.api_server import ManagementAPI
from ksrv.control.isvc_reconciler import InferenceServiceReconciler
from ksrv.control.platforms.local import LocalPlatform
from ksrv.control.routes import RoutePublisher
from ksrv.control.store import Store
from tests.api_server_support import running_api

V1BETA1 = "/apis/serving.kserve.io/v1beta1"
RULE = (
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
)
# URL-encoded as a client sends them; the server decodes the path before routing.
BAD_NAMESPACES = {
    "..": "%2E%2E",
    "\x00": "%00",
    "x\r\nInjected: yes": "x%0D%0AInjected%3A%20yes",
    "Bad_NS!": "Bad_NS%21",
}


def isvc(name: str = "iris", namespace: str | None = None) -> dict:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://bucket/iris"}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": {"model": model}},
    }


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


@pytest.fixture
def server(store) -> Iterator[str]:
    with running_api(ManagementAPI(store)) as running:
        yield running.url


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=10) as client:
        yield client


@pytest.mark.parametrize("namespace", list(BAD_NAMESPACES), ids=repr)
def test_a_bad_namespace_in_the_url_is_400_explained_in_words(client, store, namespace):
    collection = f"{V1BETA1}/namespaces/{BAD_NAMESPACES[namespace]}/inferenceservices"
    created = client.post(collection, json=isvc())
    applied = client.patch(
        f"{collection}/iris",
        json=isvc(),
        headers={"content-type": "application/apply-patch+yaml"},
    )
    for response in (created, applied):
        assert response.status_code == 400, response.text
        status = response.json()
        assert status["reason"] == "BadRequest"
        assert status["message"] == f"namespace {namespace!r} is not valid: {RULE}"
    assert store.list("InferenceService") == []


def test_a_bad_namespace_for_logs_is_400_before_any_path_is_built(client):
    response = client.get("/ksrv/v1/namespaces/%2E%2E/logs/iris")
    assert response.status_code == 400
    assert "namespace '..' is not valid" in response.json()["message"]
    assert client.get("/ksrv/v1/namespaces/default/logs/%2E%2E").status_code == 400


@pytest.mark.parametrize(
    ("kind_path", "document"),
    [
        ("namespaces/default/inferenceservices", isvc("Bad_Name")),
        (
            "clusterservingruntimes",
            {
                "apiVersion": "serving.kserve.io/v1alpha1",
                "kind": "ClusterServingRuntime",
                "metadata": {"name": "../escape"},
                "spec": {"containers": [{"name": "kserve-container", "image": "x"}]},
            },
        ),
    ],
)
def test_a_bad_name_in_metadata_is_422_on_the_name_field(client, kind_path, document):
    version = "v1alpha1" if "runtimes" in kind_path else "v1beta1"
    response = client.post(f"/apis/serving.kserve.io/{version}/{kind_path}", json=document)
    assert response.status_code == 422, response.text
    (cause,) = response.json()["details"]["causes"]
    assert cause["field"] == "metadata.name"
    assert "is not valid: use at most" in cause["message"]


@pytest.mark.parametrize("namespace", ["..", "Bad_NS!", "x\r\nInjected: yes"], ids=repr)
def test_an_object_stored_under_a_bad_namespace_can_be_listed_and_deleted(store, server, namespace):
    # An existing database from before namespaces were checked.
    store.create(isvc("iris", namespace))
    runner = CliRunner()
    listed = runner.invoke(cli, ["get", "isvc", "-A", "--server", server])
    assert listed.exit_code == 0, listed.output
    assert "iris" in listed.stdout
    deleted = runner.invoke(cli, ["delete", "isvc", "iris", "-n", namespace, "--server", server])
    assert deleted.exit_code == 0, deleted.output
    assert store.list("InferenceService") == []


def test_the_reconciler_runs_nothing_for_a_stored_bad_namespace_and_says_why(store, tmp_path):
    store.create(isvc("iris", ".."))
    store.create(isvc("nul\x00", "default"))
    platform = LocalPlatform(tmp_path / "state")
    routes = RoutePublisher("example.com")
    reconciler = InferenceServiceReconciler(store, platform, routes, on_removed=lambda: None)
    asyncio.run(reconciler.reconcile_all())
    assert platform.observe() == {}
    assert routes.snapshot()["services"] == []
    assert not (tmp_path / "logs").exists() and not Path(tmp_path / "state").exists()
    for namespace, name, what in ((("..", "iris", "namespace '..'")),
                                  ("default", "nul\x00", "name 'nul\\x00'")):  # fmt: skip
        (ready,) = store.get("InferenceService", namespace, name)["status"]["conditions"]
        assert (ready["type"], ready["status"], ready["reason"]) == (
            "Ready",
            "False",
            "InvalidSpec",
        )
        assert ready["message"].startswith(f"{what} is not valid: use at most 63")


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"a: [unclosed", "application/yaml", "the body: not valid YAML or JSON: while parsing"),
        (b"{bad", "application/json", "the body is not valid JSON: Expecting property name"),
        (b"a: *x", "application/yaml", "the body: YAML aliases (*name) are not accepted"),
    ],
)
def test_a_bad_body_is_explained_once(client, content, content_type, message):
    response = client.post(
        f"{V1BETA1}/namespaces/default/inferenceservices",
        content=content,
        headers={"content-type": content_type},
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_a_runtime_stored_under_a_name_admission_now_refuses_still_loads():
    from ksrv.api import resources
    from ksrv.errors import ResourceInvalid

    stored = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": "My_Runtime"},
        "spec": {"containers": [{"name": "kserve-container", "image": "x"}]},
    }
    assert resources.load(stored).metadata.name == "My_Runtime"
    with pytest.raises(ResourceInvalid) as caught:
        resources.load(stored, is_strict=True)
    assert caught.value.field_errors == [
        ("metadata.name", "'My_Runtime' is not valid: use at most 253 lowercase letters, digits, "
         "'-' and '.', starting and ending with a letter or digit")
    ]  # fmt: skip
