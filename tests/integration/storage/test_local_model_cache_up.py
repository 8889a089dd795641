"""LocalModelCache through a real `ksrv up`, driven by the `ksrv` command, with the model on a
local HTTP server that records every request: the cache downloads it ahead of time, an
InferenceService naming that URI becomes Ready and answers with no request reaching the
server, a URI that fails says why and heals on a retry, and deleting a cache removes its copy
once no other cache names the URI."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ksrv.api.local_model_cache import storage_key
from tests.conftest import wait_until
from tests.integration.storage.conftest import HTTPStore
from tests.models import IRIS_ROWS, iris_expected, sklearn_iris
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)


def local_model_cache(name: str, uri: str, namespace: str | None = None) -> dict:
    kind = "LocalModelNamespaceCache" if namespace else "LocalModelCache"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {"sourceModelUri": uri, "modelSize": "1Mi", "nodeGroups": ["workers"]},
    }


def iris_isvc(name: str, uri: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


def requests_to(store: HTTPStore, url: str) -> int:
    """HEADs and GETs the server saw for `url` (a listing or a download)."""
    path = url.removeprefix(store.url)
    return sum(1 for line in store.log if line.split(" ")[1].startswith(path))


@pytest.fixture
def platform(isolated_env: Path, tmp_path: Path) -> Iterator[LocalKsrv]:
    (tmp_path / "state").mkdir()
    running = LocalKsrv(tmp_path / "state").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def iris_tarball(tmp_path: Path) -> bytes:
    model = sklearn_iris(tmp_path / "iris")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(model / "model.joblib", arcname="model.joblib")
    return buffer.getvalue()


def cache_doc(platform: LocalKsrv, kind: str, name: str, namespace: str = "") -> dict:
    args = ("-n", namespace) if namespace else ()
    return json.loads(platform.cli("get", kind, name, *args, "-o", "json"))


def node_state(platform: LocalKsrv, name: str) -> str | None:
    states = cache_doc(platform, "lmc", name).get("status", {}).get("nodeStatus") or {}
    return next(iter(states.values()), None)


def test_a_cached_model_serves_with_no_download_and_its_copy_goes_with_the_cache(
    platform, http_store, iris_tarball
):
    url = http_store.put("iris.tar.gz", iris_tarball)
    assert "created" in platform.apply([local_model_cache("iris", url)])
    wait_until(lambda: node_state(platform, "iris") == "NodeDownloaded", "the copy downloaded")
    copy = platform.state_dir / "localmodels" / storage_key(url)
    assert (copy / "model.joblib").is_file()
    fetched = requests_to(http_store, url)
    assert fetched >= 1

    platform.apply([iris_isvc("cached-iris", url)], "--wait")
    response = platform.http.post(
        f"{platform.gateway}/serving/default/cached-iris/v1/models/cached-iris:predict",
        json={"instances": IRIS_ROWS},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == iris_expected(IRIS_ROWS)[0]
    assert requests_to(http_store, url) == fetched, "the replica read the cached copy"

    wait_until(
        lambda: cache_doc(platform, "lmc", "iris")["status"].get("inferenceServices"),
        "the cache lists its InferenceService",
    )
    status = cache_doc(platform, "lmc", "iris")["status"]
    assert status["inferenceServices"] == [{"name": "cached-iris", "namespace": "default"}]
    assert status["copies"] == {"available": 1, "total": 1, "failed": 0}
    table = platform.cli("get", "lmc").splitlines()
    assert table[0].split() == ["NAME", "URI", "SIZE", "STATE", "COPIES", "AGE"]
    assert table[1].split()[:5] == ["iris", url, "1Mi", "NodeDownloaded", "1/1"]
    described = platform.cli("describe", "localmodelcache", "iris")
    assert "NodeDownloaded" in described and "cached-iris" in described

    # KServe's webhooks: one LocalModelCache per URI; no deleting a cache in use.
    refused = platform.cli("apply", "-f", "-", check=False,
                           stdin=yaml.safe_dump(local_model_cache("iris-again", url)))  # fmt: skip
    assert f"LocalModelCache iris has the same StorageURI {url}" in refused
    refused = platform.cli("delete", "lmc", "iris", check=False)
    assert "LocalModelCache iris is being used by InferenceService default/cached-iris" in refused

    # Opting out rolls the predictor to a revision that downloads its URI again.
    opted_out = iris_isvc("cached-iris", url)
    opted_out["metadata"]["annotations"] = {"serving.kserve.io/disable-localmodel": "true"}
    platform.apply([opted_out])

    def latest_ready() -> str | None:
        status = platform.isvc("cached-iris").get("status", {})
        return status.get("components", {}).get("predictor", {}).get("latestReadyRevision")

    wait_until(lambda: latest_ready() == "cached-iris-predictor-00002", "the new revision", 60)
    assert requests_to(http_store, url) > fetched

    # The same URI cached for one namespace too: the copy is shared, and outlives `iris`.
    platform.apply([local_model_cache("iris-team", url, namespace="team")])
    assert "deleted" in platform.cli("delete", "lmc", "iris")
    # A cache applied after the delete has a status only once a whole pass ran after it.
    platform.apply([local_model_cache("marker", f"{http_store.url}/nothing-here.tar.gz")])
    wait_until(lambda: node_state(platform, "marker") is not None, "a pass after the delete")
    assert copy.is_dir()
    assert "deleted" in platform.cli("delete", "lmnc", "iris-team", "-n", "team")
    wait_until(lambda: not copy.exists(), "the copy removed with the last cache of its URI")


def test_a_failing_uri_says_why_and_is_retried(platform, http_store, iris_tarball):
    url = http_store.put("present.tar.gz", b"")
    missing = url.replace("present.tar.gz", "later.tar.gz")
    platform.apply([local_model_cache("later", missing)])
    wait_until(lambda: node_state(platform, "later") == "NodeDownloadError", "the failure")
    document = cache_doc(platform, "lmc", "later")
    [ready] = document["status"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "DownloadFailed")
    assert "404" in ready["message"] and "attempt 1 failed" in ready["message"]
    assert document["status"]["copies"]["failed"] == 1
    assert "NodeDownloadError" in platform.cli("get", "lmc", "later")

    # Published after the failure: the retry (after the back-off) finds it.
    (http_store.root / missing.removeprefix(http_store.url).lstrip("/")).write_bytes(iris_tarball)
    wait_until(lambda: node_state(platform, "later") == "NodeDownloaded", "the retry", 60)
    stored = yaml.safe_load(platform.cli("get", "lmc", "later", "-o", "yaml"))
    assert stored["status"]["copies"]["available"] == 1
