"""Every error class maps to the HTTP status drawn in `ksrv.errors`' docstring tree."""

from __future__ import annotations

import inspect
import re

import pytest

from ksrv import errors
from ksrv.protocol import status

# The tree in errors.py, as a table: "├── InvalidInput   the caller ...   (400)".
_TREE_LINE = re.compile(r"[├└]── (\w+)\s.*\((\d{3})\)\s*$")
DOCUMENTED = {
    match.group(1): int(match.group(2))
    for line in (errors.__doc__ or "").splitlines()
    if (match := _TREE_LINE.search(line))
}

EXPECTED = {
    "InvalidInput": 400,
    "PayloadTooLarge": 413,
    "ModelNotFound": 404,
    "RouteNotFound": 404,
    "ServiceNotFound": 404,
    "Unauthenticated": 401,
    "PermissionDenied": 403,
    "MethodNotAllowed": 405,
    "UnsupportedMediaType": 415,
    "ModelNotReady": 503,
    "ServerNotReady": 503,
    "NoReadyReplica": 503,
    "Unsupported": 501,
    "Overloaded": 429,
    "UpstreamFailed": 502,
    "UpstreamTimeout": 504,
    "StorageError": 503,
    "ResourceInvalid": 422,
    "ResourceNotFound": 404,
    "Conflict": 409,
    "InferenceError": 500,
}

ERROR_CLASSES = sorted(
    {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.KsrvError) and cls is not errors.KsrvError
    },
    key=lambda cls: cls.__name__,
)


def test_the_docstring_tree_is_the_table_this_test_checks():
    assert DOCUMENTED == EXPECTED


def test_every_error_class_appears_in_the_docstring_tree():
    assert {cls.__name__ for cls in ERROR_CLASSES} == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_error_class_maps_to_its_documented_http_status(name):
    error = getattr(errors, name)()
    assert status.http_status(error) == EXPECTED[name]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_kind_has_an_http_status_and_a_grpc_code(cls):
    assert cls.kind in status.HTTP_STATUS
    assert cls.kind in status.GRPC_CODE


def test_error_kinds_are_distinct():
    kinds = [cls.kind for cls in ERROR_CLASSES]
    assert len(kinds) == len(set(kinds))


def test_model_missing_error_is_model_not_found():
    assert status.http_status(errors.ModelMissingError("m")) == 404


def test_a_subclass_of_an_error_keeps_its_parents_status():
    class BadImage(errors.InvalidInput):
        pass

    assert status.http_status(BadImage("blurry")) == 400


def test_the_base_error_is_500():
    assert status.http_status(errors.KsrvError("oops")) == 500


@pytest.mark.parametrize(
    "error", [ValueError("x"), KeyError("k"), RuntimeError(), ZeroDivisionError(), Exception()]
)
def test_an_exception_that_is_not_a_ksrv_error_is_500(error):
    assert status.http_status(error) == 500


def test_not_implemented_error_is_501():
    assert status.http_status(NotImplementedError("later")) == 501


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (errors.InvalidInput("bad shape"), "bad shape"),
        (errors.ModelNotFound("iris"), "Model with name iris does not exist."),
        (errors.ModelNotReady("iris"), "Model with name iris is not ready."),
        (errors.ModelNotReady("iris", "loading"), "Model with name iris is not ready. loading"),
        (errors.Overloaded(), "Overloaded"),
        (NotImplementedError("later"), "later"),
        (NotImplementedError(), "Not implemented"),
        (ValueError("boom"), "ValueError : boom"),
    ],
)
def test_public_message_of_an_error(error, message):
    assert status.public_message(error) == message
