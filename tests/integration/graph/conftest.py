"""A real router on a free port (in this process, on a loop of its own, so a test can seed its
Splitter), and a small real HTTP service for the steps a ksrv model server never plays: one
that answers a chosen status, echoes what it got, or holds its answer until released."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ksrv.graph import app, headers, spec
from tests.conftest import HELD_TIMEOUT_S


class StepService:
    """`POST /echo` answers `{"received": body}`, `/status/N` answers N with KServe's e2e test
    body (`{"detail": "Intentional N code"}`), `/success` the e2e test's success, and `/hold`
    waits until `release()`. Every request's headers and body are kept in `seen`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], Any]] = []
        self.released = threading.Event()
        self.held = threading.Semaphore(0)
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                service.seen.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status, answer = 200, {"received": body}
                if self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                    answer = {"detail": f"Intentional {status} code"}
                elif self.path == "/success":
                    answer = {"predictions": [{"message": "SUCCESS"}]}
                elif self.path == "/hold":
                    service.held.release()
                    service.released.wait(HELD_TIMEOUT_S)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the router gave up on this call and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_held(self) -> None:
        """Until a request is held at `/hold`."""
        assert self.held.acquire(timeout=HELD_TIMEOUT_S), "no request reached /hold"

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class RouterThread:
    """A `graph.app.Router` serving `graph` on 127.0.0.1, its loop on a thread."""

    def __init__(
        self,
        graph: dict[str, Any],
        *,
        step_timeouts: str | None = None,
        propagate: str | None = None,
        seed: int = 0,
    ) -> None:
        parsed = spec.parse_graph(json.dumps(graph), step_timeouts)
        settings = app.RouterSettings(
            parsed, http_port=0, propagate=headers.parse_patterns(propagate), seed=seed
        )
        self.router = app.Router(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.router.start(), self.loop).result(HELD_TIMEOUT_S)
        self.url = f"http://127.0.0.1:{self.router.http_port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.router.stop(1.0), self.loop).result(HELD_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def step_service() -> Iterator[StepService]:
    service = StepService()
    yield service
    service.close()


@pytest.fixture
def start_router() -> Iterator[Callable[..., RouterThread]]:
    """Factory: routers for the graphs a test gives, all stopped at teardown."""
    started: list[RouterThread] = []

    def start(nodes: dict[str, Any], **options: Any) -> RouterThread:
        graph = {"nodes": nodes, **options.pop("spec", {})}
        router = RouterThread(graph, **options)
        started.append(router)
        return router

    yield start
    for router in started:
        router.stop()
