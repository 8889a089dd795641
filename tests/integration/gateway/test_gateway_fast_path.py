"""The gateway's fast path (`gateway/fast_path.py`): warm requests answered from callbacks,
and each way such a request leaves it (a dropped connection retried, a client that hangs up, a
timeout, a streamed answer, a refusal, requests pipelined behind it) ending as on the full
path. The gateway and a scripted upstream run on the test's event loop, so the test says when
the upstream answers: nothing depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ksrv import errors
from ksrv.gateway.app import Gateway
from ksrv.gateway.hooks import Call
from tests.integration.gateway.conftest import DOMAIN, service

HOST = "up.default.example.com"
REVISION = "up-predictor-00001"


class Upstream:
    """A replica whose answers the test scripts by path: `/ok/...` answers at once with the
    path as body, `/hold/...` once `release` is set, `/drop/...` closes without answering
    (once; then as `/ok`), `/stream/...` sends one chunk, then the last once `release` is set.
    Each request is announced on `arrived` (its path)."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[str] = asyncio.Queue()
        self.release = asyncio.Event()
        self.dropped = 0
        self.connections = 0
        self.closed = asyncio.Event()  # a connection ended (the client's side closed it)
        self.port = 0
        self.grpc_port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.release.set()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                path = head.split(b" ")[1].decode()
                self.arrived.put_nowait(path)
                if path.startswith("/drop/") and not self.dropped:
                    self.dropped += 1
                    writer.close()
                    return
                if path.startswith("/hold/") and not await self._released_before_eof(reader):
                    return
                if path.startswith("/stream/"):
                    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    writer.write(b"5\r\nfirst\r\n")
                    await self.release.wait()
                    writer.write(b"4\r\nlast\r\n0\r\n\r\n")
                    continue
                body = path.encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            self._writers.discard(writer)
            self._handlers.discard(handler)
            writer.close()

    async def _released_before_eof(self, reader: asyncio.StreamReader) -> bool:
        """Wait for `release`; False if the connection's other end closes first."""
        released = asyncio.ensure_future(self.release.wait())
        eof = asyncio.ensure_future(reader.read(1))
        await asyncio.wait([released, eof], return_when=asyncio.FIRST_COMPLETED)
        eof.cancel()
        released.cancel()
        return self.release.is_set()


