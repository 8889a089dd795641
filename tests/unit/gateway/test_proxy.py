"""What the proxy writes upstream and hands back, and which replica it picks."""

from __future__ import annotations

from ksrv.gateway import proxy
from ksrv.gateway.routes import Service
from ksrv.http.server import Request
from ksrv.http.upstream import UpstreamResponse


def _request(method: str, body: bytes, target: bytes, raw: list[tuple[bytes, bytes]]) -> Request:
    """A Request as ksrv.http builds one: `headers` decoded from the same raw headers."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
    return Request(method, target.decode(), headers, body, target, raw, "127.0.0.1")


def _identity(name: str, namespace: str) -> bytes:
    return Service(namespace, name, 60.0, "predictor", {}).identity


def test_request_head_drops_hop_by_hop_and_adds_identity_headers():
    request = _request(
        "POST",
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
    )
    head = proxy.request_head(
        request, b"/v2/models/m/infer", _identity("svc", "ns"), b"content-length: 2"
    )
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
    request = _request(
        "GET",
        b"",
        b"/",
        [(b"connection", b"keep-alive, X-Secret"), (b"x-secret", b"1"), (b"x-kept", b"2")],
    )
    head = proxy.request_head(request, b"/", _identity("svc", "ns"), b"content-length: 0")
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


def test_a_field_named_by_a_later_connection_header_is_dropped_too():
    request = _request(
        "GET", b"", b"/", [(b"x-secret", b"1"), (b"connection", b"X-Secret"), (b"x-kept", b"2")]
    )
    head = proxy.request_head(request, b"/", _identity("svc", "ns"), b"content-length: 0")
    assert b"x-secret" not in head
    assert b"connection" not in head
    assert b"x-kept: 2\r\n" in head


def test_a_request_as_the_server_builds_it_decodes_path_and_headers_only_when_read():
    raw = [(b"host", b"a.example.com"), (b"x-id", b"1"), (b"host", b"b.example.com")]
    request = Request("POST", None, None, b"{}", b"/v2/models/m%20x/infer?q=1", raw)
    assert request.header(b"host") == b"b.example.com"  # the last one, as in `headers`
    assert request.header(b"absent") is None
    assert request.path == "/v2/models/m x/infer"
    assert request.headers == {"host": "b.example.com", "x-id": "1"}
