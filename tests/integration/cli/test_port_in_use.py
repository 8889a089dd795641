"""A port another server listens on stops `ksrv serve`, `ksrv gateway` and `ksrv up` with one
line naming the port (issue 12, items 1 and 12): never a traceback, and never a silent share
of the port with the other server (grpcio's default SO_REUSEPORT let a stray `ksrv serve`
answer 11 of 20 gRPC calls meant for the gateway). A KServe-style script (`python model.py`)
says it the same way."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import KSRV, TESTS_DIR, ServerProcess, free_port

# On a build that shares the port, the command runs on instead of stopping: bounded here.
RUN_TIMEOUT_S = 30


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port with a listener on it, bound the way grpcio binds (SO_REUSEPORT), so only a
    server that refuses to share the port notices it."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KSRV, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )


def assert_one_line(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == line, result.stderr
    assert "Traceback" not in result.stderr


def serve_args(http_port: int, grpc_port: int) -> list[str]:
    return ["serve", f"{TESTS_DIR / 'toys.py'}:Echo", "--http-port", str(http_port),
            "--grpc-port", str(grpc_port)]  # fmt: skip


@pytest.mark.parametrize("role", ["HTTP", "gRPC"])
def test_serve_on_a_port_in_use_stops_naming_the_port(held_port, role):
    ports = (held_port, free_port()) if role == "HTTP" else (free_port(), held_port)
    result = run(serve_args(*ports))
    assert_one_line(result, f"ksrv serve: port {held_port} ({role}) is already in use on 127.0.0.1")


@pytest.mark.parametrize("role", ["HTTP", "gRPC"])
def test_a_kserve_style_script_on_a_port_in_use_stops_naming_the_port(held_port, role):
    ports = (held_port, free_port()) if role == "HTTP" else (free_port(), held_port)
    result = subprocess.run(
        [sys.executable, str(TESTS_DIR / "toys.py"), "--host", "127.0.0.1",
         "--http_port", str(ports[0]),
         "--grpc_port", str(ports[1])],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    line = f"ksrv: port {held_port} ({role}) is already in use on 127.0.0.1"
    assert result.stderr.strip().splitlines()[-1] == line, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("role", ["HTTP", "gRPC"])
def test_gateway_on_a_port_in_use_stops_naming_the_port(held_port, role):
    ports = (held_port, free_port()) if role == "HTTP" else (free_port(), held_port)
    result = run(["gateway", "--http-port", str(ports[0]), "--grpc-port", str(ports[1])])
    assert_one_line(
        result, f"ksrv gateway: port {held_port} (gateway {role}) is already in use on 127.0.0.1"
    )


@pytest.mark.parametrize("role", ["management API", "gateway HTTP", "gateway gRPC"])
def test_up_on_a_port_in_use_stops_naming_the_port_and_starts_nothing(
    held_port, role, tmp_path: Path
):
    ports = {"management API": free_port(), "gateway HTTP": free_port(),
             "gateway gRPC": free_port(), role: held_port}  # fmt: skip
    result = run(["up", "--state-dir", str(tmp_path),
                  "--api-port", str(ports["management API"]),
                  "--port", str(ports["gateway HTTP"]),
                  "--grpc-port", str(ports["gateway gRPC"])])  # fmt: skip
    assert_one_line(result, f"ksrv up: port {held_port} ({role}) is already in use on 127.0.0.1")
    assert "ksrv is up" not in result.stdout
    assert not (tmp_path / "ksrv.pid").exists()
    assert not (tmp_path / "gateway.pid").exists()


def test_serve_on_the_grpc_port_of_a_running_gateway_leaves_every_call_to_the_gateway():
    port, grpc_port = free_port(), free_port()
    command = [*KSRV, "gateway", "--http-port", str(port), "--grpc-port", str(grpc_port)]
    gateway = ServerProcess(command, port, grpc_port=grpc_port)
    try:
        gateway.wait_ready(path="/ksrv/gateway/health")
        result = run(serve_args(free_port(), grpc_port))
        assert_one_line(
            result, f"ksrv serve: port {grpc_port} (gRPC) is already in use on 127.0.0.1"
        )
        # Every call reaches the gateway, which knows no service for this host.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            ready = channel.unary_unary("/inference.GRPCInferenceService/ServerReady")
            for _ in range(20):
                with pytest.raises(grpc.RpcError) as info:
                    ready(b"", metadata=[("host", "nope.default.example.com")], timeout=10)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        gateway.stop()
