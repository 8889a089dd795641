"""s3:// against moto's S3 server on 127.0.0.1, counting object reads in its request log."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import DownloadOptions, download

boto3 = pytest.importorskip("boto3")


@pytest.fixture
def bucket(s3) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    client(s3).create_bucket(Bucket=name)
    return name


def client(store):
    return boto3.client("s3", endpoint_url=store.env["AWS_ENDPOINT_URL"], region_name="us-east-1")


def put(store, bucket: str, key: str, data: bytes) -> None:
    client(store).put_object(Bucket=bucket, Key=key, Body=data)


def object_gets(store, bucket: str) -> int:
    """GETs of objects (not listings, which are `GET /bucket?list-type=2`)."""
    return store.requests(rf"GET /{bucket}/[^? ]+ HTTP")  # werkzeug may colour the line


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_prefix_downloads_the_folder_and_not_its_lookalike_siblings(s3, bucket):
    put(s3, bucket, "iris/model.joblib", b"model")
    put(s3, bucket, "iris/extra/notes.txt", b"notes")
    put(s3, bucket, "iris-v2/model.joblib", b"other")

    path = download(f"s3://{bucket}/iris")

    assert files(path) == {"model.joblib": b"model", "extra/notes.txt": b"notes"}


def test_second_download_of_the_same_uri_reads_no_object(s3, bucket, tmp_path):
    put(s3, bucket, "iris/model.joblib", b"m" * 5000)
    put(s3, bucket, "iris/config.json", b"{}")

    first = download(f"s3://{bucket}/iris", tmp_path / "a")
    reads = object_gets(s3, bucket)
    second = download(f"s3://{bucket}/iris", tmp_path / "b")

    assert reads == 2
    assert object_gets(s3, bucket) == reads  # the listing only; zero object bytes
    assert files(first) == files(second)


def test_a_changed_object_is_downloaded_again(s3, bucket):
    put(s3, bucket, "m/model.joblib", b"v1")
    first = download(f"s3://{bucket}/m")
    put(s3, bucket, "m/model.joblib", b"v2")
    second = download(f"s3://{bucket}/m")
    assert (first / "model.joblib").read_bytes() == b"v1"
    assert (second / "model.joblib").read_bytes() == b"v2"


def test_a_big_object_arrives_in_parallel_ranges_intact(s3, bucket, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 123)
    put(s3, bucket, "big/weights.bin", data)
    options = DownloadOptions(part_bytes=1024 * 1024, concurrency=4)

    path = download(f"s3://{bucket}/big", tmp_path / "out", options)

    assert (
        hashlib.sha256((path / "weights.bin").read_bytes()).digest()
        == hashlib.sha256(data).digest()
    )
    assert object_gets(s3, bucket) == 6


def test_a_single_archive_object_is_unpacked(s3, bucket, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model/model.joblib")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"model"))
    put(s3, bucket, "archives/model.tar.gz", buffer.getvalue())

    path = download(f"s3://{bucket}/archives/model.tar.gz", tmp_path / "out")

    assert files(path) == {"model/model.joblib": b"model"}


def test_kserve_s3_endpoint_and_use_https_variables_reach_the_server(s3, bucket, monkeypatch):
    endpoint = s3.env["AWS_ENDPOINT_URL"]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("S3_ENDPOINT", endpoint.removeprefix("http://"))
    monkeypatch.setenv("S3_USE_HTTPS", "0")
    put(s3, bucket, "m/model.joblib", b"model")
    assert files(download(f"s3://{bucket}/m")) == {"model.joblib": b"model"}


def test_anonymous_credentials_read_a_public_object_without_keys(s3, bucket, monkeypatch):
    client(s3).put_object(
        Bucket=bucket, Key="public/model.joblib", Body=b"model", ACL="public-read"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("awsAnonymousCredential", "true")
    assert files(download(f"s3://{bucket}/public")) == {"model.joblib": b"model"}


def test_a_missing_bucket_names_the_uri_and_the_cause(s3, tmp_path):
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/m: bucket does not exist"):
        download("s3://no-such-bucket/m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_object_names_the_uri_and_the_cause(s3, bucket):
    with pytest.raises(StorageError, match=rf"s3://{bucket}/nothing: object does not exist"):
        download(f"s3://{bucket}/nothing")


def test_missing_credentials_say_which_variables_to_set(s3, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no credentials; set AWS_ACCESS_KEY_ID"):
        download(f"s3://{bucket}/m")


def test_a_download_over_the_size_limit_leaves_nothing_behind(s3, bucket, tmp_path):
    put(s3, bucket, "m/model.joblib", b"x" * 2000)
    with pytest.raises(StorageError, match="exceeds the limit of 1000 bytes"):
        download(f"s3://{bucket}/m", tmp_path / "out", DownloadOptions(max_bytes=1000))
    assert list(tmp_path.iterdir()) == []


def test_allow_and_ignore_patterns_filter_the_objects(s3, bucket, monkeypatch):
    put(s3, bucket, "m/model.safetensors", b"w")
    put(s3, bucket, "m/config.json", b"{}")
    put(s3, bucket, "m/pytorch_model.bin", b"old")
    monkeypatch.setenv("STORAGE_ALLOW_PATTERNS", '["*.safetensors", "*.json"]')
    monkeypatch.setenv("STORAGE_IGNORE_PATTERNS", "config.*")
    assert files(download(f"s3://{bucket}/m")) == {"model.safetensors": b"w"}
    assert object_gets(s3, bucket) == 1


def test_kserve_storage_config_secret_supplies_endpoint_and_keys(s3, bucket, monkeypatch):
    put(s3, bucket, "m/model.joblib", b"model")
    config = {
        "type": "s3",
        "access_key_id": "from-secret",
        "secret_access_key": "from-secret",
        "endpoint_url": s3.env["AWS_ENDPOINT_URL"],
        "region": "us-east-1",
    }
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("STORAGE_CONFIG", json.dumps(config))
    assert files(download(f"s3://{bucket}/m")) == {"model.joblib": b"model"}
