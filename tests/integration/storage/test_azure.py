"""Azure Blob URIs against Azurite on 127.0.0.1, counting blob reads in its access log."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import DownloadOptions, download

blob = pytest.importorskip("azure.storage.blob")
ACCOUNT = "devstoreaccount1"


@pytest.fixture
def container(azure):
    service = blob.BlobServiceClient.from_connection_string(
        azure.env["AZURE_STORAGE_CONNECTION_STRING"]
    )
    return service.create_container(f"models-{uuid.uuid4().hex[:12]}")


def blob_gets(store, container) -> int:
    return store.requests(rf"GET /{ACCOUNT}/{container.container_name}/[^? ]+ HTTP")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_blob_url_downloads_the_folder_and_a_second_time_reads_nothing(
    azure, container, tmp_path
):
    container.upload_blob("iris/model.joblib", b"model")
    container.upload_blob("iris/sub/notes.txt", b"notes")
    container.upload_blob("iris-v2/model.joblib", b"other")
    uri = f"https://{ACCOUNT}.blob.core.windows.net/{container.container_name}/iris"

    first = download(uri, tmp_path / "a")
    reads = blob_gets(azure, container)
    second = download(uri, tmp_path / "b")

    assert files(first) == files(second) == {"model.joblib": b"model", "sub/notes.txt": b"notes"}
    assert reads == 2
    assert blob_gets(azure, container) == reads


def test_az_uri_and_a_big_blob_in_parallel_ranges(azure, container, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    container.upload_blob("big/weights.bin", data)
    options = DownloadOptions(part_bytes=1024 * 1024, concurrency=4)
    uri = f"az://{ACCOUNT}/{container.container_name}/big/weights.bin"
    path = download(uri, tmp_path / "out", options)
    assert (path / "weights.bin").read_bytes() == data
    assert blob_gets(azure, container) == 4


def test_a_missing_container_names_the_uri_and_the_cause(azure, tmp_path):
    uri = f"az://{ACCOUNT}/no-such-container/m"
    with pytest.raises(StorageError, match=rf"{uri}: container or blob does not exist"):
        download(uri, tmp_path / "out")


def test_a_wrong_account_key_is_access_denied(azure, container, tmp_path, monkeypatch):
    container.upload_blob("m/model.joblib", b"model")
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_KEY", "d3Jvbmc=")
    uri = f"az://{ACCOUNT}/{container.container_name}/m"
    with pytest.raises(StorageError, match="access denied"):
        download(uri, tmp_path / "out")
