"""`LightGBMModel` in-process: `.bst` and `.txt` load; records follow the feature names."""

from __future__ import annotations

import numpy as np
import pytest

from ksrv.errors import InvalidInput, StorageError
from ksrv.runtimes.lightgbm import LightGBMModel
from tests import runtime_models
from tests.runtime_models import IRIS_FEATURES, IRIS_ROWS

lightgbm = pytest.importorskip("lightgbm")


@pytest.mark.parametrize("filename", ["model.bst", "model.txt"])
def test_both_file_names_load_and_predict_as_the_booster(tmp_path, filename):
    runtime_models.lightgbm_iris(tmp_path, filename)
    model = LightGBMModel("m", tmp_path)
    assert model.load()
    want = lightgbm.Booster(model_file=str(tmp_path / filename)).predict(np.asarray(IRIS_ROWS))
    assert model.predict({"instances": IRIS_ROWS}) == {"predictions": want.tolist()}


def test_an_absent_feature_in_a_record_is_a_missing_value(tmp_path):
    runtime_models.lightgbm_iris(tmp_path)
    model = LightGBMModel("m", tmp_path)
    model.load()
    record = dict(zip(IRIS_FEATURES[:3], IRIS_ROWS[0][:3], strict=True))
    want = model._booster.predict(np.array([[*IRIS_ROWS[0][:3], np.nan]]))
    assert model.predict({"instances": [record]}) == {"predictions": want.tolist()}


def test_a_non_numeric_feature_value_is_invalid_input(tmp_path):
    runtime_models.lightgbm_iris(tmp_path)
    model = LightGBMModel("m", tmp_path)
    model.load()
    with pytest.raises(InvalidInput, match="must be numbers"):
        model.predict({"instances": [{"sepal_length": "long"}]})


def test_nthread_defaults_to_one_and_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTGBM_NTHREAD", raising=False)
    assert LightGBMModel("m", tmp_path).nthread == 1
    monkeypatch.setenv("LIGHTGBM_NTHREAD", "2")
    assert LightGBMModel("m", tmp_path).nthread == 2


def test_a_file_that_is_not_a_booster_is_a_storage_error(tmp_path):
    (tmp_path / "model.bst").write_text("garbage")
    with pytest.raises(StorageError) as caught:
        LightGBMModel("m", tmp_path).load()
    message = str(caught.value)
    assert message.startswith(f"model.bst is not a valid LightGBM model (in {tmp_path}): ")
    assert message.count(str(tmp_path)) == 1  # LightGBM's own message repeats the path
