"""A real gateway process fed by a tiny long-poll route server, and raw upstreams for the
cases a ksrv replica never produces (chunked answers, connections closed under us)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import KSRV, ServerProcess, free_port

DOMAIN = "example.com"


class RouteServer:
    """Serves `GET /ksrv/v1/routes?after=N&timeout_s=T` like the management API does: the
    table as soon as its version differs from N, else 304 after T."""

    def __init__(self, port: int = 0) -> None:
        self.table: dict[str, Any] = {"version": 0, "domain": DOMAIN, "services": []}
        self.changed = threading.Condition()
        self.polls = 0
        self.is_closing = False
        self.sockets: set[socket.socket] = set()
        routes = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                routes.sockets.add(self.connection)

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                after = int(query.get("after", ["0"])[0])
                timeout_s = float(query.get("timeout_s", ["30"])[0])
                with routes.changed:
                    routes.polls += 1
                    routes.changed.wait_for(
                        lambda: routes.table["version"] != after or routes.is_closing, timeout_s
                    )
                    table = routes.table
                if table["version"] == after or routes.is_closing:
                    self.send_response(304)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps(table).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the gateway stopped mid-poll
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/ksrv/v1/routes"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, services: list[dict[str, Any]], version: int | None = None) -> int:
        with self.changed:
            number = version if version is not None else self.table["version"] + 1
            self.table = {"version": number, "domain": DOMAIN, "services": services}
            self.changed.notify_all()
        return number

    def close(self) -> None:
        with self.changed:
            self.is_closing = True  # release pending polls
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()
        for sock in list(self.sockets):  # as if the process had exited
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Gateway:
    """A `ksrv gateway` process polling a RouteServer."""

    def __init__(self, routes: RouteServer) -> None:
        self.routes = routes
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            *KSRV, "gateway", "--http-port", str(self.port),
            "--grpc-port", str(self.grpc_port), "--routes-url", routes.url,
        ]  # fmt: skip
        self.process = ServerProcess(command, self.port, grpc_port=self.grpc_port)
        self.process.wait_ready(path="/ksrv/gateway/health")

    def publish(self, services: list[dict[str, Any]]) -> None:
        """Publish a table and wait until the gateway serves it."""
        version = self.routes.publish(services)
        self.wait_version(version)

    def in_flight(self) -> int:
        """REST requests the gateway is routing, holding or waiting on (its health answer)."""
        return int(httpx.get(self.url + "/ksrv/gateway/health").json()["in_flight"])

    def wait_version(self, version: int, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = httpx.get(self.url + "/ksrv/gateway/health").json()["version"]
            if seen == version:
                return
            time.sleep(0.02)
        raise AssertionError(f"gateway never took route table {version}:\n{self.process.log()}")


def service(
    name: str,
    backends: list[tuple[float, list[Any]]],
    namespace: str = "default",
    timeout_s: float = 60.0,
    component: str = "predictor",
    extra: dict[str, list[tuple[float, list[Any]]]] | None = None,
) -> dict[str, Any]:
    """A route-table service; replicas are ServerProcess / RawUpstream (anything with
    `port` and `grpc_port`) or plain `host:port` strings."""
    components = {component: _component(name, component, backends)}
    for other, other_backends in (extra or {}).items():
        components[other] = _component(name, other, other_backends)
    return {
        "namespace": namespace,
        "name": name,
        "timeout_s": timeout_s,
        "entry": component,
        "components": components,
    }


def _component(name: str, component: str, backends: list[tuple[float, list[Any]]]) -> Any:
    return {
        "backends": [
            {
                "revision": f"{name}-{component}-{index:05d}",
                "percent": percent,
                "tag": "",
                "replicas": [_replica(r) for r in replicas],
            }
            for index, (percent, replicas) in enumerate(backends, 1)
        ]
    }


def _replica(replica: Any) -> dict[str, str]:
    if isinstance(replica, str):
        return {"http": replica, "grpc": ""}
    grpc = f"127.0.0.1:{replica.grpc_port}" if getattr(replica, "grpc_port", None) else ""
    return {"http": f"127.0.0.1:{replica.port}", "grpc": grpc}


class RawUpstream:
    """A socket server answering each request with `respond(head_bytes, body) -> bytes`;
    `close_after` > 0 closes every connection after that many answers."""

    def __init__(self, respond: Callable[[bytes, bytes], bytes], close_after: int = 0) -> None:
        self.respond = respond
        self.close_after = close_after
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.grpc_port = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        answered = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                conn.sendall(self.respond(head, body))
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def routes() -> Iterator[RouteServer]:
    server = RouteServer()
    yield server
    server.close()


@pytest.fixture
def gateway(routes: RouteServer) -> Iterator[Gateway]:
    gw = Gateway(routes)
    yield gw
    gw.process.stop()


@pytest.fixture
def raw_upstream() -> Iterator[Callable[..., RawUpstream]]:
    started: list[RawUpstream] = []

    def start(respond: Callable[[bytes, bytes], bytes], close_after: int = 0) -> RawUpstream:
        upstream = RawUpstream(respond, close_after)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.close()
