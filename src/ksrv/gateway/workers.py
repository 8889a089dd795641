"""Several gateway processes on one HTTP port and one gRPC port (`ksrv gateway --workers N`).

One Python process tops out at one core; a platform with many replicas needs more. The parent
binds N listening sockets with SO_REUSEPORT on the HTTP port before it forks, so the kernel
spreads connections over exactly its own workers (by connection hash) and the port stays
taken while a worker restarts; the gRPC servers bind the gRPC port with SO_REUSEPORT too
(grpcio's default). Each worker is a whole gateway: its own event loop, route watcher and
replica connections. The parent does nothing but supervise: it forwards SIGTERM/SIGINT,
restarts a worker that died, and each worker stops when its parent is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after its start is restarted only after this long,
# so a worker that cannot start does not fork in a tight loop.
_MIN_LIFETIME_S = 1.0

Serve = Callable[[socket.socket, int], None]


def listeners(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening TCP sockets on one port (port 0: one the kernel picks), SO_REUSEPORT."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.setblocking(False)
            port = sock.getsockname()[1]
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def supervise(sockets: list[socket.socket], serve: Serve) -> None:
    """Fork one worker per socket, running `serve(socket, worker_index)`; keep them running
    until SIGTERM/SIGINT, which is forwarded to every worker; return once all have exited."""
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
                for other, sock in enumerate(sockets):
                    if other != index:
                        sock.close()
                os.environ["KSRV_GATEWAY_PARENT_PID"] = str(parent)
                serve(sockets[index], index)
                code = 0
            except BaseException:
                logger.exception("gateway worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = (index, time.monotonic())
        logger.info("gateway worker %d: pid %d", index, pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal is_stopping
        is_stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for index in range(len(sockets)):
        spawn(index)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index, started = children.pop(pid, (-1, 0.0))
        if index < 0 or is_stopping:
            continue
        lived_s = time.monotonic() - started
        logger.warning(
            "gateway worker %d (pid %d) exited with status %d after %.1f s: restarting",
            index,
            pid,
            os.waitstatus_to_exitcode(status),
            lived_s,
        )
        if lived_s < _MIN_LIFETIME_S:
            time.sleep(_MIN_LIFETIME_S)
        if not is_stopping:
            spawn(index)
    for sock in sockets:
        sock.close()


def is_orphaned() -> bool:
    """True in a worker whose supervising parent has gone (it should stop too)."""
    parent = os.environ.get("KSRV_GATEWAY_PARENT_PID")
    return parent is not None and os.getppid() != int(parent)
