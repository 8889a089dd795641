"""gateway.auth: the token check goes first while a service is protected, and only then."""

from __future__ import annotations

import pytest

from ksrv.errors import PermissionDenied, Unauthenticated
from ksrv.gateway.auth import TokenCheck, with_check
from ksrv.gateway.hooks import Call
from ksrv.gateway.routes import parse_table
from ksrv.gateway.traffic import TrafficCounter
from ksrv.protocol.tokens import token_hash

TOKEN = "ksrv_team-a"


def table(is_protected: bool):
    services = [
        {"namespace": "team-a", "name": name, "components": {"predictor": {"backends": []}},
         **({"enable_auth": True} if is_protected and name == "locked" else {})}
        for name in ("locked", "open")
    ]  # fmt: skip
    grants = [{"sha256": token_hash(TOKEN), "namespace": "team-a", "role": "invoke"}]
    return parse_table({"version": 1, "domain": "d", "services": services, "tokens": grants})


def call(routes, name: str, headers: dict[str, str]) -> Call:
    routed = Call("grpc", f"{name}.team-a.d", b"/m", headers, None)
    routed.match = routes.match(routed.host, routed.target)
    return routed


def test_the_check_goes_first_and_only_while_a_service_is_protected():
    check, counter = TokenCheck(), TrafficCounter()
    assert with_check((counter,), check, table(is_protected=False)) == (counter,)
    hooks = with_check((counter,), check, table(is_protected=True))
    assert hooks == (check, counter)
    assert with_check(hooks, check, table(is_protected=True)) == (check, counter)
    assert with_check(hooks, check, table(is_protected=False)) == (counter,)


def test_a_protected_service_wants_its_namespace_token_and_an_open_one_nothing():
    routes, check = table(is_protected=True), TokenCheck()
    with_check((), check, routes)
    check.on_request(call(routes, "open", {}))
    check.on_request(call(routes, "locked", {"authorization": f"Bearer {TOKEN}"}))
    with pytest.raises(Unauthenticated):
        check.on_request(call(routes, "locked", {}))
    check.grants = {token_hash(TOKEN): ("team-b", "invoke")}
    with pytest.raises(PermissionDenied):
        check.on_request(call(routes, "locked", {"authorization": f"Bearer {TOKEN}"}))
