"""The sklearn runtime loads skops files, the safe alternative to pickles: trusted types only."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest

from ksrv.errors import StorageError
from ksrv.runtimes.sklearn import SKOPS_TRUSTED_ENV, SklearnModel
from tests.models import IRIS_ROWS, _iris_classifier

sio = pytest.importorskip("skops.io")


def test_an_iris_model_saved_with_skops_loads_and_predicts_as_in_process(tmp_path):
    sio.dump(_iris_classifier(), tmp_path / "model.skops")
    model = SklearnModel("iris", tmp_path)
    assert model.load() and model.ready
    answer = model.predict({"instances": IRIS_ROWS})
    assert answer == {"predictions": _iris_classifier().predict(np.array(IRIS_ROWS)).tolist()}


def test_a_skops_file_with_an_untrusted_type_is_refused_before_it_runs(tmp_path, monkeypatch):
    from sklearn.preprocessing import FunctionTransformer

    monkeypatch.delenv(SKOPS_TRUSTED_ENV, raising=False)
    sio.dump(FunctionTransformer(func=math.sqrt), tmp_path / "model.skops")
    model = SklearnModel("sqrt", tmp_path)
    with pytest.raises(StorageError) as refused:
        model.load()
    assert "holds types skops does not trust: math.sqrt" in str(refused.value)
    assert SKOPS_TRUSTED_ENV in str(refused.value)
    assert not model.ready


def test_types_named_in_the_trust_variable_are_loaded(tmp_path, monkeypatch):
    from sklearn.preprocessing import FunctionTransformer

    monkeypatch.setenv(SKOPS_TRUSTED_ENV, "math.cos, math.sqrt")
    sio.dump(FunctionTransformer(func=math.sqrt), tmp_path / "model.skops")
    model = SklearnModel("sqrt", tmp_path)
    assert model.load()
    assert model._estimator.func is math.sqrt


def test_a_broken_skops_file_says_so_with_its_name(tmp_path):
    with zipfile.ZipFile(tmp_path / "model.skops", "w") as archive:
        archive.writestr("schema.json", "{not json")
    with pytest.raises(StorageError) as caught:
        SklearnModel("m", tmp_path).load()
    assert str(caught.value).startswith(f"model.skops is not a valid skops file (in {tmp_path})")
