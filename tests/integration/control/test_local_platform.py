"""LocalPlatform with real processes: `ksrv serve` replicas for the main path, a tiny
http.server script where restarts must be quick. Every process a test starts is tracked and
must be gone at teardown."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksrv.control.platforms import processes, statefile
from ksrv.control.platforms.base import RevisionSpec, RevisionState
from ksrv.control.platforms.local import LocalPlatform
from ksrv.control.platforms.replica import Supervision
from tests import models
from tests.conftest import HELD_TIMEOUT_S, ModelCalls, wait_until_async

TOYS = Path(__file__).parents[2] / "toys.py"
KSRV_SERVE = [sys.executable, "-m", "ksrv.cli.main", "serve"]
PORTS = ["--http-port", "{http_port}", "--grpc-port", "{grpc_port}"]
FAST = Supervision(grace_period_s=10.0, backoff_initial_s=0.2, ready_probe_interval_s=0.2)

# Answers GET with 200, or 503 while the file $UNREADY_FILE exists, and appends its pid to
# $PROBE_LOG for each GET (probes a test can count). With $PORT_TAKEN_ONCE it first fails
# the way a server whose port was taken does (once: it leaves that file behind).
HTTP_SCRIPT = """
import http.server, os, sys
taken = os.environ.get("PORT_TAKEN_ONCE")
if taken and not os.path.exists(taken):
    open(taken, "w").close()
    print("OSError: [Errno 98] Address already in use", flush=True)
    sys.exit(1)
unready = os.environ.get("UNREADY_FILE")
probes = os.environ.get("PROBE_LOG")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if probes:
            with open(probes, "a") as log:
                log.write("%d\\n" % os.getpid())
        self.send_response(503 if unready and os.path.exists(unready) else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class Tracker:
    """Remembers every replica process seen, to prove none outlives its test."""

    def __init__(self) -> None:
        self.seen: dict[int, int | None] = {}
        self.platforms: list[LocalPlatform] = []

    def platform(self, state_dir: Path, supervision: Supervision = FAST) -> LocalPlatform:
        platform: LocalPlatform

        def on_change() -> None:
            for revision in platform.observe().values():
                for replica in revision.replicas:
                    if replica.pid is not None and replica.pid not in self.seen:
                        self.seen[replica.pid] = processes.start_time(replica.pid)

        platform = LocalPlatform(state_dir, on_change, supervision=supervision)
        self.platforms.append(platform)
        return platform

    def running(self) -> list[int]:
        return [pid for pid, start in self.seen.items() if processes.is_running(pid, start)]


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    tracker = Tracker()
    yield tracker

    async def stop_all() -> None:
        for platform in tracker.platforms:
            await platform.shutdown(stop_replicas=True)

    asyncio.run(stop_all())
    leftovers = tracker.running()
    for pid in leftovers:  # a failed test must not leak processes either
        processes.send(pid, signal.SIGKILL, tracker.seen[pid])
    assert leftovers == [], f"processes left running: {leftovers}"


@pytest.fixture(scope="module")
def iris_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.sklearn_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture
def http_script(tmp_path: Path) -> Path:
    path = tmp_path / "http_script.py"
    path.write_text(HTTP_SCRIPT)
    return path


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout_s: float = 90.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout_s):
            await scenario()

    asyncio.run(bounded())


def spec(command: list[str], replicas: int, env: dict[str, str] | None = None) -> RevisionSpec:
    return RevisionSpec(
        namespace="default",
        isvc="demo",
        component="predictor",
        revision="demo-predictor-00001",
        command=command,
        env=env or {},
        replicas=replicas,
    )


def http_spec(script: Path, replicas: int, env: dict[str, str] | None = None) -> RevisionSpec:
    return spec(["{python}", str(script), "{http_port}"], replicas, env)


