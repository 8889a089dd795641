"""`ksrv serve --model-format lightgbm`: a booster trained here answers as `Booster.predict`."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve
from tests.runtime_models import IRIS_FEATURES, IRIS_ROWS

lightgbm = pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return runtime_models.lightgbm_iris(tmp_path_factory.mktemp("lightgbm"))


@pytest.fixture(scope="module")
def server(model_dir):
    server = serve(
        ["--model-format", "lightgbm", "--model-dir", str(model_dir), "--model-name", "lgb"]
    )
    yield server
    server.stop()


def expected(model_dir, rows) -> np.ndarray:
    """What LightGBM itself answers for `rows` from the same file."""
    return lightgbm.Booster(model_file=str(model_dir / "model.bst")).predict(np.asarray(rows))


def predict_v1(server, instances):
    return httpx.post(f"{server.url}/v1/models/lgb:predict", json={"instances": instances})


def test_v1_predict_returns_the_boosters_class_probabilities(server, model_dir):
    response = predict_v1(server, IRIS_ROWS)
    assert response.status_code == 200
    assert response.json() == {"predictions": expected(model_dir, IRIS_ROWS).tolist()}


def test_v1_records_are_matched_to_features_by_name_not_position(server, model_dir):
    records = [dict(reversed(list(zip(IRIS_FEATURES, row, strict=True)))) for row in IRIS_ROWS]
    assert list(records[0]) == IRIS_FEATURES[::-1]
    response = predict_v1(server, records)
    assert response.json() == {"predictions": expected(model_dir, IRIS_ROWS).tolist()}


def test_v1_accepts_kserves_column_form_of_records(server, model_dir):
    # KServe's lgbserver sample: {"inputs": [{"feature": {"0": value}, ...}]}
    record = {name: {"0": value} for name, value in zip(IRIS_FEATURES, IRIS_ROWS[0], strict=True)}
    response = httpx.post(f"{server.url}/v1/models/lgb:predict", json={"inputs": [record]})
    assert response.json() == {"predictions": expected(model_dir, IRIS_ROWS[:1]).tolist()}


def test_v2_infer_returns_the_boosters_class_probabilities(server, model_dir, v2_infer):
    outputs = v2_infer(server, "lgb", {"input-0": np.asarray(IRIS_ROWS, dtype=np.float64)})
    np.testing.assert_array_equal(outputs["output-0"], expected(model_dir, IRIS_ROWS))


def test_v2_pandas_content_type_matches_inputs_to_features_by_name(server, model_dir):
    columns = np.asarray(IRIS_ROWS).T
    inputs = [
        {"name": name, "shape": [len(IRIS_ROWS)], "datatype": "FP64", "data": column.tolist()}
        for name, column in reversed(list(zip(IRIS_FEATURES, columns, strict=True)))
    ]
    body = {"inputs": inputs, "parameters": {"content_type": "pd"}}
    response = httpx.post(f"{server.url}/v2/models/lgb/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["shape"] == [3, 3]
    np.testing.assert_array_equal(
        np.reshape(output["data"], (3, 3)), expected(model_dir, IRIS_ROWS)
    )


def test_v2_metadata_gives_feature_count_and_class_count(server):
    body = httpx.get(f"{server.url}/v2/models/lgb").json()
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert body["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1, 3]}]


def test_wrong_feature_count_is_a_400_with_the_reason(server):
    response = predict_v1(server, [[1.0, 2.0, 3.0]])
    assert response.status_code == 400
    assert "number of features in data (3)" in response.json()["error"]


def test_unknown_feature_name_is_a_400_naming_it(server):
    response = predict_v1(server, [{"sepal_lenght": 1.0}])
    assert response.status_code == 400
    assert "sepal_lenght" in response.json()["error"]
