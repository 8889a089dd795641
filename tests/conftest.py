"""Shared fixtures: free ports, real server processes that always get cleaned up, tiny models,
and the test's side of the gate toys (tests/toys.py), which force concurrency instead of
sleeping and hoping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

TESTS_DIR = Path(__file__).parent
KSRV = [sys.executable, "-m", "ksrv.cli.main"]


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failure pytest cannot print is printed by Python's own printer instead.

    pytest's printer parses the failing test's source with `ast`. On Python 3.11 that can
    raise "SystemError: AST constructor recursion depth mismatch" while another thread of the
    test (a server, an operator) formats a traceback too: the interpreter's AST state is shared
    between threads. The error then ended the whole run as an INTERNALERROR that named no test
    (CI, stop 24). The standard library's printer (`--tb=native`) catches that error."""
    try:
        return (yield)
    except SystemError:
        style = item.config.option.tbstyle
        item.config.option.tbstyle = "native"
        try:
            return pytest.TestReport.from_item_and_call(item, call)
        finally:
            item.config.option.tbstyle = style


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

    def wait_ready(self, timeout_s: float = 120.0, path: str = "/v2/health/live") -> ServerProcess:
        """Until the server answers `path`: a bound for a start that hangs, generous because a
        loaded 2-core machine takes tens of seconds to import a framework like transformers."""
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
        if not self._log.closed:
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


def toy_script_server(grpc: bool = True, flags: tuple[str, ...] = ()) -> ServerProcess:
    """tests/toys.py run as a KServe-style script (`ModelServer().start(...)`)."""
    port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, str(TESTS_DIR / "toys.py"), "--host", "127.0.0.1",
        "--http_port", str(port), "--grpc_port", str(grpc_port),
        "--enable_grpc", "true" if grpc else "false", *flags,
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


# -- forcing concurrency --------------------------------------------------------------------
HELD_TIMEOUT_S = 30.0  # bounds a wait for something that must happen; never a sleep


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = HELD_TIMEOUT_S) -> None:
    """Poll `condition` until it holds; fail naming `what` if it has not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout_s}s")
        time.sleep(0.02)


async def wait_until_async(
    condition: Callable[[], bool], what: str, timeout_s: float = HELD_TIMEOUT_S
) -> None:
    """`wait_until` for a test running on an event loop: polls without blocking the loop."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout_s}s")
        await asyncio.sleep(0.02)


class ModelCalls:
    """The test's end of the gate toys (`gate`, `hold`): each model call connects here and
    says so, then returns only once released, so a test knows which calls are inside the model
    and decides when they end."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(HELD_TIMEOUT_S)
        self.port = int(self.listener.getsockname()[1])
        self.inside: list[socket.socket] = []

    def wait_for(self, count: int, said: bytes = b"in") -> None:
        """Until `count` calls in all are inside the model (each one said `said`)."""
        while len(self.inside) < count:
            call, _ = self.listener.accept()
            call.settimeout(HELD_TIMEOUT_S)
            self.inside.append(call)
            assert call.recv(len(said), socket.MSG_WAITALL) == said

    def held(self) -> int:
        """How many of the calls inside the model still wait to be released."""
        count = 0
        for call in self.inside:
            call.setblocking(False)
            try:
                call.recv(1, socket.MSG_PEEK)  # b"": the model gave up
            except BlockingIOError:
                count += 1
            finally:
                call.settimeout(HELD_TIMEOUT_S)
        return count

    def release(self) -> None:
        """Let every call inside the model return."""
        for call in self.inside:
            with call, contextlib.suppress(OSError):  # a call that gave up has nothing to hear
                call.sendall(b"go")
        self.inside.clear()

    def close(self) -> None:
        """Release every call and stop listening."""
        with self.listener:
            self.release()

    def __enter__(self) -> ModelCalls:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


RawConnection = tuple[socket.socket, BinaryIO]


class HeldLoop:
    """The server's event loop held by the `hold` toy (or `pid`, given `model`) for the
    `with` body; `answer` is the holding call's body afterwards.

    Whatever reaches that server process meanwhile waits in its sockets and is read in one
    loop turn once released, so concurrent arrival is forced, not hoped for; with several
    workers, a new connection can only be accepted by another one.
    """

    def __init__(self, server: ServerProcess, grpc_calls: int = 0, model: str = "hold") -> None:
        self.server = server
        self.grpc_calls = grpc_calls
        self.model = model
        self.answer: dict = {}

    def __enter__(self) -> HeldLoop:
        self.calls = ModelCalls()
        body = {"instances": [], "port": self.calls.port}
        if self.grpc_calls:
            body["grpc_calls"] = self.grpc_calls
        self.request = connect(self.server)
        send(self.request, f"/v1/models/{self.model}:predict", body)
        self.calls.wait_for(1, said=b"held")
        return self

    def wait_for_grpc_calls(self) -> None:
        """Until `grpc_calls` gRPC calls are waiting for the held loop."""
        assert self.calls.inside[0].recv(6, socket.MSG_WAITALL) == b"queued"

    def __exit__(self, *exc_info: object) -> None:
        self.calls.close()
        status, self.answer = read_response(self.request)
        self.request[0].close()
        self.request[1].close()
        assert status == 200, self.answer


def connect(server: ServerProcess) -> RawConnection:
    """A keep-alive connection the server has accepted (one health call answered on it)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=HELD_TIMEOUT_S)
    stream = sock.makefile("rb")
    sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: t\r\n\r\n")
    assert read_response((sock, stream))[0] == 200
    return sock, stream


def send(connection: RawConnection, path: str, body: dict) -> None:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {len(data)}\r\n"
    connection[0].sendall(head.encode() + b"content-type: application/json\r\n\r\n" + data)


def read_response(connection: RawConnection) -> tuple[int, dict]:
    stream = connection[1]
    status = int(stream.readline().split()[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(stream.read(length))
