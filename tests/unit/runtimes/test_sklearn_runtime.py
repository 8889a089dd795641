"""sklearn runtime load errors: what is wrong with model.joblib, in words, the path once."""

from __future__ import annotations

import importlib
import pickle
import sys

import pytest

from ksrv.errors import StorageError
from ksrv.runtimes.sklearn import SklearnModel

joblib = pytest.importorskip("joblib")

CORRUPT = (
    "is not a valid joblib/pickle file (in {dir}): it is truncated or corrupt, or was not "
    "written by joblib.dump or pickle.dump"
)


@pytest.mark.parametrize(
    "content",
    [
        b"this is not a model",  # joblib used to say "Could not unpickle PATH: 116" (a KeyError)
        pickle.dumps(list(range(100)))[:40],  # truncated
        b"\x80\x3d",  # "unsupported pickle protocol: 61"
        b"\x1f\x8b garbage after gzip's magic",
        b"\x78\x9c garbage after zlib's magic",
        b"",
    ],
)
def test_a_file_that_is_no_pickle_says_so_in_words(tmp_path, content):
    (tmp_path / "model.joblib").write_bytes(content)
    with pytest.raises(StorageError) as caught:
        SklearnModel("m", tmp_path).load()
    assert str(caught.value) == "model.joblib " + CORRUPT.format(dir=tmp_path)


def test_a_frame_claiming_more_memory_than_there_is_says_both_causes(tmp_path):
    (tmp_path / "model.joblib").write_bytes(
        b"\x80\x04\x95 truncated"
    )  # FRAME, its length read from text
    with pytest.raises(StorageError) as caught:
        SklearnModel("m", tmp_path).load()
    assert str(caught.value) == (
        f"model.joblib (in {tmp_path}) could not be unpickled: out of memory (the model is too "
        "big for this machine, or a corrupt file claims a huge size)"
    )


def test_a_pickle_of_a_module_that_is_not_installed_names_the_module(tmp_path, monkeypatch):
    module = tmp_path / "lib" / "gone_after_pickling.py"
    module.parent.mkdir()
    module.write_text("class Estimator:\n    pass\n")
    monkeypatch.syspath_prepend(str(module.parent))
    import gone_after_pickling  # type: ignore[import-not-found]

    joblib.dump(gone_after_pickling.Estimator(), tmp_path / "model.joblib")
    del sys.modules["gone_after_pickling"]
    module.unlink()
    importlib.invalidate_caches()
    with pytest.raises(StorageError) as caught:
        SklearnModel("m", tmp_path).load()
    assert str(caught.value) == (
        f"model.joblib (in {tmp_path}) needs the Python module 'gone_after_pickling', "
        "which is not installed where ksrv serve runs"
    )
