"""The control plane's side of the fork server: start it, ask it for replicas, learn their exits.

`ksrv forkserver` (`ksrv.server.forked`) is a warm process that has imported the model server;
a replica forked from it is up in a fraction of the time a fresh `ksrv serve` needs, and shares
its pages. It is started once per platform, as a child of the control plane holding one end of
a socket pair (it exits when we hang up or die), and restarted when a replica is next needed
after it died (one that keeps dying young is left alone for a while: replicas spawn
meanwhile). Anything it cannot do (not up, refused, died, no answer) makes `fork` answer None,
and the caller spawns the replica as before.

A forked replica is not our child, so `waitpid` cannot watch it. The fork server, its parent,
reaps it and reports its exit status on the socket. Liveness otherwise comes from /proc (PID
plus start time, as for replicas adopted from an earlier run), which also covers a fork server
that died: its replicas keep running and are still watched, only their exit codes are unknown.
(A pidfd would tell that a replica exited, but not how: only its parent may read that.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ksrv.control.platforms import processes

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 60.0
"""How long a fork may take: the first replica of a format waits for its runtime's imports."""
RESTART_DELAY_S = 10.0
"""A fork server that died within this long of starting is not restarted for this long."""
REPORT_GRACE_S = 5.0
"""How long a replica /proc shows gone may wait for the fork server's word on its exit."""
# Variables read when the interpreter or a pre-imported library starts (threads, allocators,
# import paths): a replica whose spec sets one is spawned, since a fork would ignore it.
IMPORT_TIME_ENV = (
    "PYTHON", "LD_", "MALLOC", "OMP_", "MKL_", "OPENBLAS_", "GOTO", "KMP_", "VECLIB_",
    "NUMEXPR_", "GRPC_", "SKLEARN_", "JOBLIB_", "SCIPY_", "NPY_", "NUMPY_",
)  # fmt: skip


def is_forkable_env(env: Mapping[str, str]) -> bool:
    """True when a forked replica would honour `env` as a fresh process does."""
    return not any(name.upper().startswith(IMPORT_TIME_ENV) for name in env)


