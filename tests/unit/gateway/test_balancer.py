"""Which replica the balancer picks, for REST and gRPC alike."""

from __future__ import annotations

from ksrv.gateway.balancer import DOWN_S, Balancer
from ksrv.gateway.routes import Backend, Replica

ADDRESSES = ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")


def _balancer() -> Balancer[str]:
    return Balancer(lambda address: f"conn to {address}")


def test_choose_prefers_the_replica_with_fewest_requests_in_flight():
    balancer = _balancer()
    first = balancer.choose(ADDRESSES)
    first.outstanding = 5
    second = balancer.choose(ADDRESSES)
    second.outstanding = 3
    third = balancer.choose(ADDRESSES)
    assert len({first.address, second.address, third.address}) == 3
    third.outstanding = 4
    assert balancer.choose(ADDRESSES) is second


def test_choose_rotates_among_idle_replicas():
    balancer = _balancer()
    addresses = ADDRESSES[:2]
    assert {balancer.choose(addresses).address for _ in range(4)} == set(addresses)


def test_choose_puts_replicas_that_failed_this_request_last():
    balancer = _balancer()
    addresses = ADDRESSES[:2]
    failed = balancer.choose(addresses)
    other = balancer.choose(addresses, [failed])
    assert other is not failed
    other.outstanding = 50
    assert balancer.choose(addresses, [failed]) is other
    assert balancer.choose(addresses, [failed, other]) in (failed, other)


def test_a_replica_marked_down_goes_after_busy_ones_until_its_time_is_up():
    balancer = _balancer()
    addresses = ADDRESSES[:2]
    down = balancer.endpoint(addresses[0])
    busy = balancer.endpoint(addresses[1])
    busy.outstanding = 10
    down.mark_down(now=100.0)
    assert down.down_until == 100.0 + DOWN_S
    for now in (100.0, 100.0 + DOWN_S / 2, 100.0 + DOWN_S - 0.001):
        assert all(balancer.choose(addresses, now=now) is busy for _ in range(3)), now
    assert balancer.choose(addresses, now=100.0 + DOWN_S) is down


def test_busy_goes_before_failed_lately_which_goes_before_failed_this_request():
    balancer = _balancer()
    busy, lately, now_failed = (balancer.endpoint(address) for address in ADDRESSES)
    busy.outstanding = 10
    lately.mark_down(now=100.0)
    for _ in range(3):  # whatever the rotation
        assert balancer.choose(ADDRESSES, [now_failed], now=100.0) is busy
        assert balancer.choose(ADDRESSES, [now_failed, busy], now=100.0) is lately
        assert balancer.choose(ADDRESSES, [now_failed], now=100.0 + DOWN_S) is lately  # idle again


def test_each_endpoint_holds_the_connection_its_transport_made():
    balancer = _balancer()
    assert balancer.choose(ADDRESSES[:1]).conn == "conn to 127.0.0.1:1"
    assert balancer.choose(ADDRESSES[:1]) is balancer.choose(ADDRESSES[:1])


def test_keep_only_hands_back_the_connections_of_replicas_that_left():
    balancer = _balancer()
    balancer.choose(ADDRESSES[:1])
    balancer.choose(ADDRESSES[1:2])
    assert balancer.keep_only({"127.0.0.1:2"}) == ["conn to 127.0.0.1:1"]
    assert set(balancer.endpoints) == {"127.0.0.1:2"}


def test_a_backend_lists_grpc_addresses_only_for_replicas_that_have_one():
    backend = Backend("r1", 100, "", (Replica("h:1", "g:1"), Replica("h:2", "")))
    assert backend.http == ("h:1", "h:2")
    assert backend.grpc == ("g:1",)