def iris_spec(model_dir: Path, replicas: int) -> RevisionSpec:
    command = [*KSRV_SERVE, "--model-format", "sklearn", "--model-dir", str(model_dir)]
    return spec([*command, "--model-name", "iris", *PORTS], replicas)


async def until(
    platform: LocalPlatform,
    key: tuple[str, str],
    is_done: Callable[[RevisionState], bool],
    timeout_s: float = 30.0,
) -> RevisionState:
    """Poll observe() until `is_done` holds for the revision."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = platform.observe().get(key)
        if state is not None and is_done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s}s: {state}")
        await asyncio.sleep(0.05)


def all_ready(count: int) -> Callable[[RevisionState], bool]:
    return lambda state: (
        len(state.replicas) == count and all(r.phase == "Ready" for r in state.replicas)
    )


async def infer_iris(client: httpx.AsyncClient, port: int | None) -> list[int]:
    response = await client.post(
        f"http://127.0.0.1:{port}/v1/models/iris:predict",
        json={"instances": models.IRIS_ROWS},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def test_iris_replicas_become_ready_on_their_own_ports_and_scale_2_1_3(
    tracker: Tracker, tmp_path: Path, iris_model_dir: Path
) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        two = iris_spec(iris_model_dir, 2)
        await platform.ensure(two)
        state = await until(platform, two.key, all_ready(2))
        ports = {port for r in state.replicas for port in (r.http_port, r.grpc_port)}
        assert len(ports) == 4
        async with httpx.AsyncClient(timeout=10) as client:
            for replica in state.replicas:
                assert await infer_iris(client, replica.http_port) == [1, 1]
                assert replica.log_path == tmp_path / "logs/default" / (
                    f"demo-predictor-00001-{replica.index}.log"
                )
            first = state.replicas[0]

            await platform.ensure(iris_spec(iris_model_dir, 1))
            state = await until(platform, two.key, lambda s: len(s.replicas) == 1)
            assert [(r.index, r.pid) for r in state.replicas] == [(0, first.pid)]

            await platform.ensure(iris_spec(iris_model_dir, 3))
            state = await until(platform, two.key, all_ready(3))
            assert [r.index for r in state.replicas] == [0, 1, 2]
            assert state.replicas[0].pid == first.pid
            for replica in state.replicas:
                assert await infer_iris(client, replica.http_port) == [1, 1]

    run(scenario)


def test_remove_answers_an_in_flight_request_before_the_replica_exits(
    tracker: Tracker, tmp_path: Path
) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        gate = spec([*KSRV_SERVE, f"{TOYS}:Gate", "--model-name", "gate", *PORTS], 1)
        await platform.ensure(gate)
        (replica,) = (await until(platform, gate.key, all_ready(1))).replicas
        with ModelCalls() as calls:
            async with httpx.AsyncClient(timeout=HELD_TIMEOUT_S) as client:
                request = asyncio.create_task(
                    client.post(
                        f"http://127.0.0.1:{replica.http_port}/v1/models/gate:predict",
                        json={"instances": [1], "port": calls.port},
                    )
                )
                await asyncio.to_thread(calls.wait_for, 1)  # inside predict, held there
                removal = asyncio.create_task(platform.remove("default", gate.revision))
                await until(platform, gate.key, lambda s: s.replicas[0].phase == "Stopping")
                assert not request.done() and not removal.done()
                calls.release()
                response = await request
                await removal
        assert response.status_code == 200, response.text
        assert response.json()["pid"] == replica.pid
        assert platform.observe() == {}
        assert replica.pid is not None and processes.start_time(replica.pid) is None

    run(scenario)


def test_killed_replica_is_restarted_on_a_new_pid(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        revision = http_spec(http_script, 1)
        await platform.ensure(revision)
        (before,) = (await until(platform, revision.key, all_ready(1))).replicas
        assert before.pid is not None
        os.kill(before.pid, signal.SIGKILL)
        (after,) = (
            await until(
                platform,
                revision.key,
                lambda s: s.replicas[0].restarts == 1 and s.replicas[0].phase == "Ready",
            )
        ).replicas
        assert after.pid != before.pid
        assert after.last_exit_code == -9
        assert after.last_failure is not None and "SIGKILL" in after.last_failure

    run(scenario)


def test_command_that_exits_at_once_fails_with_its_log_tail_and_backs_off(
    tracker: Tracker, tmp_path: Path
) -> None:
    stamps = tmp_path / "stamps"
    script = (
        f"import time; open({str(stamps)!r}, 'a').write(f'{{time.time()}}\\n'); "
        "print('boom: no model here'); raise SystemExit(3)"
    )

    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        crashing = spec([sys.executable, "-c", script], 1)
        await platform.ensure(crashing)
        (replica,) = (
            await until(
                platform,
                crashing.key,
                lambda s: s.replicas[0].restarts >= 3 and s.replicas[0].phase == "Failed",
            )
        ).replicas
        assert replica.last_exit_code == 3
        assert replica.last_failure is not None
        assert replica.last_failure.startswith("exited with code 3")
        assert "boom: no model here" in replica.last_failure
        starts = [float(line) for line in stamps.read_text().split()]
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        # back-off 0.2 s, 0.4 s, 0.8 s, plus each attempt's start-up time (lower bounds only:
        # the machine may be busy)
        assert len(gaps) >= 3
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8

    run(scenario)


def test_failing_replica_is_failed_between_attempts(tracker: Tracker, tmp_path: Path) -> None:
    async def scenario() -> None:
        supervision = Supervision(backoff_initial_s=5.0)
        platform = tracker.platform(tmp_path, supervision)
        crashing = spec([sys.executable, "-c", "raise SystemExit(1)"], 1)
        await platform.ensure(crashing)
        (replica,) = (
            await until(platform, crashing.key, lambda s: s.replicas[0].phase == "Failed")
        ).replicas
        assert replica.pid is None and replica.restarts == 0
        assert replica.last_exit_code == 1

    run(scenario)


def test_a_command_that_cannot_start_is_failed(tracker: Tracker, tmp_path: Path) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        missing = spec([str(tmp_path / "no-such-program")], 1)
        await platform.ensure(missing)
        (replica,) = (
            await until(platform, missing.key, lambda s: s.replicas[0].phase == "Failed")
        ).replicas
        assert replica.last_failure is not None
        assert replica.last_failure.startswith("cannot start")

    run(scenario)


def test_new_platform_adopts_running_replicas_without_restarting_them(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    async def scenario() -> None:
        first = tracker.platform(tmp_path)
        probes = tmp_path / "probes.log"
        revision = http_spec(http_script, 2, {"PROBE_LOG": str(probes)})
        await first.ensure(revision)
        before = (await until(first, revision.key, all_ready(2))).replicas
        await first.shutdown(stop_replicas=False)
        assert (tmp_path / "platform.json").is_file()

        second = tracker.platform(tmp_path)
        await second.start()
        adopted = second.observe()[revision.key]
        assert adopted.spec == statefile.read(tmp_path / "platform.json")[0].spec
        assert [(r.pid, r.http_port, r.phase) for r in adopted.replicas] == [
            (r.pid, r.http_port, "Ready") for r in before
        ]
        probed = Counter(probes.read_text().split())
        await wait_until_async(  # several probe rounds of the new platform later
            lambda: all(
                Counter(probes.read_text().split())[str(r.pid)] >= probed[str(r.pid)] + 3
                for r in before
            ),
            "three more probes of each replica",
        )
        assert [(r.pid, r.phase, r.restarts) for r in second.observe()[revision.key].replicas] == [
            (r.pid, "Ready", 0) for r in before
        ]

        # An adopted replica that dies is restarted as the new platform's own child.
        assert before[1].pid is not None
        os.kill(before[1].pid, signal.SIGKILL)
        state = await until(
            second, revision.key, lambda s: all_ready(2)(s) and s.replicas[1].restarts == 1
        )
        assert state.replicas[1].pid != before[1].pid

        await second.shutdown(stop_replicas=True)
        assert second.observe() == {}
        assert tracker.running() == []

    run(scenario)


def test_state_file_naming_a_dead_pid_restarts_the_replica(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    dead = os.posix_spawnp("true", ["true"], dict(os.environ))
    os.waitpid(dead, 0)
    revision = http_spec(http_script, 1)
    record = statefile.ReplicaRecord(
        index=0,
        pid=dead,
        process_start=12345,
        http_port=1,
        grpc_port=2,
        started_at=time.time() - 60,
        restarts=4,
    )
    statefile.write(tmp_path / "platform.json", [statefile.RevisionRecord(revision, [record])])

    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        await platform.start()
        (replica,) = (await until(platform, revision.key, all_ready(1))).replicas
        assert replica.pid not in (None, dead)
        assert replica.http_port != 1
        assert replica.restarts == 4

    run(scenario)


def test_unreadable_state_file_starts_empty(tracker: Tracker, tmp_path: Path) -> None:
    (tmp_path / "platform.json").write_text("{not json")

    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        await platform.start()
        assert platform.observe() == {}

    run(scenario)


def test_a_revision_is_immutable_except_for_its_replica_count(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        await platform.ensure(http_spec(http_script, 0))
        with pytest.raises(ValueError, match="new revision name"):
            await platform.ensure(http_spec(http_script, 0, {"UNREADY_FILE": "x"}))
        with pytest.raises(ValueError, match="replicas must be >= 0"):
            await platform.ensure(http_spec(http_script, -1))
        await platform.remove("default", "no-such-revision")
        assert list(platform.observe()) == [("default", "demo-predictor-00001")]

    run(scenario)


def test_replica_that_stops_answering_is_failed_until_it_answers_again(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    unready = tmp_path / "unready"

    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        revision = http_spec(http_script, 1, {"UNREADY_FILE": str(unready)})
        await platform.ensure(revision)
        (ready,) = (await until(platform, revision.key, all_ready(1))).replicas
        unready.touch()
        (failed,) = (
            await until(platform, revision.key, lambda s: s.replicas[0].phase == "Failed")
        ).replicas
        assert failed.pid == ready.pid  # still running: not restarted
        assert failed.last_failure is not None
        assert failed.last_failure.startswith("readiness probe failed 3 times in a row")
        assert "503" in failed.last_failure
        unready.unlink()
        (again,) = (await until(platform, revision.key, all_ready(1))).replicas
        assert (again.pid, again.restarts) == (ready.pid, 0)

    run(scenario)


def test_replica_whose_port_was_taken_is_started_again_on_new_ports_at_once(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    async def scenario() -> None:
        supervision = Supervision(backoff_initial_s=30.0)  # a back-off would time the test out
        platform = tracker.platform(tmp_path, supervision)
        revision = http_spec(http_script, 1, {"PORT_TAKEN_ONCE": str(tmp_path / "taken")})
        await platform.ensure(revision)
        (replica,) = (await until(platform, revision.key, all_ready(1), timeout_s=10)).replicas
        assert (replica.restarts, replica.last_failure) == (0, None)
        log = replica.log_path.read_text()
        assert log.count("--- ksrv: starting") == 2
        assert "Address already in use" in log

    run(scenario)


# A control plane in another process: starts replicas, waits for them, exits leaving them up.
FIRST_CONTROL_PLANE = """
import asyncio, sys
from pathlib import Path
from ksrv.control.platforms.base import RevisionSpec
from ksrv.control.platforms.local import LocalPlatform

