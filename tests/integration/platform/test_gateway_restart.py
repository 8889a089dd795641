"""SIGKILL the gateway of a real `ksrv up` under steady load (8 clients): no request that had
not reached it yet fails (issue 12, item 9). The control plane owns the gateway's listening
socket, so connections made while the gateway restarts wait in its backlog, and the new
gateway holds them until its first route table: zero refused, zero 404. Requests inside the
killed process may fail; they are counted apart (at most one per client)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

CLIENTS = 8
BODY = {"instances": [[6.8, 2.8, 4.8, 1.4]]}


class Load:
    """`CLIENTS` threads posting predictions in a loop, each outcome counted by kind."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.done = [0] * CLIENTS
        self.lock = threading.Lock()
        self.is_stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.is_stopping.is_set():
                outcome = self._one(client)
                with self.lock:
                    self.outcomes[outcome] += 1
                    self.done[index] += 1

    def _one(self, client: httpx.Client) -> str:
        try:
            return str(client.post(self.url, json=BODY).status_code)
        except httpx.ConnectError as exc:
            return f"refused: {exc}"
        except httpx.TransportError as exc:  # inside the killed gateway: reset or cut off
            return f"in flight: {type(exc).__name__}"

    def each_did(self, count: int) -> bool:
        with self.lock:
            return min(self.done) >= count

    def mark(self) -> list[int]:
        with self.lock:
            return list(self.done)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.is_stopping.set()
        for thread in self.threads:
            thread.join(60)


def apply_steady(ksrv: LocalKsrv, model_dir: Path) -> None:
    ksrv.apply(
        [{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
          "metadata": {"name": "steady"},
          "spec": {"predictor": {"sklearn": {"storageUri": str(model_dir)}}}}],
        "--wait",
    )  # fmt: skip


def gateway_pid(ksrv: LocalKsrv) -> int | None:
    """The pid of the gateway process that answers (None while none does)."""
    try:
        answer = httpx.get(f"{ksrv.gateway}/ksrv/gateway/health", timeout=30)
    except httpx.TransportError:
        return None
    return int(answer.json()["pid"])


def kill_under_load(ksrv: LocalKsrv, pid: int) -> Counter[str]:
    """SIGKILL `pid` while `CLIENTS` clients post; their outcomes once each of them has had
    20 answers before the kill and 20 after a new gateway process answered."""
    url = f"{ksrv.gateway}/serving/default/steady/v1/models/steady:predict"
    old = gateway_pid(ksrv)
    assert old is not None
    with Load(url) as load:
        wait_until(lambda: load.each_did(20), "every client served before the kill")
        os.kill(pid, signal.SIGKILL)
        before = load.mark()
        wait_until(lambda: gateway_pid(ksrv) not in (old, None), "a new gateway answers")
        wait_until(
            lambda: all(d >= b + 20 for d, b in zip(load.mark(), before, strict=True)),
            "every client served by the new gateway",
        )
    return load.outcomes


def assert_nothing_refused(outcomes: Counter[str], max_in_flight: int) -> None:
    refused = {k: n for k, n in outcomes.items() if k.startswith("refused")}
    in_flight = {k: n for k, n in outcomes.items() if k.startswith("in flight")}
    assert refused == {}, outcomes
    assert outcomes["404"] == 0, outcomes
    assert set(outcomes) <= {"200", *in_flight}, outcomes
    assert sum(in_flight.values()) <= max_in_flight, outcomes
    assert outcomes["200"] >= CLIENTS * 40


def test_killing_the_gateway_under_load_refuses_no_request_and_answers_no_404(tmp_path, model_dirs):
    ksrv = LocalKsrv(tmp_path).start()
    try:
        apply_steady(ksrv, model_dirs["sklearn"])
        outcomes = kill_under_load(ksrv, int((tmp_path / "gateway.pid").read_text()))
    finally:
        ksrv.stop()
    assert_nothing_refused(outcomes, max_in_flight=CLIENTS)  # the one each client had inside


def test_a_restarted_control_plane_keeps_the_ports_of_the_gateway_it_adopted(tmp_path, model_dirs):
    """The control plane is killed and restarted (it adopts the running gateway, two workers),
    then that gateway is killed under load: the new control plane took its sockets back."""
    args = ("--gateway-workers", "2")
    first = LocalKsrv(tmp_path, args=args).start()
    try:
        apply_steady(first, model_dirs["sklearn"])
        gateway = int((tmp_path / "gateway.pid").read_text())
        first.kill()
        ports = (first.port, first.grpc_port, first.api_port)
        second = LocalKsrv(tmp_path, ports=ports, args=args).start()
        try:
            assert int((tmp_path / "gateway.pid").read_text()) == gateway  # adopted
            outcomes = kill_under_load(second, gateway)
        finally:
            second.stop()
    finally:
        first.stop()
    # Its orphaned workers drain: a client may also lose a keep-alive connection they close.
    assert_nothing_refused(outcomes, max_in_flight=2 * CLIENTS)
