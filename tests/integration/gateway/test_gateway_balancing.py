"""Replicas and revisions under load: least-outstanding spread, traffic split, a replica
killed mid-stream, and route tables that change while the gateway serves."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import HELD_TIMEOUT_S, ModelCalls, toy_script_server, wait_until
from tests.integration.gateway.conftest import Gateway, RouteServer, service

HOST = {"host": "toy.default.example.com"}
# Threads for sync predicts, so every gate call a test holds (and its retry) has one.
THREADS = ("--max_threads", "16")


@pytest.fixture
def toys():
    started = []

    def start(count: int):
        for _ in range(count):
            started.append(toy_script_server(grpc=False, flags=THREADS))
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


def _pid(gateway: Gateway) -> int:
    answer = httpx.post(f"{gateway.url}/v1/models/pid:predict", json={}, headers=HOST)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["pid"])


def _held_gate_calls(
    pool: ThreadPoolExecutor, gateway: Gateway, calls: ModelCalls, count: int
) -> list[Future[httpx.Response]]:
    """`count` gate-toy predictions through the gateway, all inside a model once returned."""
    body = {"instances": [], "port": calls.port}
    url = f"{gateway.url}/v1/models/gate:predict"
    answers = [
        pool.submit(httpx.post, url, json=body, headers=HOST, timeout=HELD_TIMEOUT_S)
        for _ in range(count)
    ]
    calls.wait_for(len(calls.inside) + count)
    return answers


def _answered_pids(answers: list[Future[httpx.Response]]) -> Counter[int]:
    for answer in answers:
        assert answer.result().status_code == 200, answer.result().text
    return Counter(answer.result().json()["pid"] for answer in answers)


def test_least_outstanding_sends_to_the_idle_replica_and_idle_ties_alternate(gateway, toys):
    first, second = toys(2)
    both = {first.process.pid, second.process.pid}
    gateway.publish([service("toy", [(100, [first, second])])])
    with ModelCalls() as calls, ThreadPoolExecutor(1) as pool:
        (held,) = _held_gate_calls(pool, gateway, calls, 1)
        others = [_pid(gateway) for _ in range(5)]  # one replica has a request in flight
        calls.release()
        busy = _answered_pids([held])
    (idle,) = set(others)
    assert set(busy) | {idle} == both and idle not in busy
    one, two, three, four = (_pid(gateway) for _ in range(4))  # idle again: ties rotate
    assert {one, two} == both and (three, four) == (one, two)


def test_traffic_split_sends_about_ten_percent_to_the_canary(gateway, toys):
    stable, canary = toys(2)
    gateway.publish([service("toy", [(90, [stable]), (10, [canary])])])
    counts = _pids(gateway, total=600, clients=4)
    assert set(counts) == {stable.process.pid, canary.process.pid}
    # The gateway's draws are unseeded; the exact split is tests/unit/gateway/test_routes.py's.
    # Binomial(600, 0.1) leaves [12, 150] with a chance of about 1e-15; 50/50 would not fit.
    assert 12 <= counts[canary.process.pid] <= 150, counts


def test_a_backend_without_replicas_gives_its_share_to_the_others(gateway, toys):
    (only,) = toys(1)
    gateway.publish([service("toy", [(10, [only]), (90, [])])])
    counts = _pids(gateway, total=40, clients=4)
    assert counts == Counter({only.process.pid: 40})


HELD_EACH = 3  # requests inside each replica when one is stopped


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "drained"])
def test_a_replica_stopped_under_load_fails_no_request(gateway, toys, sig):
    first, second = toys(2)
    gateway.publish([service("toy", [(100, [first, second])])])
    with ModelCalls() as calls, ThreadPoolExecutor(4 * HELD_EACH) as pool:
        # Least outstanding puts exactly HELD_EACH in each replica, whatever the arrival order.
        held = _held_gate_calls(pool, gateway, calls, 2 * HELD_EACH)
        os.killpg(first.process.pid, sig)  # the table still lists it
        if sig == signal.SIGKILL:  # its calls died with it and were retried on the other
            calls.wait_for(3 * HELD_EACH)
        else:  # it stopped accepting and drains the calls it holds
            wait_until(lambda: _refuses(first.port), "the stopped replica refusing connections")
        later = [pool.submit(_pid, gateway) for _ in range(2 * HELD_EACH)]
        assert [pid.result() for pid in later] == [second.process.pid] * 2 * HELD_EACH
        calls.release()
        answered = _answered_pids(held)
    if sig == signal.SIGKILL:
        assert answered == Counter({second.process.pid: 2 * HELD_EACH})
    else:
        assert answered == Counter({first.process.pid: HELD_EACH, second.process.pid: HELD_EACH})
    assert first.process.wait(35) in (-sig, 0)


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=HELD_TIMEOUT_S).close()
    except ConnectionRefusedError:
        return True
    return False


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
               "--http_port", str(port), "--enable_grpc", "false", *THREADS]  # fmt: skip
    first = ServerProcess(command, port).wait_ready()
    second = None
    try:
        gateway.publish([service("toy", [(100, [f"127.0.0.1:{port}"])])])
        with ModelCalls() as calls, ThreadPoolExecutor(8) as pool:
            held = _held_gate_calls(pool, gateway, calls, 8)  # 8 pooled connections to it
            calls.release()
            assert _answered_pids(held) == Counter({first.process.pid: 8})
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