async def main():
    platform = LocalPlatform(Path(sys.argv[1]))
    spec = RevisionSpec("default", "demo", "predictor", "demo-predictor-00001",
                        ["{python}", sys.argv[2], "{http_port}"], {}, 2)
    await platform.ensure(spec)
    while not all(r.phase == "Ready" for r in platform.observe()[spec.key].replicas):
        await asyncio.sleep(0.05)
    await platform.shutdown(stop_replicas=False)

asyncio.run(main())
"""


def test_replicas_of_an_exited_control_plane_are_adopted_watched_and_stopped(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    """The real restart: the adopted replicas are no longer anyone's children here."""
    first = subprocess.run(
        [sys.executable, "-c", FIRST_CONTROL_PLANE, str(tmp_path), str(http_script)],
        timeout=60,
        capture_output=True,
        text=True,
        check=False,
    )
    (recorded,) = statefile.read(tmp_path / "platform.json")
    for replica in recorded.replicas:  # so teardown stops them whatever happens next
        assert replica.pid is not None
        tracker.seen[replica.pid] = replica.process_start
    assert first.returncode == 0, first.stderr
    key = recorded.spec.key

    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        await platform.start()
        adopted = platform.observe()[key].replicas
        assert [(r.pid, r.phase) for r in adopted] == [(r.pid, "Ready") for r in recorded.replicas]
        assert adopted[0].pid is not None
        os.kill(adopted[0].pid, signal.SIGKILL)
        state = await until(
            platform, key, lambda s: all_ready(2)(s) and s.replicas[0].restarts == 1
        )
        assert state.replicas[0].pid != adopted[0].pid
        assert state.replicas[0].last_exit_code is None  # not our child: status unknown
        assert state.replicas[1].pid == adopted[1].pid
        await platform.shutdown(stop_replicas=True)
        assert tracker.running() == []

    run(scenario)


