"""One supervised replica: start its process, probe it, restart it when it dies, drain it.

Phases: Starting (process up, not answering 200 yet; probed every 10 ms for its first two
seconds, since a forked replica is up in about 0.1 s, then every `starting_probe_interval_s`)
-> Ready -> Failed (the process died, or its readiness probe failed `failure_threshold` times
in a row while it still runs; a probe that passes again makes it Ready). A dead process is
restarted after an exponential back-off that resets once the replica stayed Ready for
`backoff_reset_s`. Each start picks fresh free ports, so a port another program took meanwhile
never wedges a replica. A model server's replica is forked from the platform's fork server
when it has one (`forkserver.py`), else spawned; either is watched the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksrv.control.platforms import local_render, processes, readiness
from ksrv.control.platforms.base import Phase, ReplicaState, RevisionSpec
from ksrv.control.platforms.forkserver import ForkedProcess, ForkServer, is_forkable_env
from ksrv.control.platforms.statefile import ReplicaRecord

logger = logging.getLogger(__name__)

# A replica that dies at once because its port was taken is restarted on new ports at once,
# this many times in a row, before it counts as a failure.
ADDRESS_IN_USE_RETRIES = 3
ADDRESS_IN_USE = ("address already in use", "errno 98")
WATCH_INTERVAL_S = 0.1
# Replicas listen on loopback: only the gateway (on this machine) reaches them.
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Supervision:
    """How replicas are watched, restarted and drained."""

    grace_period_s: float = 30.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_reset_s: float = 60.0
    starting_probe_interval_s: float = 0.1
    ready_probe_interval_s: float = 1.0
    # A forked replica answers within ~0.1 s: probed this often for its first seconds, its
    # readiness costs a few ms instead of up to a whole starting interval.
    quick_probe_interval_s: float = 0.01
    quick_probe_s: float = 2.0
    failure_threshold: int = 3


class LocalReplica:
    """A replica process of one revision and the asyncio task that supervises it."""

    def __init__(
        self,
        spec: RevisionSpec,
        index: int,
        log_path: Path,
        python: str,
        supervision: Supervision,
        changed: Callable[[], None],
        fork_server: ForkServer | None = None,
    ) -> None:
        """With a `fork_server`, a replica of a ksrv model server is forked from it."""
        self.spec = spec
        self.index = index
        self.log_path = log_path
        self._python = python
        self._supervision = supervision
        self._changed = changed
        self._fork_server = fork_server
        self._forked: ForkedProcess | None = None
        self.pid: int | None = None
        self.process_start: int | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        # The ports this replica's process was told, no other replica of ours gets them.
        self._held_ports: list[int] = []
        self.started_at: float | None = None
        self.phase: Phase = "Starting"
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_failure: str | None = None
        self.failures_in_a_row = 0
        self._delay_s = supervision.backoff_initial_s
        self._ready_since = 0.0
        self._log_offset = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    def snapshot(self) -> ReplicaState:
        return ReplicaState(
            index=self.index,
            pid=self.pid,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            phase=self.phase,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            last_failure=self.last_failure,
            log_path=self.log_path,
            started_at=self.started_at,
            host=LOCAL_HOST,
            failures_in_a_row=self.failures_in_a_row,
        )

    def record(self) -> ReplicaRecord:
        return ReplicaRecord(
            index=self.index,
            pid=self.pid,
            process_start=self.process_start,
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            started_at=self.started_at,
            restarts=self.restarts,
        )

    async def adopt(self, record: ReplicaRecord) -> bool:
        """Take over the process a previous run recorded, if it is still that process."""
        self.restarts = record.restarts
        if record.pid is None or not processes.is_running(record.pid, record.process_start):
            return False
        self.pid, self.process_start = record.pid, record.process_start
        self.http_port, self.grpc_port = record.http_port, record.grpc_port
        self._held_ports = processes.hold_ports((self.http_port, self.grpc_port))
        self.started_at = record.started_at
        self._log_offset = processes.log_size(self.log_path)
        # One probe now, so a healthy adopted replica is Ready as soon as start() returns.
        port = self.http_port
        if port is not None and await readiness.probe(port, self.spec.readiness_path) is None:
            self.phase = "Ready"
            self._ready_since = time.monotonic()
        return True

    def run(self) -> None:
        """Start supervising (and the process, unless one was adopted)."""
        self._task = asyncio.create_task(
            self._supervise(), name=f"replica {self.spec.revision}-{self.index}"
        )
        self._task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "supervising replica %s-%s failed: it runs unwatched",
                self.spec.revision,
                self.index,
                exc_info=task.exception(),
            )

    async def detach(self) -> None:
        """Stop supervising; the process keeps running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        """Drain: SIGTERM, wait up to the grace period, then SIGKILL its session; reap it.

        Idempotent: a second caller (remove() during a scale-down drain) waits for the first.
        """
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._drain())
        await self._stopping

    async def _drain(self) -> None:
        await self.detach()
        pid, started = self.pid, self.process_start
        if pid is None:
            return
        self._set_phase("Stopping")
        processes.send(pid, signal.SIGTERM, started)
        if not await self._wait_exit(pid, started, self._supervision.grace_period_s):
            logger.warning(
                "replica %s-%s (pid %s) did not drain in %ss: killing it",
                self.spec.revision,
                self.index,
                pid,
                self._supervision.grace_period_s,
            )
            processes.send(pid, signal.SIGKILL, started)
            await self._wait_exit(pid, started, 10.0)
        processes.kill_group(pid)
        self._forget_process()

    async def _wait_exit(self, pid: int, started: int | None, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._poll(pid, started) is not None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _supervise(self) -> None:
        quick_retries = 0
        while True:
            failure = None if self.pid is not None else await self._launch()
            if failure is None:
                exited = await self._watch()
                failure = self._describe(exited)
                if self._address_in_use() and quick_retries < ADDRESS_IN_USE_RETRIES:
                    quick_retries += 1
                    logger.info(
                        "replica %s-%s: port taken, retrying", self.spec.revision, self.index
                    )
                    self._forget_process()
                    continue
            quick_retries = 0
            logger.warning(
                "replica %s-%s failed, restarting in %ss: %s",
                self.spec.revision,
                self.index,
                self._delay_s,
                failure.splitlines()[0],
            )
            self.last_failure = failure
            self._forget_process()
            self._fail()
            await asyncio.sleep(self._delay_s)
            self._delay_s = min(self._delay_s * 2, self._supervision.backoff_max_s)
            self.restarts += 1

    async def _launch(self) -> str | None:
        """Start the process on fresh ports (forked when it can be); why it could not start,
        or None."""
        http_port, grpc_port = self._held_ports = processes.take_ports(2)
        argv = [
            arg.replace("{http_port}", str(http_port))
            .replace("{grpc_port}", str(grpc_port))
            .replace("{python}", self._python)
            for arg in self.spec.command
        ]
        env = {"PYTHONUNBUFFERED": "1", **os.environ, **_trace_identity(self.spec), **self.spec.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- ksrv: starting {' '.join(argv)}\n")
        self._log_offset = processes.log_size(self.log_path)
        self._forked = await self._fork(argv, env)
        try:
            pid = self._forked.pid if self._forked else processes.spawn(argv, env, self.log_path)
        except OSError as exc:
            self.last_exit_code = None
            return _with_path_hint(f"cannot start {argv[0]}: {exc}", argv)
        self.process_start = processes.start_time(pid)
        self.started_at = time.time()
        self.pid, self.http_port, self.grpc_port = pid, http_port, grpc_port
        self.phase = "Starting"
        self._changed()
        return None

    async def _fork(self, argv: list[str], env: dict[str, str]) -> ForkedProcess | None:
        """The replica forked from the warm fork server, if this one may be (a ksrv model
        server whose env a fork honours); None means: spawn it."""
        server = self._fork_server
        if server is None or not self.spec.is_forkable or not is_forkable_env(self.spec.env):
            return None
        return await server.fork(argv, env, self.log_path)

    def _poll(self, pid: int, started: int | None) -> processes.Exited | None:
        forked = self._forked
        if forked is not None and forked.pid == pid:
            return forked.poll(started)
        return processes.poll(pid, started)

    async def _watch(self) -> processes.Exited:
        """Poll the process and probe it until it exits."""
        assert self.pid is not None and self.http_port is not None
        failures = 0
        next_probe = 0.0
        launched = time.monotonic()
        while True:
            exited = self._poll(self.pid, self.process_start)
            if exited is not None:
                return exited
            now = time.monotonic()
            interval_s = self._probe_interval_s(now - launched)
            if now >= next_probe:
                problem = await readiness.probe(self.http_port, self.spec.readiness_path)
                failures = self._observe_probe(problem, failures)
                next_probe = time.monotonic() + interval_s
            await asyncio.sleep(min(WATCH_INTERVAL_S, interval_s))

    def _probe_interval_s(self, age_s: float) -> float:
        supervision = self._supervision
        if self.phase != "Starting":
            return supervision.ready_probe_interval_s
        if age_s < supervision.quick_probe_s:
            return supervision.quick_probe_interval_s
        return supervision.starting_probe_interval_s

    def _observe_probe(self, problem: str | None, failures: int) -> int:
        """Apply one probe result to the phase; returns the failures in a row."""
        now = time.monotonic()
        if problem is None:
            if self.phase != "Ready":
                self._ready_since = now
                self.failures_in_a_row = 0
                self._set_phase("Ready")
            elif now - self._ready_since >= self._supervision.backoff_reset_s:
                self._delay_s = self._supervision.backoff_initial_s
            return 0
        if self.phase == "Starting":
            return 0
        failures += 1
        if failures >= self._supervision.failure_threshold and self.phase == "Ready":
            self.last_failure = f"readiness probe failed {failures} times in a row: {problem}"
            self._fail()
        return failures

    def _describe(self, exited: processes.Exited) -> str:
        self.last_exit_code = exited.code
        if exited.code is None:
            what = "exited (status unknown: adopted from a previous run)"
        elif exited.code < 0:
            what = f"killed by {signal.Signals(-exited.code).name}"
        else:
            what = f"exited with code {exited.code}"
        tail = processes.log_tail(self.log_path, self._log_offset).rstrip()
        what = _with_path_hint(
            what, [arg.replace("{python}", self._python) for arg in self.spec.command]
        )
        return f"{what}; log tail:\n{tail}" if tail else what

    def _address_in_use(self) -> bool:
        lived_s = time.time() - (self.started_at or 0.0)
        tail = processes.log_tail(self.log_path, self._log_offset).lower()
        return lived_s < 10.0 and any(marker in tail for marker in ADDRESS_IN_USE)

    def _fail(self) -> None:
        self.failures_in_a_row += 1
        self._set_phase("Failed")

    def _set_phase(self, phase: Phase) -> None:
        if phase != self.phase:
            self.phase = phase
            self._changed()

    def _forget_process(self) -> None:
        """The process is gone (exited and reaped, or never started); so is its session:
        children it forked (workers, a shell's sleep) would otherwise outlive it."""
        if self.pid is not None:
            processes.kill_group(self.pid)
            self.pid = self.process_start = None
            self._changed()
        processes.release_ports(self._held_ports)
        self._held_ports = []
        self._forked = None


def _with_path_hint(failure: str, argv: list[str]) -> str:
    """`failure`, followed by what is wrong when the command names a relative path that is
    not where it resolves (the usual reason a custom container exits at once)."""
    if not argv:
        return failure
    hint = local_render.missing_relative_path(argv, Path.cwd())
    return f"{failure}: {hint}" if hint else failure


def _trace_identity(spec: RevisionSpec) -> dict[str, str]:
    """Who this replica is in traces, when the OTEL_* environment turns tracing on: service
    `{isvc}-{component}`, its namespace, and its revision as `service.version` (the
    component's own env, and the platform's OTEL_RESOURCE_ATTRIBUTES, still win)."""
    attributes = f"service.namespace={spec.namespace},service.version={spec.revision}"
    given = os.environ.get("OTEL_RESOURCE_ATTRIBUTES")
    return {
        "OTEL_SERVICE_NAME": f"{spec.isvc}-{spec.component}",
        "OTEL_RESOURCE_ATTRIBUTES": f"{attributes},{given}" if given else attributes,
    }
