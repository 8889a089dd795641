"""Replicas and revisions under load: least-outstanding spread, traffic split, a replica
killed mid-stream, and route tables that change while the gateway serves."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import toy_script_server
from tests.integration.gateway.conftest import Gateway, RouteServer, service

HOST = {"host": "toy.default.example.com"}


@pytest.fixture
def toys():
    started = []

    def start(count: int):
        for _ in range(count):
            started.append(toy_script_server(grpc=False))
        return started[-count:]

    yield start
    for server in started:
        server.stop()


def _pids(gateway: Gateway, total: int, clients: int) -> Counter[int]:
    """`total` Pid-toy predictions over `clients` keep-alive clients; pid -> count."""

    def run(count: int) -> list[int]:
        with httpx.Client(headers=HOST, timeout=10) as client:
            out = []
            for _ in range(count):
                answer = client.post(f"{gateway.url}/v1/models/pid:predict", json={"instances": []})
                assert answer.status_code == 200, answer.text
                out.append(answer.json()["pid"])
            return out

    with ThreadPoolExecutor(clients) as pool:
        results = pool.map(run, [total // clients] * clients)
    return Counter(pid for chunk in results for pid in chunk)


def test_least_outstanding_spreads_load_over_both_replicas(gateway, toys):
    first, second = toys(2)
    gateway.publish([service("toy", [(100, [first, second])])])
    counts = _pids(gateway, total=80, clients=4)
    assert set(counts) == {first.process.pid, second.process.pid}
    assert min(counts.values()) >= 20  # 10 ms predictions in flight: neither replica idles


def test_traffic_split_sends_about_ten_percent_to_the_canary(gateway, toys):
    stable, canary = toys(2)
    gateway.publish([service("toy", [(90, [stable]), (10, [canary])])])
    counts = _pids(gateway, total=600, clients=8)
    share = counts[canary.process.pid] / sum(counts.values())
    assert 0.05 <= share <= 0.16, counts  # binomial(600, 0.1): 3 sigma is about 0.037


def test_a_backend_without_replicas_gives_its_share_to_the_others(gateway, toys):
    (only,) = toys(1)
    gateway.publish([service("toy", [(10, [only]), (90, [])])])
    counts = _pids(gateway, total=40, clients=4)
    assert counts == Counter({only.process.pid: 40})


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "drained"])
def test_a_replica_stopped_under_load_fails_no_request(gateway, toys, sig):
    first, second = toys(2)
    gateway.publish([service("toy", [(100, [first, second])])])
    done: list[int] = []

    def run(index: int) -> list[int]:
        statuses = []
        with httpx.Client(headers=HOST, timeout=10) as client:
            for n in range(100):
                if index == 0 and n == 20:
                    os.killpg(first.process.pid, sig)  # mid-stream; the table still lists it
                answer = client.post(f"{gateway.url}/v1/models/pid:predict", json={})
                statuses.append(answer.status_code)
                done.append(answer.status_code)
        return statuses

    with ThreadPoolExecutor(4) as pool:
        statuses = [code for chunk in pool.map(run, range(4)) for code in chunk]
    assert len(statuses) == 400
    assert Counter(statuses) == Counter({200: 400})
    assert first.process.wait(35) in (-sig, 0)


def test_a_new_route_table_moves_traffic_and_survives_a_control_plane_restart(toys):
    old, new = toys(2)
    routes = RouteServer()
    gateway = Gateway(routes)
    try:
        gateway.publish([service("toy", [(100, [old])])])
        assert set(_pids(gateway, total=8, clients=2)) == {old.process.pid}
        gateway.publish([service("toy", [(100, [new])])])
        assert set(_pids(gateway, total=8, clients=2)) == {new.process.pid}
        # The control plane goes away: the last table keeps serving.
        port, version = routes.port, routes.table["version"]
        routes.close()
        assert set(_pids(gateway, total=8, clients=2)) == {new.process.pid}
        # ... and comes back on the same port, its version counter started afresh.
        routes = RouteServer(port)
        gateway.routes = routes
        assert routes.publish([service("toy", [(100, [old])])], version=1) < version
        gateway.wait_version(1, timeout_s=20)
        assert set(_pids(gateway, total=8, clients=2)) == {old.process.pid}
    finally:
        gateway.process.stop()
        routes.close()


def test_a_replica_restarted_on_the_same_port_answers_at_once(gateway):
    from tests.conftest import TESTS_DIR, ServerProcess, free_port

    port = free_port()
    command = [sys.executable, str(TESTS_DIR / "toys.py"), "--host", "127.0.0.1",
               "--http_port", str(port), "--enable_grpc", "false"]  # fmt: skip
    first = ServerProcess(command, port).wait_ready()
    second = None
    try:
        gateway.publish([service("toy", [(100, [f"127.0.0.1:{port}"])])])
        before = _pids(gateway, total=16, clients=8)  # fills the pool with 8 connections
        assert set(before) == {first.process.pid}
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(5)
        second = ServerProcess(command, port).wait_ready()
        with httpx.Client(headers=HOST, timeout=10) as client:
            for _ in range(10):
                answer = client.post(f"{gateway.url}/v1/models/pid:predict", json={})
                assert answer.status_code == 200, answer.text
                assert answer.json()["pid"] == second.process.pid
    finally:
        first.stop()
        if second is not None:
            second.stop()
