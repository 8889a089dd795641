"""`ksrv serve --storage-uri` and `ksrv storage download`: every scheme serves a real model."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import KSRV, free_port
from tests.models import IRIS_ROWS, iris_expected


def publish_s3(request, model: Path) -> str:
    boto3 = pytest.importorskip("boto3")
    store = request.getfixturevalue("s3")
    client = boto3.client("s3", endpoint_url=store.env["AWS_ENDPOINT_URL"])
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.upload_file(str(model / "model.joblib"), bucket, "iris/model.joblib")
    return f"s3://{bucket}/iris"


def publish_gcs(request, model: Path) -> str:
    storage = pytest.importorskip("google.cloud.storage")
    from google.auth.credentials import AnonymousCredentials

    request.getfixturevalue("gcs")
    client = storage.Client(project="test", credentials=AnonymousCredentials())
    bucket = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}")
    bucket.blob("iris/model.joblib").upload_from_filename(str(model / "model.joblib"))
    return f"gs://{bucket.name}/iris"


def publish_azure(request, model: Path) -> str:
    blob = pytest.importorskip("azure.storage.blob")
    store = request.getfixturevalue("azure")
    service = blob.BlobServiceClient.from_connection_string(
        store.env["AZURE_STORAGE_CONNECTION_STRING"]
    )
    container = service.create_container(f"models-{uuid.uuid4().hex[:12]}")
    container.upload_blob("iris/model.joblib", (model / "model.joblib").read_bytes())
    return f"https://devstoreaccount1.blob.core.windows.net/{container.container_name}/iris"


def publish_http(request, model: Path) -> str:
    request.getfixturevalue("isolated_env")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(model / "model.joblib", arcname="model.joblib")
    return request.getfixturevalue("http_store").put("iris.tar.gz", buffer.getvalue())


def publish_hf(request, model: Path) -> str:
    pytest.importorskip("huggingface_hub")
    from tests.integration.storage.test_local_sources import hf_cache

    request.getfixturevalue("isolated_env")
    monkeypatch = request.getfixturevalue("monkeypatch")
    cache = hf_cache(request.getfixturevalue("tmp_path") / "hf", "org/iris", model)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return "hf://org/iris"


def publish_pvc(request, model: Path) -> str:
    request.getfixturevalue("isolated_env")
    request.getfixturevalue("monkeypatch").setenv("KSRV_PVC_ROOTS", f"models={model.parent}")
    return f"pvc://models/{model.name}"


PUBLISHERS = {
    "s3": publish_s3,
    "gs": publish_gcs,
    "azure": publish_azure,
    "https-tar.gz": publish_http,
    "hf": publish_hf,
    "pvc": publish_pvc,
}


def predict(url: str) -> list[int]:
    response = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


@pytest.mark.parametrize("scheme", list(PUBLISHERS))
def test_serve_downloads_the_storage_uri_then_answers(scheme, request, iris_dir, start_server):
    uri = PUBLISHERS[scheme](request, iris_dir)
    server = start_server(
        ["--model-format", "sklearn", "--model-name", "iris", "--storage-uri", uri]
    )
    assert predict(server.url) == iris_expected(IRIS_ROWS)[0]


def test_serve_with_a_model_dir_downloads_into_it(request, iris_dir, start_server, tmp_path):
    uri = publish_s3(request, iris_dir)
    model_dir = tmp_path / "mnt" / "models"
    server = start_server(
        ["--model-format", "sklearn", "--model-name", "iris", "--storage-uri", uri,
         "--model-dir", str(model_dir)]
    )  # fmt: skip
    assert predict(server.url) == iris_expected(IRIS_ROWS)[0]
    assert [p.name for p in model_dir.iterdir()] == ["model.joblib"]


def test_serve_exits_with_the_storage_error_when_the_download_fails(isolated_env, http_store):
    url = f"{http_store.url}/missing/model.joblib"
    command = [
        *KSRV, "serve", "--model-format", "sklearn", "--storage-uri", url,
        "--http-port", str(free_port()), "--grpc-port", "0",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"{url}: HTTP 404 (not found)" in result.stderr


def test_storage_download_command_fills_the_destination(isolated_env, http_store, tmp_path):
    url = http_store.put("model.joblib", b"model")
    dest = tmp_path / "mnt" / "models"
    result = subprocess.run(
        [*KSRV, "storage", "download", url, str(dest), "--no-progress"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (dest / "model.joblib").read_bytes() == b"model"
    assert result.stdout.strip() == str(dest)


def test_storage_download_command_exits_1_naming_the_uri(isolated_env, tmp_path):
    result = subprocess.run(
        [*KSRV, "storage", "download", "oci://registry/model:1", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "oci://registry/model:1: oci:// storage URIs are not supported yet" in result.stderr


def test_importing_storage_loads_no_cloud_library():
    import subprocess
    import sys

    code = (
        "import sys, ksrv.storage, ksrv.cli.main; "
        "print([m for m in ('boto3', 'google.cloud', 'azure', 'huggingface_hub') "
        "if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
