"""gs:// against gcp-storage-emulator on 127.0.0.1, counting media downloads in its log."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import DownloadOptions, download

gcs_storage = pytest.importorskip("google.cloud.storage")


@pytest.fixture
def bucket(gcs):
    from google.auth.credentials import AnonymousCredentials

    client = gcs_storage.Client(project="test", credentials=AnonymousCredentials())
    return client.create_bucket(f"models-{uuid.uuid4().hex[:12]}")


def media_gets(store, bucket) -> int:
    return store.requests(rf"GET /download/storage/v1/b/{bucket.name}/o/")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_prefix_downloads_the_folder_and_a_second_time_reads_nothing(gcs, bucket, tmp_path):
    bucket.blob("iris/model.joblib").upload_from_string(b"model")
    bucket.blob("iris/sub/notes.txt").upload_from_string(b"notes")
    bucket.blob("iris-v2/model.joblib").upload_from_string(b"other")

    first = download(f"gs://{bucket.name}/iris", tmp_path / "a")
    reads = media_gets(gcs, bucket)
    second = download(f"gs://{bucket.name}/iris", tmp_path / "b")

    assert files(first) == files(second) == {"model.joblib": b"model", "sub/notes.txt": b"notes"}
    assert reads == 2
    assert media_gets(gcs, bucket) == reads


def test_a_big_blob_arrives_in_parallel_ranges_intact(gcs, bucket, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    bucket.blob("big/weights.bin").upload_from_string(data)
    options = DownloadOptions(part_bytes=1024 * 1024, concurrency=4)
    path = download(f"gs://{bucket.name}/big/weights.bin", tmp_path / "out", options)
    assert (path / "weights.bin").read_bytes() == data
    assert media_gets(gcs, bucket) == 4


def test_a_missing_bucket_names_the_uri_and_the_cause(gcs, tmp_path):
    with pytest.raises(StorageError, match="gs://no-such-bucket/m: bucket does not exist"):
        download("gs://no-such-bucket/m", tmp_path / "out")


def test_a_missing_object_names_the_uri(gcs, bucket, tmp_path):
    with pytest.raises(StorageError, match=rf"gs://{bucket.name}/nothing: no objects found"):
        download(f"gs://{bucket.name}/nothing", tmp_path / "out")
