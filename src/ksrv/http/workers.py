"""Pre-forked worker processes for a server that outgrows one core (`--workers N`).

The model server and the gateway both start once, then fork N copies that serve the same
port(s). This is the one supervisor they share: it forks the workers, replaces one that
died (after a pause when it died young, so a worker that cannot start does not fork in a
tight loop), forwards SIGTERM/SIGINT so every worker drains, and returns once all have
exited. A worker can ask whether its supervisor is gone (`is_orphaned`) and stop too.

How workers share a port is the caller's choice: one socket bound before the fork (the
model server), or one SO_REUSEPORT socket per worker (`listeners.listeners`, the gateway),
which makes the kernel spread connections over exactly this server's own workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after its start is restarted only after this long,
# so a worker that cannot start does not fork in a tight loop.
_MIN_LIFETIME_S = 1.0

# Set in each worker: the supervisor's pid, to notice when it is gone.
PARENT_ENV = "KSRV_WORKER_PARENT_PID"

Serve = Callable[[int], None]
"""Runs worker number `index` (0 ..count-1) until it should exit."""


def supervise(
    count: int, serve: Serve, what: str = "worker", on_exit: Callable[[int], None] | None = None
) -> None:
    """Fork `count` workers running `serve(index)` and keep them running until SIGTERM or
    SIGINT, which is forwarded to every worker; return once all have exited. `on_exit(pid)`
    hears of each worker that exited (to drop its share of shared metrics)."""
    parent = os.getpid()
    children: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
    is_stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.environ[PARENT_ENV] = str(parent)
                serve(index)
                code = 0
            except BaseException:
                logger.exception("%s %d failed", what, index)
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())
        logger.info("%s %d: pid %d", what, index, pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal is_stopping
        is_stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for index in range(count):
        spawn(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index, started = children.pop(pid, (-1, 0.0))
        if on_exit is not None and index >= 0:
            on_exit(pid)
        if index < 0 or is_stopping:
            continue
        lived_s = time.monotonic() - started
        logger.warning(
            "%s %d (pid %d) exited with status %d after %.1f s: restarting",
            what,
            index,
            pid,
            os.waitstatus_to_exitcode(status),
            lived_s,
        )
        if lived_s < _MIN_LIFETIME_S:
            time.sleep(_MIN_LIFETIME_S)
        if not is_stopping:
            spawn(index)


def is_orphaned() -> bool:
    """True in a worker whose supervising parent has gone (it should stop too)."""
    parent = os.environ.get(PARENT_ENV)
    return parent is not None and os.getppid() != int(parent)
