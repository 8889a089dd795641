"""`ksrv up --detach` says "up" only once its own control plane and gateway answer; when it
died at once (a port in use) it exits 1 with the reason (issue 12, item 1)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KSRV, free_port


@pytest.fixture
def answering_port() -> Iterator[int]:
    """Another server (say a ksrv already up) on the port, answering 200 to everything."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def up_detached(state_dir: Path, api_port: int, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KSRV, "up", "--detach", "--state-dir", str(state_dir), "--api-port", str(api_port),
         "--port", str(port), "--grpc-port", str(free_port())],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def down(state_dir: Path) -> str:
    result = subprocess.run(
        [*KSRV, "down", "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_detach_with_the_api_port_in_use_exits_1_with_the_reason(tmp_path, answering_port):
    try:
        result = up_detached(tmp_path, answering_port, free_port())
        assert result.returncode == 1, result.stdout + result.stderr
        assert "ksrv is up" not in result.stdout
        message = f"port {answering_port} (management API) is already in use on 127.0.0.1"
        assert message in result.stderr
    finally:
        down(tmp_path)


def test_detach_returns_once_the_api_and_the_gateway_answer(tmp_path):
    api_port, port = free_port(), free_port()
    try:
        result = up_detached(tmp_path, api_port, port)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ksrv is up" in result.stdout
        assert f"dashboard: http://127.0.0.1:{api_port}/dashboard/" in result.stdout
        pid = int((tmp_path / "ksrv.pid").read_text())
        assert f"(pid {pid})" in result.stdout
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200
        health = httpx.get(f"http://127.0.0.1:{port}/ksrv/gateway/health")
        assert health.status_code == 200
        assert health.json()["pid"] == int((tmp_path / "gateway.pid").read_text())
    finally:
        stopped = down(tmp_path)
    assert "ksrv is down" in stopped
