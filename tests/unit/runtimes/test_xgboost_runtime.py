"""`XGBoostModel` in-process: every KServe file name loads, threads and metadata follow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ksrv.errors import StorageError
from ksrv.protocol import v2
from ksrv.runtimes.xgboost import XGBoostModel
from tests import runtime_models
from tests.runtime_models import IRIS_ROWS

xgboost = pytest.importorskip("xgboost")


@pytest.mark.parametrize("filename", ["model.bst", "model.json", "model.ubj"])
def test_each_kserve_file_name_loads_and_predicts_as_the_booster(tmp_path, filename):
    runtime_models.xgboost_iris(tmp_path, filename)
    model = XGBoostModel("m", tmp_path)
    assert model.load() and model.ready
    booster = xgboost.Booster(model_file=bytearray((tmp_path / filename).read_bytes()))
    want = booster.predict(xgboost.DMatrix(np.asarray(IRIS_ROWS)))
    assert model.predict({"instances": IRIS_ROWS}) == {"predictions": want.tolist()}


def test_nthread_defaults_to_one_and_comes_from_the_environment(tmp_path, monkeypatch):
    runtime_models.xgboost_iris(tmp_path)
    monkeypatch.delenv("XGBOOST_NTHREAD", raising=False)
    assert XGBoostModel("m", tmp_path).nthread == 1
    monkeypatch.setenv("XGBOOST_NTHREAD", "2")
    model = XGBoostModel("m", tmp_path)
    model.load()
    config = json.loads(model._booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "2"


def test_a_binary_logistic_model_answers_one_probability_per_row(tmp_path):
    features = np.asarray(IRIS_ROWS * 4)
    labels = np.array([0, 1, 0] * 4)
    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=2,
    )
    booster.save_model(tmp_path / "model.json")
    model = XGBoostModel("m", tmp_path)
    model.load()
    assert model.get_output_types() == [{"name": "output-0", "datatype": "FP32", "shape": [-1]}]
    request = v2.InferRequest(
        "m", [v2.InferInput("input-0", [3, 4], "FP64", np.asarray(IRIS_ROWS))]
    )
    output = model.predict(request).outputs[0]
    np.testing.assert_array_equal(
        output.as_numpy(), booster.predict(xgboost.DMatrix(np.asarray(IRIS_ROWS)))
    )


def test_a_file_that_is_not_a_booster_is_a_storage_error_without_a_stack_trace(tmp_path):
    (tmp_path / "model.json").write_text("garbage")
    with pytest.raises(StorageError) as caught:
        XGBoostModel("m", tmp_path).load()
    message = str(caught.value)
    assert message.startswith(f"model.json is not a valid XGBoost model (in {tmp_path}): ")
    # Neither the native stack trace nor the "[04:43:19] /workspace/src/...cc:409:" prefix.
    assert "Stack trace" not in message and "[" not in message and "\n" not in message