# Ignores SIGTERM and forks a worker into its session (as `ksrv serve --workers 2` does).
STUBBORN_SCRIPT = """
import http.server, signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen(["sleep", "60"])
with open(sys.argv[2], "w") as f:
    f.write(str(worker.pid))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_replica_that_ignores_sigterm_is_killed_with_its_workers_after_the_grace_period(
    tracker: Tracker, tmp_path: Path
) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN_SCRIPT)
    worker_file = tmp_path / "worker.pid"

    async def scenario() -> None:
        platform = tracker.platform(tmp_path, Supervision(grace_period_s=0.5))
        revision = spec(["{python}", str(script), "{http_port}", str(worker_file)], 1)
        await platform.ensure(revision)
        (replica,) = (await until(platform, revision.key, all_ready(1))).replicas
        worker = int(worker_file.read_text())
        tracker.seen[worker] = processes.start_time(worker)
        started = time.monotonic()
        await platform.remove("default", revision.revision)
        assert time.monotonic() - started >= 0.5  # it waited out the grace period first
        assert replica.pid is not None and processes.start_time(replica.pid) is None
        # SIGKILL is delivered asynchronously: the worker goes, however long that takes.
        await wait_until_async(lambda: processes.start_time(worker) is None, "worker killed")

    run(scenario)


def test_scale_down_drains_a_replica_that_is_not_ready_before_a_ready_one(
    tracker: Tracker, tmp_path: Path, http_script: Path
) -> None:
    async def scenario() -> None:
        platform = tracker.platform(tmp_path)
        await platform.ensure(http_spec(http_script, 2))
        state = await until(platform, ("default", "demo-predictor-00001"), all_ready(2))
        first, second = state.replicas
        assert first.pid is not None and second.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await until(
            platform,
            ("default", "demo-predictor-00001"),
            lambda s: s.replicas[0].phase != "Ready",
        )
        await platform.ensure(http_spec(http_script, 1))
        state = await until(
            platform, ("default", "demo-predictor-00001"), lambda s: len(s.replicas) == 1
        )
        (kept,) = state.replicas
        assert (kept.index, kept.pid, kept.phase) == (1, second.pid, "Ready")

    run(scenario)
