"""Replicas forked from the warm `ksrv forkserver`, supervised by a real LocalPlatform: they
serve every protocol, are restarted and stopped like spawned ones, and a fork server that dies
is survived. Every process a test starts, the fork server included, is gone at teardown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest

from ksrv.control.platforms import processes
from ksrv.control.platforms.base import RevisionSpec, RevisionState
from ksrv.control.platforms.forkserver import ForkServer
from ksrv.control.platforms.local import LocalPlatform
from ksrv.control.platforms.replica import Supervision
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests import models
from tests.conftest import HELD_TIMEOUT_S, wait_until_async

KSRV_SERVE = [sys.executable, "-m", "ksrv.cli.main", "serve"]
PORTS = ["--http-port", "{http_port}", "--grpc-port", "{grpc_port}"]
FAST = Supervision(grace_period_s=10.0, backoff_initial_s=0.2, ready_probe_interval_s=0.2)
HTTP_SCRIPT = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class Forking:
    """Platforms with fork servers; remembers every process seen, to prove none outlives
    the test."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.seen: dict[int, int | None] = {}
        self.platforms: list[LocalPlatform] = []
        self.fork_servers: list[ForkServer] = []

    def platform(self, restart_delay_s: float = 0.0) -> tuple[LocalPlatform, ForkServer]:
        fork_server = ForkServer(self.state_dir / "forkserver.log", restart_delay_s=restart_delay_s)
        platform: LocalPlatform

        def on_change() -> None:
            if fork_server.pid is not None:
                self.remember(fork_server.pid)
            for revision in platform.observe().values():
                for replica in revision.replicas:
                    if replica.pid is not None:
                        self.remember(replica.pid)

        platform = LocalPlatform(
            self.state_dir, on_change, supervision=FAST, fork_server=fork_server
        )
        self.platforms.append(platform)
        self.fork_servers.append(fork_server)
        return platform, fork_server

    def remember(self, pid: int) -> None:
        if pid not in self.seen:
            self.seen[pid] = processes.start_time(pid)

    def run(self, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `scenario`, then shut every platform down on the same event loop (the fork
        server's socket belongs to it)."""

        async def bounded() -> None:
            try:
                async with asyncio.timeout(120.0):
                    await scenario()
            finally:
                for platform in self.platforms:
                    await platform.shutdown(stop_replicas=True)

        asyncio.run(bounded())

    def running(self) -> list[int]:
        return [pid for pid, start in self.seen.items() if processes.is_running(pid, start)]


@pytest.fixture
def forking(tmp_path: Path) -> Iterator[Forking]:
    forking = Forking(tmp_path)
    yield forking
    leftovers = forking.running()
    for pid in leftovers:  # a failed test must not leak processes either
        processes.send(pid, signal.SIGKILL, forking.seen[pid])
    assert leftovers == [], f"processes left running: {leftovers}"
    assert all(server.pid is None for server in forking.fork_servers)


@pytest.fixture(scope="module")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


def iris_spec(
    model_dir: Path, replicas: int = 1, env: dict[str, str] | None = None, name: str = "iris"
) -> RevisionSpec:
    command = [*KSRV_SERVE, "--model-format", "sklearn", "--storage-uri", str(model_dir)]
    return RevisionSpec(
        namespace="default",
        isvc=name,
        component="predictor",
        revision=f"{name}-predictor-00001",
        command=[*command, "--model-name", "iris", *PORTS],
        env=env or {},
        replicas=replicas,
        is_forkable=True,
    )


async def until(
    platform: LocalPlatform, key: tuple[str, str], is_done: Callable[[RevisionState], bool]
) -> RevisionState:
    def reached() -> bool:
        state = platform.observe().get(key)
        return state is not None and is_done(state)

    await wait_until_async(reached, f"{key} reaches the state wanted", timeout_s=60.0)
    return platform.observe()[key]


def ready(count: int) -> Callable[[RevisionState], bool]:
    return lambda state: (
        len(state.replicas) == count and all(r.phase == "Ready" for r in state.replicas)
    )


def restarted_and_ready(state: RevisionState) -> bool:
    (replica,) = state.replicas
    return replica.restarts >= 1 and replica.phase == "Ready"


def parent(pid: int | None) -> int:
    assert pid is not None
    return psutil.Process(pid).ppid()


async def predicts_iris(http_port: int | None, grpc_port: int | None) -> None:
    """V1, V2 REST and gRPC each give the classes the model gives in-process."""
    expected, _ = models.iris_expected(models.IRIS_ROWS)
    base = f"http://127.0.0.1:{http_port}"
    async with httpx.AsyncClient(timeout=HELD_TIMEOUT_S) as client:
        v1 = await client.post(
            f"{base}/v1/models/iris:predict", json={"instances": models.IRIS_ROWS}
        )
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == expected
        tensor = {"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                  "data": [x for row in models.IRIS_ROWS for x in row]}  # fmt: skip
        v2 = await client.post(f"{base}/v2/models/iris/infer", json={"inputs": [tensor]})
        assert v2.status_code == 200, v2.text
        assert v2.json()["outputs"][0]["data"] == expected
    request = pb.ModelInferRequest(model_name="iris")
    tensor_pb = request.inputs.add(name="input-0", datatype="FP64", shape=[2, 4])
    tensor_pb.contents.fp64_contents.extend(x for row in models.IRIS_ROWS for x in row)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = await stub.ModelInfer(request, timeout=HELD_TIMEOUT_S)
    assert list(response.outputs[0].contents.int64_contents) == expected


def test_forked_replicas_serve_v1_v2_and_grpc_with_output_in_their_logs(
    forking: Forking, iris_dir: Path
) -> None:
    async def scenario() -> None:
        platform, fork_server = forking.platform()
        await platform.start()
        spec = iris_spec(iris_dir, 2)
        await platform.ensure(spec)
        state = await until(platform, spec.key, ready(2))
        for replica in state.replicas:
            assert parent(replica.pid) == fork_server.pid  # forked, not spawned
            assert os.getsid(replica.pid) == replica.pid  # its own session
            await predicts_iris(replica.http_port, replica.grpc_port)
            log = replica.log_path.read_text()
            assert f"listening on http://127.0.0.1:{replica.http_port}" in log

    forking.run(scenario)


def test_a_killed_forked_replica_is_restarted_and_its_signal_reported(
    forking: Forking, iris_dir: Path
) -> None:
    async def scenario() -> None:
        platform, fork_server = forking.platform()
        await platform.start()
        spec = iris_spec(iris_dir)
        await platform.ensure(spec)
        (before,) = (await until(platform, spec.key, ready(1))).replicas
        assert before.pid is not None
        os.kill(before.pid, signal.SIGKILL)
        (after,) = (await until(platform, spec.key, restarted_and_ready)).replicas
        assert after.pid != before.pid and parent(after.pid) == fork_server.pid
        # Only the fork server, the replica's parent, could tell this.
        assert after.last_exit_code == -9
        assert after.last_failure is not None and "SIGKILL" in after.last_failure

    forking.run(scenario)


def test_a_forked_replica_that_fails_reports_its_exit_code_and_log_tail(
    forking: Forking, tmp_path: Path
) -> None:
    async def scenario() -> None:
        platform, _ = forking.platform()
        await platform.start()
        spec = iris_spec(tmp_path / "no-such-model")
        await platform.ensure(spec)
        (replica,) = (
            await until(platform, spec.key, lambda s: s.replicas[0].failures_in_a_row >= 1)
        ).replicas
        assert replica.last_exit_code == 2  # `ksrv serve: ...`, as a spawned one exits
        assert replica.last_failure is not None
        assert "no-such-model" in replica.last_failure

    forking.run(scenario)


def test_removing_a_revision_stops_its_forked_replicas_and_their_sessions(
    forking: Forking, iris_dir: Path
) -> None:
    async def scenario() -> None:
        platform, fork_server = forking.platform()
        await platform.start()
        spec = iris_spec(iris_dir, 2)
        await platform.ensure(spec)
        state = await until(platform, spec.key, ready(2))
        pids = [r.pid for r in state.replicas if r.pid is not None]
        await platform.remove("default", spec.revision)
        assert platform.observe() == {}
        assert all(processes.start_time(pid) is None for pid in pids)
        # Nothing of theirs is left, and the fork server reaped them (no zombies).
        assert psutil.Process(fork_server.pid).children() == []

    forking.run(scenario)


def test_custom_commands_and_env_read_at_import_spawn_as_before(
    forking: Forking, iris_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "http_script.py"
    script.write_text(HTTP_SCRIPT)

    async def scenario() -> None:
        platform, fork_server = forking.platform()
        await platform.start()
        custom = RevisionSpec("default", "custom", "predictor", "custom-predictor-00001",
                              ["{python}", str(script), "{http_port}"])  # fmt: skip
        threads = iris_spec(iris_dir, env={"OMP_NUM_THREADS": "1"}, name="threads")
        for spec in (custom, threads):
            await platform.ensure(spec)
            (replica,) = (await until(platform, spec.key, ready(1))).replicas
            assert parent(replica.pid) == os.getpid(), spec.revision  # spawned by us
        (replica,) = platform.observe()[threads.key].replicas
        assert psutil.Process(replica.pid).environ()["OMP_NUM_THREADS"] == "1"
        await predicts_iris(replica.http_port, replica.grpc_port)
        assert fork_server.pid is not None  # it runs, it was just not asked

    forking.run(scenario)


def test_a_dead_fork_server_is_restarted_and_its_replicas_stay_supervised(
    forking: Forking, iris_dir: Path
) -> None:
    async def scenario() -> None:
        platform, fork_server = forking.platform()
        await platform.start()
        spec = iris_spec(iris_dir)
        await platform.ensure(spec)
        (before,) = (await until(platform, spec.key, ready(1))).replicas
        first_server = fork_server.pid
        assert first_server is not None
        os.kill(first_server, signal.SIGKILL)
        await wait_until_async(
            lambda: processes.start_time(first_server) is None, "the fork server dies"
        )
        await predicts_iris(before.http_port, before.grpc_port)  # it serves on
        assert before.pid is not None
        os.kill(before.pid, signal.SIGKILL)  # seen through /proc now: no exit code
        (after,) = (await until(platform, spec.key, restarted_and_ready)).replicas
        assert after.last_exit_code is None
        assert fork_server.pid not in (None, first_server)
        assert parent(after.pid) == fork_server.pid  # forked by the new fork server
        await predicts_iris(after.http_port, after.grpc_port)

    forking.run(scenario)


def test_replicas_spawn_while_a_fork_server_that_died_young_waits_to_restart(
    forking: Forking, iris_dir: Path
) -> None:
    async def scenario() -> None:
        platform, fork_server = forking.platform(restart_delay_s=3600.0)
        await platform.start()
        dead = fork_server.pid
        assert dead is not None
        os.kill(dead, signal.SIGKILL)
        await wait_until_async(lambda: processes.start_time(dead) is None, "the fork server dies")
        spec = iris_spec(iris_dir)
        await platform.ensure(spec)
        (replica,) = (await until(platform, spec.key, ready(1))).replicas
        assert parent(replica.pid) == os.getpid()
        assert fork_server.pid is None
        await predicts_iris(replica.http_port, replica.grpc_port)

    forking.run(scenario)
