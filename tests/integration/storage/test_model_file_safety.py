"""`ksrv serve --storage-uri` over real HTTP: a pickle-based model is served with a warning,
a skops one (the safe format) without."""

from __future__ import annotations

import httpx
import pytest

from tests.models import IRIS_ROWS, _iris_classifier, iris_expected


def predict(url: str) -> list[int]:
    response = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_a_remote_joblib_is_served_with_a_warning_naming_it(
    isolated_env, http_store, iris_dir, start_server
):
    url = http_store.put("model.joblib", (iris_dir / "model.joblib").read_bytes())
    server = start_server(
        ["--model-format", "sklearn", "--model-name", "iris", "--storage-uri", url]
    )
    assert predict(server.url) == iris_expected(IRIS_ROWS)[0]
    log = server.log()
    assert f"loading model.joblib from {url}: pickle-based files run code" in log
    assert "skops" in log


def test_a_remote_skops_model_is_served_without_a_warning(
    isolated_env, http_store, start_server, tmp_path
):
    sio = pytest.importorskip("skops.io")
    sio.dump(_iris_classifier(), tmp_path / "model.skops")
    url = http_store.put("model.skops", (tmp_path / "model.skops").read_bytes())
    server = start_server(
        ["--model-format", "sklearn", "--model-name", "iris", "--storage-uri", url]
    )
    assert predict(server.url) == iris_expected(IRIS_ROWS)[0]
    assert "pickle-based" not in server.log()
