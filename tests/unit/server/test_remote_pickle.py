"""A pickle-based model fetched from remote storage is loaded with a warning; local is quiet."""

from __future__ import annotations

import pytest

from ksrv.server.remote_pickle import remote_pickle_warning


@pytest.mark.parametrize(
    ("uri", "scheme", "filename", "warns"),
    [
        ("s3://bucket/iris", "s3", "model.joblib", True),
        ("gs://bucket/iris", "gs", "model.pkl", True),
        ("https://example.com/iris/model.pickle", "https", "model.pickle", True),
        ("hf://org/iris", "hf", "sub/model.joblib", True),
        ("s3://bucket/iris", "s3", "model.skops", False),  # the safe format
        ("s3://bucket/iris", "s3", "model.onnx", False),
        ("file:///models/iris", "file", "model.joblib", False),
        ("/models/iris", "", "model.joblib", False),
        ("pvc://claim/iris", "pvc", "model.joblib", False),
    ],
)
def test_only_pickles_from_remote_storage_warn(tmp_path, uri, scheme, filename, warns):
    (tmp_path / filename).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / filename).write_bytes(b"x")
    warning = remote_pickle_warning(uri, tmp_path, scheme)
    assert (warning is not None) == warns
    if warns:
        assert uri in warning and "skops" in warning
        assert filename.rsplit("/", 1)[-1] in warning


def test_a_single_downloaded_file_is_checked_too(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(b"x")
    assert remote_pickle_warning("https://example.com/model.joblib", path, "https")
