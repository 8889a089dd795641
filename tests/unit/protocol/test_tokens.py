"""protocol.tokens: the token shape, its hash, the Authorization header, and the grant rule."""

from __future__ import annotations

import hashlib

import pytest

from ksrv.errors import PermissionDenied, Unauthenticated
from ksrv.protocol import tokens


def test_a_new_token_is_prefixed_random_and_hashed_with_sha256():
    first, second = tokens.new_token(), tokens.new_token()
    assert first.startswith("ksrv_") and first != second and len(first) > 40
    assert tokens.token_hash(first) == hashlib.sha256(first.encode()).hexdigest()


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER abc", "abc")],
)
def test_the_bearer_scheme_is_read_case_insensitively(header, token):
    assert tokens.bearer(header) == token


@pytest.mark.parametrize("header", [None, "", "abc", "Basic eDp5", "Bearer", "Bearer   "])
def test_anything_but_a_bearer_token_is_unauthenticated(header):
    with pytest.raises(Unauthenticated):
        tokens.bearer(header)


@pytest.mark.parametrize(
    ("grant", "namespace", "outcome"),
    [
        (("team-a", "invoke"), "team-a", "invoke"),
        (("", "admin"), "team-a", "admin"),  # an admin of every namespace
        (("team-b", "invoke"), "team-a", PermissionDenied),
        (("team-b", "admin"), "team-a", PermissionDenied),
        (None, "team-a", Unauthenticated),
    ],
)
def test_a_grant_holds_in_its_own_namespace_only(grant, namespace, outcome):
    if isinstance(outcome, str):
        assert tokens.check_grant(grant, namespace, namespace) == outcome
    else:
        with pytest.raises(outcome):
            tokens.check_grant(grant, namespace, namespace)


@pytest.mark.parametrize(
    ("annotations", "enabled"),
    [
        ({"serving.kserve.io/enable-auth": "true"}, True),
        ({"serving.kserve.io/enable-auth": "True"}, True),
        ({"security.opendatahub.io/enable-auth": "true"}, True),
        ({"serving.kserve.io/enable-auth": "false"}, False),
        ({"serving.kserve.io/enable-auth": "yes"}, False),
        ({}, False),
    ],
)
def test_the_annotation_asks_for_tokens_only_when_true(annotations, enabled):
    assert tokens.is_auth_enabled(annotations) is enabled
