"""Real storage servers on 127.0.0.1, started by the tests and stopped by PID.

moto (S3), gcp-storage-emulator (GCS) and Azurite (Azure Blob) run as subprocesses whose
request logs the tests read to count object reads; the plain HTTP server runs in a thread and
records its requests. Each is session-scoped; tests use their own bucket or path names.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HELD_TIMEOUT_S, ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Never let a client library reach for cloud metadata servers or real credentials.
ISOLATED_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "GOOGLE_APPLICATION_CREDENTIALS": "",
    "NO_GCE_CHECK": "true",
}


def wait_port(server: ServerProcess, timeout_s: float = 30.0) -> ServerProcess:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"server not listening after {timeout_s}s:\n{server.log()}")


class Store:
    """A running storage server: its URL, the environment a client needs, its request log."""

    def __init__(self, server: ServerProcess, env: dict[str, str]) -> None:
        self.server = server
        self.env = {**ISOLATED_ENV, **env}

    def requests(self, pattern: str) -> int:
        """How many logged requests match `pattern` (a regular expression)."""
        return len(re.findall(pattern, self.server.log()))


@pytest.fixture(scope="session")
def s3_store() -> Iterator[Store]:
    port = free_port()
    command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = wait_port(ServerProcess(command, port))
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        yield Store(server, env)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_store() -> Iterator[Store]:
    pytest.importorskip("google.cloud.storage")
    port = free_port()
    command = [
        str(VENV_BIN / "gcp-storage-emulator"), "start", "-H", "127.0.0.1",
        "--port", str(port), "--in-memory",
    ]  # fmt: skip
    server = wait_port(ServerProcess(command, port))
    try:
        yield Store(server, {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"})
    finally:
        server.stop()


def azurite_command() -> str | None:
    local = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists() and shutil.which("node"):
        return str(local)
    return shutil.which("azurite-blob")


@pytest.fixture(scope="session")
def azure_store() -> Iterator[Store]:
    pytest.importorskip("azure.storage.blob")
    command = azurite_command()
    if command is None:
        pytest.skip(
            "Azurite not installed: needs node and "
            "`npm install --prefix .venv/node azurite@3.35.0` (make test does this)"
        )
    port = free_port()
    args = [
        command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
        "--skipApiVersionCheck", "--disableTelemetry", "--loose",
    ]  # fmt: skip
    server = wait_port(ServerProcess(args, port))
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    try:
        yield Store(server, {"AZURE_STORAGE_CONNECTION_STRING": connection})
    finally:
        server.stop()


class FileHandler(http.server.BaseHTTPRequestHandler):
    """Serves `root` with ETag, byte ranges (unless `?noranges`) and fault injection.

    `?drop=N` closes the connection after N bytes of the first request for that path, once;
    `?status=N` answers every GET (not HEAD) with that error status; `?noetag` sends no ETag.
    A GET of a URL the test holds (`HTTPStore.hold`) waits until the test releases it.
    """

    root: Path
    log: list[str]
    dropped: set[str]
    held: dict[str, threading.Event]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path, _, query = self.path.partition("?")
        self.log.append(f"{self.command} {self.path} {self.headers.get('range', '')}")
        gate = self.held.get(self.path)
        if gate is not None and self.command == "GET":
            gate.wait(HELD_TIMEOUT_S)
        file = self.root / path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        failing = re.search(r"status=(\d+)", query)
        if failing and self.command == "GET":
            self.send_error(int(failing.group(1)))
            return
        data = file.read_bytes()
        etag = f'"{len(data)}-{file.stat().st_mtime_ns}"'
        start, end, status = 0, len(data) - 1, 200
        ranges = self.headers.get("range")
        is_ranged = "noranges" not in query
        if ranges and is_ranged:
            first, _, last = ranges.removeprefix("bytes=").partition("-")
            start, end, status = int(first), int(last) if last else len(data) - 1, 206
        self.send_response(status)
        content_type = "application/gzip" if "gzip" in query else "application/octet-stream"
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(end - start + 1))
        if "noetag" not in query:
            self.send_header("etag", etag)
        if is_ranged:
            self.send_header("accept-ranges", "bytes")
        if status == 206:
            self.send_header("content-range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not body:
            return
        chunk = data[start : end + 1]
        drop = re.search(r"drop=(\d+)", query)
        if drop and self.path not in self.dropped:
            self.dropped.add(self.path)
            self.wfile.write(chunk[: int(drop.group(1))])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)


class HTTPStore:
    """A threaded HTTP file server on 127.0.0.1 and the requests it saw."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log: list[str] = []
        self.held: dict[str, threading.Event] = {}
        handler = type(
            "Handler",
            (FileHandler,),
            {"root": root, "log": self.log, "dropped": set(), "held": self.held},
        )
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def put(self, name: str, data: bytes) -> str:
        """Publish `data` at a fresh path; returns its URL."""
        folder = self.root / uuid.uuid4().hex[:8]
        folder.mkdir()
        (folder / name).write_bytes(data)
        return f"{self.url}/{folder.name}/{name}"

    def hold(self, url: str) -> None:
        """GETs of `url` wait (in the server) until `release(url)`."""
        self.held[url.removeprefix(self.url)] = threading.Event()

    def release(self, url: str) -> None:
        self.held[url.removeprefix(self.url)].set()

    def gets(self, url: str) -> int:
        path = url.removeprefix(self.url)
        return sum(1 for line in self.log if line.startswith(f"GET {path}"))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="session")
def http_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPStore]:
    store = HTTPStore(tmp_path_factory.mktemp("http-root"))
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No cloud credentials or metadata lookups leak in; the cache lives in tmp_path."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "HF_", "S3_")) or name == "STORAGE_EMULATOR_HOST":
            monkeypatch.delenv(name)
    for name, value in ISOLATED_ENV.items():
        monkeypatch.setenv(name, value)
    cache = tmp_path / "cache"
    monkeypatch.setenv("KSRV_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def s3(isolated_env: Path, s3_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The S3 server, with its endpoint and credentials in this test's environment."""
    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)
    return s3_store


@pytest.fixture
def gcs(isolated_env: Path, gcs_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    for name, value in gcs_store.env.items():
        monkeypatch.setenv(name, value)
    return gcs_store


@pytest.fixture
def azure(isolated_env: Path, azure_store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    for name, value in azure_store.env.items():
        monkeypatch.setenv(name, value)
    return azure_store
