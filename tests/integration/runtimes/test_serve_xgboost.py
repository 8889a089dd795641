"""`ksrv serve --model-format xgboost`: a booster trained here answers as `Booster.predict`."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve
from tests.runtime_models import IRIS_ROWS

xgboost = pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return runtime_models.xgboost_iris(tmp_path_factory.mktemp("xgboost"))


@pytest.fixture(scope="module")
def server(model_dir):
    server = serve(
        ["--model-format", "xgboost", "--model-dir", str(model_dir), "--model-name", "xgb"]
    )
    yield server
    server.stop()


def expected(model_dir, rows) -> np.ndarray:
    """What XGBoost itself answers for `rows` from the same file."""
    booster = xgboost.Booster(model_file=bytearray((model_dir / "model.bst").read_bytes()))
    return booster.predict(xgboost.DMatrix(np.asarray(rows)))


def test_v1_predict_returns_the_boosters_class_probabilities(server, model_dir):
    response = httpx.post(f"{server.url}/v1/models/xgb:predict", json={"instances": IRIS_ROWS})
    assert response.status_code == 200
    assert response.json() == {"predictions": expected(model_dir, IRIS_ROWS).tolist()}


def test_v2_infer_returns_the_boosters_class_probabilities(server, model_dir, v2_infer):
    features = np.asarray(IRIS_ROWS, dtype=np.float32)
    outputs = v2_infer(server, "xgb", {"input-0": features})
    assert list(outputs) == ["output-0"]
    np.testing.assert_array_equal(outputs["output-0"], expected(model_dir, IRIS_ROWS))


def test_v2_metadata_gives_feature_count_and_class_count(server):
    body = httpx.get(f"{server.url}/v2/models/xgb").json()
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert body["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 3]}]


def test_wrong_feature_count_is_a_400_with_the_reason(server):
    response = httpx.post(f"{server.url}/v1/models/xgb:predict", json={"instances": [[1.0, 2.0]]})
    assert response.status_code == 400
    assert "expects 4 features, got 2" in response.json()["error"]
