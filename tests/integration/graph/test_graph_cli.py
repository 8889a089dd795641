"""`ksrv router` as the control plane starts it (`python -m ksrv router --graph-json JSON
--http-port P`), and the headers every step gets, seen by a real model server."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx

from tests.conftest import ServerProcess, free_port

ROUTER = [sys.executable, "-m", "ksrv", "router"]


def test_ksrv_router_serves_readyz_and_the_graph_and_stops_on_sigterm(toy_server, step_service):
    graph = {
        "nodes": {
            "root": {
                "routerType": "Sequence",
                "steps": [
                    {"name": "echo", "serviceUrl": f"{toy_server.url}/v1/models/echo:predict"},
                    {"name": "seen", "serviceUrl": step_service.url + "/echo"},
                ],
            }
        },
        "resources": {},
    }
    port = free_port()
    router = ServerProcess(
        [*ROUTER, "--graph-json", json.dumps(graph), "--http-port", str(port)],
        port,
        env={"PROPAGATE_HEADERS": "X-Tenant,Authorization"},
    )
    try:
        router.wait_ready(path="/readyz")
        response = httpx.post(
            router.url, json={"instances": [3]}, headers={"x-tenant": "t1", "x-other": "no"}
        )
        assert response.json() == {"received": {"instances": [3]}}
        _, seen, _ = step_service.seen[0]
        assert seen["x-tenant"] == "t1" and "x-other" not in seen
        assert seen["x-request-id"] == response.headers["x-request-id"]
    finally:
        assert router.stop() == 0
    log = router.log_path.read_text()
    request_id = response.headers["x-request-id"]
    line = next(line for line in log.splitlines() if f"request_id={request_id}" in line)
    assert "status=200 latency_ms=" in line
    assert re.search(r"steps: root/echo=200/[0-9.]+ms root/seen=200/[0-9.]+ms$", line), line


def test_ksrv_router_refuses_a_graph_it_cannot_run_naming_the_field():
    graph = {
        "nodes": {
            "root": {"routerType": "Splitter", "steps": [{"serviceUrl": "http://a/", "weight": 60}]}
        }
    }
    result = subprocess.run(
        [*ROUTER, "--graph-json", json.dumps(graph), "--http-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nodes.root.steps: Splitter weights sum to 60, not 100" in result.stderr
    assert "Traceback" not in result.stderr


def test_steps_get_the_request_id_trace_context_and_authorization_but_not_other_headers(
    start_router, toy_server
):
    url = f"{toy_server.url}/v1/models/headers:predict"
    graph = {"root": {"routerType": "Ensemble", "steps": [{"name": "a", "serviceUrl": url}]}}
    sent = {
        "authorization": "Bearer token",
        "x-request-id": "req-42",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=1",
        "cookie": "session=secret",
        "test-header-one": "1",
    }
    default = start_router(graph)
    response = httpx.post(default.url, json={"instances": []}, headers=sent)
    seen = response.json()["a"]["seen"]
    for name in ("authorization", "x-request-id", "traceparent", "tracestate"):
        assert seen[name] == sent[name], name
    assert "cookie" not in seen and "test-header-one" not in seen
    assert response.headers["x-request-id"] == "req-42"

    configured = start_router(graph, propagate="Test-Header-.*")
    seen = httpx.post(configured.url, json={}, headers=sent).json()["a"]["seen"]
    assert seen["test-header-one"] == "1" and seen["x-request-id"] == "req-42"
    assert "authorization" not in seen and "cookie" not in seen

    generated = httpx.post(default.url, json={}, headers={"x-request-id": "bad id\twith tab"})
    request_id = generated.headers["x-request-id"]
    assert request_id != "bad id\twith tab" and len(request_id) == 32
    assert generated.json()["a"]["seen"]["x-request-id"] == request_id
