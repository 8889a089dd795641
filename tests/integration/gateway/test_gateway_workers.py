"""`ksrv gateway --workers 2`: two processes serve one port, each with its own route watcher;
a dead worker is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import KSRV, ServerProcess, free_port, wait_until
from tests.integration.gateway.conftest import RouteServer, service


def _workers(parent: int) -> set[int]:
    """The parent's child processes, from /proc."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {int(pid) for pid in children}


def _wait_for(check, what: str, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def _pids_answering(url: str, wanted: int, version: int = 0) -> set[int]:
    """Worker pids seen over fresh connections (the kernel spreads them by connection hash)
    serving route table `version` or a newer one, once `wanted` distinct ones did."""
    seen: set[int] = set()

    def enough() -> bool:
        with httpx.Client(timeout=5) as client:  # a new connection every time
            health = client.get(url + "/ksrv/gateway/health").json()
        if health["version"] >= version:
            seen.add(health["pid"])
        return len(seen) >= wanted

    wait_until(enough, f"{wanted} workers serving route table {version}")
    return seen


@pytest.fixture
def workers_gateway(routes: RouteServer):
    port, grpc_port = free_port(), free_port()
    command = [
        *KSRV, "gateway", "--workers", "2", "--http-port", str(port),
        "--grpc-port", str(grpc_port), "--routes-url", routes.url,
    ]  # fmt: skip
    gateway = ServerProcess(command, port, grpc_port=grpc_port)
    gateway.wait_ready(path="/ksrv/gateway/health")
    yield gateway
    gateway.stop()


def test_requests_are_served_by_both_workers_each_with_the_route_table(
    workers_gateway, routes, raw_upstream
):
    upstream = raw_upstream(lambda head, body: b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    version = routes.publish([service("raw", [(100, [upstream])])])
    workers = _wait_for(lambda: len(_workers(workers_gateway.process.pid)) == 2 and
                        _workers(workers_gateway.process.pid), "two workers")  # fmt: skip
    # Each worker polls the table itself: once both serve it, every connection gets routed.
    assert _pids_answering(workers_gateway.url, 2, version) == workers
    for _ in range(10):
        with httpx.Client(timeout=5) as client:
            answer = client.get(workers_gateway.url + "/serving/default/raw/anything")
            assert answer.text == "ok"


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(workers_gateway):
    parent = workers_gateway.process.pid
    first = _wait_for(lambda: len(_workers(parent)) == 2 and _workers(parent), "two workers")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = _wait_for(
        lambda: len(_workers(parent)) == 2 and victim not in _workers(parent) and _workers(parent),
        "a replacement worker",
    )
    assert _pids_answering(workers_gateway.url, 2) == replaced
    workers_gateway.process.send_signal(signal.SIGTERM)
    assert workers_gateway.process.wait(20) == 0
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists()  # reaped by the parent before it exited
