"""`find_model_file`: exactly one model file per directory, as KServe's runtimes require."""

from __future__ import annotations

import pytest

from ksrv.errors import ModelNotFound, StorageError
from ksrv.runtimes import files

EXTENSIONS = (".bst", ".json")


def test_the_one_matching_file_is_found_among_others(tmp_path):
    (tmp_path / "model.bst").write_bytes(b"x")
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "nested.json").mkdir()  # a directory, not a file
    assert files.find_model_file(tmp_path, EXTENSIONS) == tmp_path / "model.bst"
    assert files.has_model_file(tmp_path, EXTENSIONS)


def test_a_model_file_path_is_accepted_as_is(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("{}")
    assert files.find_model_file(path, EXTENSIONS) == path


def test_no_matching_file_is_model_not_found_naming_the_extensions(tmp_path):
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(ModelNotFound, match=r"\.bst, \.json"):
        files.find_model_file(tmp_path, EXTENSIONS)
    assert not files.has_model_file(tmp_path, EXTENSIONS)


def test_a_missing_directory_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        files.find_model_file(tmp_path / "absent", EXTENSIONS)


def test_two_matching_files_are_an_error_naming_both(tmp_path):
    (tmp_path / "a.bst").write_bytes(b"x")
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(StorageError, match=r"More than one model file .*a\.bst, b\.json"):
        files.find_model_file(tmp_path, EXTENSIONS)
    with pytest.raises(StorageError):
        files.has_model_file(tmp_path, EXTENSIONS)