class Recorder:
    """A hook: what it saw end, and a refusal for requests that carry `x-refuse`."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []

    def on_request(self, call: Call) -> None:
        if "x-refuse" in call.headers:
            raise errors.PermissionDenied("refused by the test's hook")
        if "x-crash" in call.headers:
            raise RuntimeError("a bug in a hook")

    def on_response(self, call: Call, error: BaseException | None) -> None:
        revision = call.backend.revision if call.backend is not None else ""
        self.outcomes.append((revision, type(error).__name__ if error else ""))


Test = Callable[[Gateway, Upstream, httpx.AsyncClient], Awaitable[None]]


def _run(test: Test, hook: Recorder, timeout_s: float = 60.0) -> Gateway:
    async def run() -> Gateway:
        upstream = Upstream()
        await upstream.start()
        gateway = Gateway(hooks=[hook])
        await gateway.start("127.0.0.1", 0)
        table = {"version": 1, "domain": DOMAIN, "services": [
            service("up", [(100, [upstream])], timeout_s=timeout_s)]}  # fmt: skip
        gateway.set_routes(table)
        url = f"http://127.0.0.1:{gateway.http_port}"
        try:
            async with httpx.AsyncClient(base_url=url, headers={"host": HOST}) as client:
                warm = await client.get("/ok/warm")  # leaves an idle upstream connection
                assert warm.text == "/ok/warm"
                await test(gateway, upstream, client)
        finally:
            await gateway.stop()
            await upstream.stop()
        return gateway

    return asyncio.run(run())


def _outstanding(gateway: Gateway) -> int:
    return sum(e.outstanding for e in gateway.rest.balancer.endpoints.values())


def test_warm_requests_take_the_fast_path_and_the_hooks_see_each_once() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        for index in range(5):
            answer = await client.post(f"/ok/{index}", content=b'{"x": 1}')
            assert (answer.status_code, answer.text) == (200, f"/ok/{index}")
        assert gateway.fast is not None and gateway.fast.taken == 5
        assert upstream.connections == 1  # the warm-up's connection, reused each time
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0

    _run(test, hook)
    assert hook.outcomes == [(REVISION, "")] * 6


def test_a_refusal_is_answered_at_once_and_the_connection_stays_usable() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        refused = await client.get("/ok/no", headers={"x-refuse": "1"})
        assert refused.status_code == 403
        assert refused.json() == {"error": "refused by the test's hook"}
        assert (await client.get("/ok/yes")).text == "/ok/yes"
        assert gateway.fast is not None and gateway.fast.taken == 2
        assert upstream.arrived.qsize() == 2  # the warm-up and /ok/yes: nothing of /ok/no
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0

    _run(test, hook)
    assert hook.outcomes == [(REVISION, ""), ("", "PermissionDenied"), (REVISION, "")]


def test_a_hook_that_fails_is_answered_500_once_and_the_connection_stays_usable() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        crashed = await client.get("/ok/no", headers={"x-crash": "1"})
        assert crashed.status_code == 500
        assert crashed.json() == {"error": "Internal server error"}
        assert (await client.get("/ok/yes")).text == "/ok/yes"  # the next answer is its own
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0

    _run(test, hook)
    assert hook.outcomes == [(REVISION, ""), ("", "RuntimeError"), (REVISION, "")]


def test_a_pooled_connection_dropped_before_any_answer_is_retried_on_a_new_one() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        answer = await client.get("/drop/1")
        assert (answer.status_code, answer.text) == (200, "/drop/1")
        assert upstream.dropped == 1 and upstream.connections == 2
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0

    _run(test, hook)
    assert hook.outcomes == [(REVISION, "")] * 2  # one request, one outcome, retry and all


def test_a_client_that_hangs_up_frees_the_replica_and_the_hooks_hear_it() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        await upstream.arrived.get()  # the warm-up
        upstream.closed.clear()
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
        writer.write(f"GET /hold/1 HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode())
        assert await upstream.arrived.get() == "/hold/1"
        assert gateway.in_flight == 1 and _outstanding(gateway) == 1
        writer.close()
        await upstream.closed.wait()  # the attempt was abandoned: its connection closed
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0
        assert gateway.rest.balancer.endpoints  # and the next request is answered
        upstream.release.set()
        assert (await client.get("/ok/after")).text == "/ok/after"

    _run(test, hook)
    assert hook.outcomes == [(REVISION, ""), (REVISION, "CancelledError"), (REVISION, "")]


def test_a_replica_that_does_not_answer_in_time_is_504_naming_the_component() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        answer = await client.get("/hold/late")
        assert answer.status_code == 504
        assert answer.json()["error"].startswith(
            "predictor of default/up did not answer within 0.5 s"
        )
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0
        upstream.release.set()

    _run(test, hook, timeout_s=0.5)
    assert hook.outcomes == [(REVISION, ""), (REVISION, "UpstreamTimeout")]


def test_a_streamed_answer_is_passed_on_before_it_ends() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/stream/1") as answer:
            chunks = answer.aiter_raw()
            assert await anext(chunks) == b"first"  # while the replica holds the rest back
            assert _outstanding(gateway) == 1  # busy until the body ends
            upstream.release.set()
            assert b"".join([c async for c in chunks]) == b"last"
        assert gateway.fast is not None and gateway.fast.taken == 1
        assert (await client.get("/ok/after")).text == "/ok/after"
        assert gateway.in_flight == 0 and _outstanding(gateway) == 0

    _run(test, hook)
    assert hook.outcomes == [(REVISION, "")] * 3


def test_requests_pipelined_behind_a_fast_one_are_answered_in_order() -> None:
    hook = Recorder()

    async def test(gateway: Gateway, upstream: Upstream, client: httpx.AsyncClient) -> None:
        await upstream.arrived.get()  # the warm-up
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.http_port)
        head = "GET {} HTTP/1.1\r\nhost: " + HOST + "\r\n\r\n"
        writer.write((head.format("/hold/first") + head.format("/ok/second")).encode())
        assert await upstream.arrived.get() == "/hold/first"  # taken by the fast path
        upstream.release.set()
        # The second waited for the first's answer (as on the full path), then went on.
        bodies = [await _read_answer(reader), await _read_answer(reader)]
        assert bodies == [b"/hold/first", b"/ok/second"], bodies
        assert await upstream.arrived.get() == "/ok/second"
        assert gateway.fast is not None and gateway.fast.taken == 1
        writer.close()

    _run(test, hook)
    assert len(hook.outcomes) == 3


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    return await reader.readexactly(length)


def test_with_the_fast_path_off_every_request_takes_the_full_path() -> None:
    async def run() -> Any:
        upstream = Upstream()
        await upstream.start()
        gateway = Gateway(is_fast=False)
        await gateway.start("127.0.0.1", 0)
        gateway.set_routes({"version": 1, "domain": DOMAIN,
                            "services": [service("up", [(100, [upstream])])]})  # fmt: skip
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway.http_port}", headers={"host": HOST}
            ) as client:
                for index in range(3):
                    assert (await client.get(f"/ok/{index}")).text == f"/ok/{index}"
        finally:
            await gateway.stop()
            await upstream.stop()
        return gateway.fast

    assert asyncio.run(run()) is None
