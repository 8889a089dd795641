"""Which replica the gRPC forwarder picks."""

from __future__ import annotations

import random

from ksrv.gateway.grpc_proxy import _Forwarder
from ksrv.gateway.routes import Replica, RouteTable

REPLICAS = (Replica("h:1", "g:1"), Replica("h:2", "g:2"), Replica("h:3", ""))


def _forwarder() -> _Forwarder:
    return _Forwarder(RouteTable.empty, random.Random(0), [])


def test_choose_rotates_among_idle_replicas_with_a_grpc_port():
    forwarder = _forwarder()
    assert {forwarder.choose(REPLICAS, []) for _ in range(4)} == {"g:1", "g:2"}


def test_choose_prefers_fewest_calls_in_flight_and_avoids_failed_ones():
    forwarder = _forwarder()
    forwarder.outstanding = {"g:1": 3, "g:2": 1}
    assert forwarder.choose(REPLICAS, []) == "g:2"
    assert forwarder.choose(REPLICAS, ["g:2"]) == "g:1"


def test_channels_of_replicas_that_left_are_handed_back():
    forwarder = _forwarder()
    forwarder.channels = {"g:1": "one", "g:2": "two"}  # type: ignore[dict-item]
    assert forwarder.keep_only({"g:2"}) == ["one"]
    assert set(forwarder.channels) == {"g:2"}
