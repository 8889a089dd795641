"""A real CloudEvents sink for payload-logger tests and benches: an HTTP server on 127.0.0.1
that parses every POST with the cloudevents library and keeps the events.

`hold()` makes it take requests in but answer none until `release()` (a sink that hangs);
`answers` are the statuses of the next requests, then `status` (a sink that refuses);
`is_closing_idle` drops each connection after answering, without saying so (as a sink
that times idle connections out does).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.http import CloudEvent, from_http

HELD_TIMEOUT_S = 60.0


class EventSink:
    """Collects the CloudEvents POSTed to `url`; stop it with `close()`."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.raw_headers: list[dict[str, str]] = []
        self.status = 200
        self.answers: list[int] = []
        self.is_closing_idle = False
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self.waiting = 0  # requests held by `hold()`
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def of_type(self, suffix: str) -> list[CloudEvent]:
        with self._lock:
            return [e for e in self.events if e["type"].endswith(suffix)]

    def count(self) -> int:
        with self._lock:
            return len(self.events)

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.waiting += 1
        self._released.wait(HELD_TIMEOUT_S)
        event = from_http(headers, body)
        with self._lock:
            self.waiting -= 1
            self.events.append(event)
            self.raw_headers.append(headers)
            return self.answers.pop(0) if self.answers else self.status


def _handler(sink: EventSink) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real sink would

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = sink._record(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
            self.close_connection = sink.is_closing_idle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
