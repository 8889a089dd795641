"""control.api_tokens: tokens kept as hashes, published to the gateway, checked on the API."""

from __future__ import annotations

import pytest

from ksrv.control.api_tokens import TokenAuthority
from ksrv.control.routes import RoutePublisher
from ksrv.control.store import Store
from ksrv.errors import Conflict, InvalidInput, PermissionDenied, ResourceNotFound, Unauthenticated
from ksrv.http.server import Request
from ksrv.protocol.tokens import token_hash

ISVCS = ["apis", "serving.kserve.io", "v1beta1", "namespaces", "team-a", "inferenceservices"]
ALL_ISVCS = ["apis", "serving.kserve.io", "v1beta1", "inferenceservices"]
ROUTES = ["ksrv", "v1", "routes"]


def request(token: str | None) -> Request:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return Request("GET", "/", headers, b"")


@pytest.fixture
def authority():
    store = Store(":memory:")
    published: list = []
    yield TokenAuthority(store, published.append, is_required=True, gateway_token="ksrv_gw")
    store.close()


def test_only_the_hash_is_stored_and_the_secret_is_answered_once(authority):
    created = authority.create({"name": "ci", "namespace": "team-a"})
    assert created["role"] == "invoke" and created["namespace"] == "team-a"
    (stored,) = authority.store.tokens()
    assert stored.sha256 == token_hash(created["token"]) and created["token"] not in repr(stored)
    listed, code = authority.serve("GET", [], {})
    assert code == 200 and "token" not in listed["items"][0]


def test_every_change_is_published_as_grants(authority):
    published: list = []
    authority.publish = published.append
    created = authority.create({"name": "ci", "namespace": "team-a"})
    assert published[-1] == [
        {"sha256": token_hash(created["token"]), "namespace": "team-a", "role": "invoke"}
    ]
    authority.serve("DELETE", ["ci"], {})
    assert published[-1] == []


def test_defaults_bad_fields_and_names_taken(authority):
    assert authority.create({"name": "root", "role": "admin"})["namespace"] == "*"
    assert authority.create({"name": "caller"})["namespace"] == "default"
    with pytest.raises(Conflict):
        authority.create({"name": "caller"})
    for body, field in (({"role": "owner"}, "role"), ({"namespace": "Bad_NS"}, "namespace"),
                        ({"name": "a b"}, "name")):  # fmt: skip
        with pytest.raises(InvalidInput, match=field):
            authority.create(body)
    with pytest.raises(ResourceNotFound):
        authority.serve("DELETE", ["nobody"], {})


def test_the_api_takes_admin_tokens_in_their_namespace_and_the_gateway_token_on_its_paths(
    authority,
):
    root = authority.create({"name": "root", "role": "admin"})["token"]
    team = authority.create({"name": "team", "role": "admin", "namespace": "team-a"})["token"]
    caller = authority.create({"name": "caller", "namespace": "team-a"})["token"]
    authority.check(request(root), ALL_ISVCS)
    authority.check(request(team), ISVCS)
    authority.check(request("ksrv_gw"), ROUTES)
    refusals = [
        (None, ISVCS, Unauthenticated),
        ("ksrv_unknown", ISVCS, Unauthenticated),
        (caller, ISVCS, PermissionDenied),  # invoke tokens are for the gateway
        (team, ALL_ISVCS, PermissionDenied),  # a namespace's admin, across namespaces
        (team, ["ksrv", "v1", "tokens"], PermissionDenied),
        ("ksrv_gw", ISVCS, PermissionDenied),
    ]
    for token, parts, error in refusals:
        with pytest.raises(error):
            authority.check(request(token), parts)
    authority.serve("DELETE", ["root"], {})
    with pytest.raises(Unauthenticated):
        authority.check(request(root), ALL_ISVCS)


def test_nothing_is_checked_when_tokens_are_not_required():
    store = Store(":memory:")
    TokenAuthority(store).check(request(None), ALL_ISVCS)
    store.close()


def test_tokens_wait_for_the_first_table_then_bump_its_version():
    routes = RoutePublisher("example.com")
    grant = {"sha256": "ab", "namespace": "default", "role": "invoke"}
    routes.set_tokens([grant])
    assert routes.version == 0  # no table goes out before the reconciler's first pass
    routes.publish([])
    first = routes.version
    assert routes.snapshot()["tokens"] == [grant]
    routes.set_tokens([grant])
    assert routes.version == first  # unchanged: no wake-up
    routes.set_tokens([])
    assert routes.version > first and routes.snapshot()["tokens"] == []
