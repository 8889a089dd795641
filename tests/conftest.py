"""Shared fixtures: free ports, real server processes that always get cleaned up, tiny models."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TESTS_DIR = Path(__file__).parent
KSRV = [sys.executable, "-m", "ksrv.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A real `ksrv serve` (or any command) on 127.0.0.1, stopped by PID at teardown."""

    def __init__(
        self,
        args: list[str],
        port: int,
        env: dict[str, str] | None = None,
        grpc_port: int | None = None,
    ) -> None:
        self.port = port
        self.grpc_port = grpc_port
        self.url = f"http://127.0.0.1:{port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ksrv-test-{port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 30.0, path: str = "/v2/health/live") -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL the whole process group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any forked workers left behind
        self._log.close()
        return self.process.returncode


def serve(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
    """Start `ksrv serve ARGS` on free REST and gRPC ports and wait until it answers."""
    port, grpc_port = free_port(), free_port()
    command = [*KSRV, "serve", "--http-port", str(port), "--grpc-port", str(grpc_port), *args]
    return ServerProcess(command, port, env, grpc_port).wait_ready()


def toy_script_server(grpc: bool = True) -> ServerProcess:
    """tests/toys.py run as a KServe-style script (`ModelServer().start(...)`)."""
    port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, str(TESTS_DIR / "toys.py"), "--host", "127.0.0.1",
        "--http_port", str(port), "--grpc_port", str(grpc_port),
        "--enable_grpc", "true" if grpc else "false",
    ]  # fmt: skip
    return ServerProcess(command, port, grpc_port=grpc_port).wait_ready()


@pytest.fixture
def start_server() -> Iterator:
    """Factory fixture: start servers in a test, all stopped at teardown."""
    started: list[ServerProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        server = serve(args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import models

    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def iris_server(iris_dir: Path) -> Iterator[ServerProcess]:
    server = serve(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris"]
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def toy_server() -> Iterator[ServerProcess]:
    """Every toy model of tests/toys.py in one KServe-style script server."""
    server = toy_script_server()
    yield server
    server.stop()
