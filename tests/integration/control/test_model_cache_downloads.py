"""The model-cache reconciler against a real store and real `ksrv storage download`
processes: a copy appears in the background, a failure is reported and retried, a copy stays
while any cache names its URI, and a deleted cache takes its copy (and download) with it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from ksrv.api.local_model_cache import storage_key
from ksrv.control.model_caches import Backoff, ModelCacheReconciler
from ksrv.control.model_copies import ModelCopies
from ksrv.control.store import Store
from tests.conftest import HELD_TIMEOUT_S, wait_until
from tests.models import sklearn_iris

NODE = "this-node"


def cache(name: str, uri: str, namespace: str | None = None, size: str = "1Mi") -> dict:
    kind = "LocalModelNamespaceCache" if namespace else "LocalModelCache"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    spec = {"sourceModelUri": uri, "modelSize": size, "nodeGroups": ["workers"]}
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": kind, "metadata": metadata,
            "spec": spec}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    opened = Store(tmp_path / "ksrv.db")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def reconciler(store: Store, tmp_path: Path):
    running = ModelCacheReconciler(
        store,
        ModelCopies(tmp_path / "localmodels"),
        python=sys.executable,
        node=NODE,
        backoff=Backoff(first_s=0.2, max_s=0.2),
    )
    try:
        yield running
    finally:
        running.shutdown()


def pass_until(reconciler: ModelCacheReconciler, store: Store, kind: str, name: str, state: str,
               namespace: str = "") -> dict:  # fmt: skip
    """Reconcile until the cache's node is in `state`; its status."""

    async def run() -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELD_TIMEOUT_S
        while True:
            await reconciler.reconcile_all()
            status = store.get(kind, namespace, name).get("status") or {}
            if status.get("nodeStatus", {}).get(NODE) == state:
                return status
            assert loop.time() < deadline, f"{name} never reached {state}: {status}"
            await asyncio.sleep(0.05)

    return asyncio.run(run())


def test_a_cache_downloads_in_the_background_and_reports_downloaded(store, reconciler, tmp_path):
    source = sklearn_iris(tmp_path / "model")
    store.create(cache("iris", str(source)))
    status = pass_until(reconciler, store, "LocalModelCache", "iris", "NodeDownloaded")
    copy = tmp_path / "localmodels" / storage_key(str(source))
    assert (copy / "model.joblib").read_bytes() == (source / "model.joblib").read_bytes()
    assert status["copies"] == {"available": 1, "total": 1, "failed": 0}
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Downloaded")
    assert str(copy) in ready["message"]


def test_a_failed_download_says_why_and_heals_on_a_retry(store, reconciler, tmp_path):
    missing = tmp_path / "not-yet"
    store.create(cache("later", str(missing)))
    status = pass_until(reconciler, store, "LocalModelCache", "later", "NodeDownloadError")
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "DownloadFailed")
    assert f"{missing} does not exist" in ready["message"]
    assert "attempt 1 failed" in ready["message"] and "next try at" in ready["message"]
    assert status["copies"] == {"available": 0, "total": 1, "failed": 1}

    sklearn_iris(missing)
    status = pass_until(reconciler, store, "LocalModelCache", "later", "NodeDownloaded")
    assert "is cached in" in status["conditions"][0]["message"]


def test_a_copy_stays_while_another_cache_names_its_uri(store, reconciler, tmp_path):
    source = sklearn_iris(tmp_path / "model")
    copy = tmp_path / "localmodels" / storage_key(str(source))
    store.create(cache("iris", str(source)))
    store.create(cache("iris-team", str(source), namespace="team"))
    pass_until(reconciler, store, "LocalModelCache", "iris", "NodeDownloaded")
    pass_until(reconciler, store, "LocalModelNamespaceCache", "iris-team", "NodeDownloaded", "team")

    store.delete("LocalModelCache", "", "iris")
    asyncio.run(reconciler.reconcile_all())
    assert copy.is_dir(), "the namespace cache still names the URI"

    store.delete("LocalModelNamespaceCache", "team", "iris-team")
    asyncio.run(reconciler.reconcile_all())
    assert not copy.exists()
    assert list((tmp_path / "localmodels").iterdir()) == []


def test_deleting_a_cache_stops_its_download(store, reconciler, tmp_path):
    fifo = tmp_path / "never-ends"
    source = tmp_path / "blocked"
    source.mkdir()
    # A named pipe nobody writes to: the download blocks reading it until it is killed.
    os.mkfifo(fifo)
    (source / "model.joblib").symlink_to(fifo)
    store.create(cache("blocked", str(source)))
    pass_until(reconciler, store, "LocalModelCache", "blocked", "NodeDownloading")
    [download] = reconciler._downloads.values()
    pid = download.pid
    assert pid is not None and Path(f"/proc/{pid}").exists()

    store.delete("LocalModelCache", "", "blocked")

    def is_gone() -> bool:
        asyncio.run(reconciler.reconcile_all())  # each pass reaps what it killed
        return not Path(f"/proc/{pid}").exists()

    wait_until(is_gone, what="the killed download reaped")
    assert list((tmp_path / "localmodels").iterdir()) == []


def test_a_model_larger_than_the_free_disk_is_not_downloaded(store, reconciler, tmp_path):
    source = sklearn_iris(tmp_path / "model")
    store.create(cache("huge", str(source), size="8Ei"))
    status = pass_until(reconciler, store, "LocalModelCache", "huge", "NodeDownloadError")
    message = status["conditions"][0]["message"]
    assert "modelSize 8589934592.0 GiB is more than the" in message and "GiB free in" in message
    assert not (tmp_path / "localmodels" / storage_key(str(source))).exists()
    assert reconciler._downloads[storage_key(str(source))].pid is None
