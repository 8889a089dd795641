"""What the proxy writes upstream and hands back, and which replica it picks."""

from __future__ import annotations

from ksrv.gateway import proxy
from ksrv.gateway.routes import Replica
from ksrv.gateway.upstream import UpstreamResponse
from ksrv.http.server import Request


def test_request_head_drops_hop_by_hop_and_adds_identity_headers():
    request = Request(
        "POST",
        "/v2/models/m/infer",
        {},
        b"{}",
        b"/serving/ns/svc/v2/models/m/infer",
        [
            (b"host", b"svc.ns.example.com"),
            (b"connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"),
            (b"content-length", b"999"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"kserve-isvc-name", b"spoofed"),
            (b"x-request-id", b"abc"),
        ],
        "127.0.0.1",
    )
    head = proxy._request_head(request, b"/v2/models/m/infer", "svc", "ns")
    assert head == (
        b"POST /v2/models/m/infer HTTP/1.1\r\n"
        b"host: svc.ns.example.com\r\n"
        b"x-request-id: abc\r\n"
        b"x-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"
        b"kserve-isvc-name: svc\r\n"
        b"kserve-isvc-namespace: ns\r\n"
        b"content-length: 2\r\n\r\n"
    )


def test_fields_named_by_connection_are_dropped_too():
    request = Request(
        "GET",
        "/",
        {},
        b"",
        b"/",
        [(b"connection", b"keep-alive, X-Secret"), (b"x-secret", b"1"), (b"x-kept", b"2")],
        "10.1.1.1",
    )
    head = proxy._request_head(request, b"/", "svc", "ns")
    assert b"x-secret" not in head
    assert b"x-kept: 2\r\n" in head
    response = UpstreamResponse(200, [(b"connection", b"x-hop"), (b"x-hop", b"1")], b"")
    assert proxy.response_headers(response) == []


def test_response_headers_leave_framing_to_the_gateway():
    response = UpstreamResponse(
        200,
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"transfer-encoding", b"chunked"),
            (b"date", b"x"),
            (b"connection", b"keep-alive"),
            (b"inference-header-content-length", b"10"),
        ],
        b"{}",
    )
    assert proxy.response_headers(response) == [
        (b"content-type", b"application/json"),
        (b"inference-header-content-length", b"10"),
    ]


def test_choose_prefers_the_replica_with_fewest_requests_in_flight():
    p = proxy.Proxy()
    replicas = (Replica("127.0.0.1:1", ""), Replica("127.0.0.1:2", ""), Replica("127.0.0.1:3", ""))
    first = p.choose(replicas, [])
    first.outstanding = 5
    second = p.choose(replicas, [])
    second.outstanding = 3
    third = p.choose(replicas, [])
    assert len({first.address, second.address, third.address}) == 3
    third.outstanding = 4
    assert p.choose(replicas, []) is second


def test_choose_rotates_among_idle_replicas():
    p = proxy.Proxy()
    replicas = (Replica("127.0.0.1:1", ""), Replica("127.0.0.1:2", ""))
    assert {p.choose(replicas, []).address for _ in range(4)} == {"127.0.0.1:1", "127.0.0.1:2"}


def test_choose_puts_replicas_that_failed_this_request_last():
    p = proxy.Proxy()
    replicas = (Replica("127.0.0.1:1", ""), Replica("127.0.0.1:2", ""))
    failed = p.choose(replicas, [])
    other = p.choose(replicas, [failed])
    assert other is not failed
    other.outstanding = 50
    assert p.choose(replicas, [failed]) is other
    assert p.choose(replicas, [failed, other]) in (failed, other)


def test_keep_only_closes_pools_of_replicas_that_left():
    p = proxy.Proxy()
    p.choose((Replica("127.0.0.1:1", ""),), [])
    p.choose((Replica("127.0.0.1:2", ""),), [])
    p.keep_only({"127.0.0.1:2"})
    assert set(p.pools) == {"127.0.0.1:2"}