class ForkedProcess:
    """A replica the fork server forked; its exit code once the fork server reported it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exit_code: int | None = None
        self.is_reported = False
        self.is_lost = False  # the fork server is gone: nobody will report the exit
        self._gone_since: float | None = None

    def poll(self, started: int | None) -> processes.Exited | None:
        """As `processes.poll`, with the exit code the fork server reported."""
        if self.is_reported:
            return processes.Exited(self.exit_code)
        if self.is_lost:
            return processes.poll(self.pid, started)
        if processes.is_running(self.pid, started):
            return None
        # Gone (or a zombie the fork server is about to reap): its report is on the way.
        now = time.monotonic()
        self._gone_since = self._gone_since or now
        return processes.Exited(None) if now - self._gone_since > REPORT_GRACE_S else None


class ForkServer:
    """One `ksrv forkserver` process, started on first need and restarted after it died."""

    def __init__(
        self, log_path: Path, python: str = sys.executable, restart_delay_s: float = RESTART_DELAY_S
    ) -> None:
        self.log_path = log_path
        self.python = python
        self.restart_delay_s = restart_delay_s
        self.pid: int | None = None
        self._started: int | None = None
        self._started_at = 0.0
        self._not_before = 0.0
        self._is_closed = False
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[ForkedProcess | None]] = {}
        self._forked: dict[int, ForkedProcess] = {}
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Start the process now, unless it runs (it imports for a moment; requests sent
        meanwhile wait in its socket)."""
        async with self._starting:  # replicas starting together share one fork server
            await self._start()

    async def _start(self) -> None:
        if self._is_closed or self._is_running():
            return
        if self.pid is not None:
            lived_s = time.monotonic() - self._started_at
            logger.warning("the fork server (pid %d) exited after %.1fs", self.pid, lived_s)
            await self._hang_up()
            if lived_s < self.restart_delay_s:
                self._not_before = time.monotonic() + self.restart_delay_s
        if time.monotonic() < self._not_before:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [self.python, "-m", "ksrv.cli.main", "forkserver", "--fd", "3"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            with theirs:
                self.pid = processes.spawn(argv, env, self.log_path, [theirs.fileno()])
        except OSError as exc:
            ours.close()
            logger.warning("cannot start the fork server: %s", exc)
            self._not_before = time.monotonic() + self.restart_delay_s
            return
        self._started = processes.start_time(self.pid)
        self._started_at = time.monotonic()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._reading = asyncio.create_task(self._read(reader), name="fork server answers")
        logger.info("fork server started (pid %d)", self.pid)

    async def fork(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> ForkedProcess | None:
        """Fork a replica running `argv`; None when the fork server cannot (spawn it then).

        A replica forked for a caller cancelled meanwhile is stopped, never left behind.
        """
        await self.start()
        reading = self._reading
        if self._writer is None or reading is None or reading.done() or not self._is_running():
            return None  # not started, or gone: nothing would answer
        request_id = next(self._ids)
        answer = self._pending[request_id] = asyncio.get_running_loop().create_future()
        request = {"id": request_id, "argv": list(argv), "env": dict(env), "cwd": os.getcwd(),
                   "log_path": str(log_path)}  # fmt: skip
        self._writer.write(json.dumps(request).encode() + b"\n")
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return await asyncio.shield(answer)
        except TimeoutError:
            logger.warning("the fork server did not answer in %ss: replacing it", ANSWER_TIMEOUT_S)
            self._kill()
            return None
        except asyncio.CancelledError:
            answer.add_done_callback(_stop_orphan)
            raise
        finally:
            self._pending.pop(request_id, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Answers to requests, and exits of forked replicas, until the fork server is gone."""
        try:
            while line := await reader.readline():
                self._on_message(json.loads(line))
        except (OSError, ValueError) as exc:
            logger.warning("the fork server's answers broke off: %s", exc)
            self._kill()
        finally:
            for forked in self._forked.values():
                forked.is_lost = True
            self._forked.clear()
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_result(None)

    def _on_message(self, message: dict[str, object]) -> None:
        pid, code = message.get("pid"), message.get("exit")
        if isinstance(pid, int) and "exit" in message:
            forked = self._forked.pop(pid, None)
            if forked is not None:
                forked.exit_code = code if isinstance(code, int) else None
                forked.is_reported = True
            return
        request_id = message.get("id")
        answer = self._pending.get(request_id) if isinstance(request_id, int) else None
        if answer is None or answer.done():
            return
        if isinstance(pid, int):
            # Registered here, before any later line: the exit may follow at once.
            forked = self._forked[pid] = ForkedProcess(pid)
            answer.set_result(forked)
        else:
            logger.warning("the fork server refused a replica (%s): it spawns", message)
            answer.set_result(None)

    def _is_running(self) -> bool:
        return self.pid is not None and processes.poll(self.pid, self._started) is None

    def _kill(self) -> None:
        """A fork server that misbehaves is replaced: the next `fork` starts another."""
        if self.pid is not None:
            processes.send(self.pid, signal.SIGKILL, self._started)

    async def _hang_up(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
            self._reading = None
        self.pid = None

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop the fork server; the replicas it forked keep running, watched through /proc
        alone from now on (their exit codes unknown)."""
        self._is_closed = True
        pid, started = self.pid, self._started
        await self._hang_up()  # the fork server exits when we hang up
        if pid is None:
            return
        deadline = time.monotonic() + grace_s
        while processes.poll(pid, started) is None:
            if time.monotonic() > deadline:
                processes.send(pid, signal.SIGKILL, started)
                deadline = time.monotonic() + grace_s
            await asyncio.sleep(0.02)


def _stop_orphan(answer: asyncio.Future[ForkedProcess | None]) -> None:
    """A replica forked for a caller that gave up meanwhile: stop it and its session."""
    if answer.cancelled() or answer.exception() is not None:
        return
    forked = answer.result()
    if forked is not None:
        # The child may not lead its own session yet: the process first, then the session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(forked.pid, signal.SIGKILL)
        processes.kill_group(forked.pid)
