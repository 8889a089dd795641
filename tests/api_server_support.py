"""A real ManagementAPI served from a background thread, for API and CLI tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ksrv.control.api_server import MAX_BODY_BYTES, ManagementAPI
from ksrv.http.server import HTTPServer
from tests.conftest import free_port


class RunningAPI:
    """A ManagementAPI served from a background thread's event loop."""

    def __init__(self, api: ManagementAPI, loop: asyncio.AbstractEventLoop, port: int) -> None:
        self.api = api
        self.loop = loop
        self.url = f"http://127.0.0.1:{port}"

    def call(self, function: Any, *args: Any) -> None:
        """Run `function(*args)` on the server's loop (for the fakes' asyncio state)."""
        self.loop.call_soon_threadsafe(function, *args)


@contextmanager
def running_api(api: ManagementAPI) -> Iterator[RunningAPI]:
    loop = asyncio.new_event_loop()
    port = free_port()
    server = HTTPServer(api, MAX_BODY_BYTES, api.too_large)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start("127.0.0.1", port))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield RunningAPI(api, loop, port)
    finally:
        asyncio.run_coroutine_threadsafe(server.shutdown(1.0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
