"""Replica processes known by PID alone, whether this process spawned them or adopted them.

No `subprocess.Popen`: a Popen object left behind when the platform stops supervising (a
control-plane restart) warns and may reap the child later, stealing its exit status. Here a
child is reaped with `waitpid` by whoever watches it; a process another run started is
recognised by its PID plus its start time in /proc/PID/stat, so a reused PID is not mistaken
for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 2000


@dataclass(frozen=True, slots=True)
class Exited:
    """A replica process ended; `code` is negative for a signal, None when unknown."""

    code: int | None


# Ports handed to replicas that may hold them. The kernel sees a port free from our pick
# until the replica binds it, and may give it to the next pick meanwhile: two replicas
# would then be told one port, and the loser probed (and routed to) as the winner.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port the kernel had free on 127.0.0.1 a moment ago (the replica binds it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def take_ports(count: int, pick: Callable[[], int] = free_port) -> list[int]:
    """`count` distinct free ports that no replica of ours holds; they are ours until
    `release_ports`."""
    ports: list[int] = []
    while len(ports) < count:
        port = pick()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            ports.append(port)
    return ports


def hold_ports(ports: Iterable[int | None]) -> list[int]:
    """Mark the ports of a replica a previous run started (and this one adopted) as taken;
    the ones it had."""
    held = [port for port in ports if port is not None]
    _HANDED_OUT.update(held)
    return held


def release_ports(ports: Iterable[int]) -> None:
    """The replica that held these ports is gone: they may be handed out again."""
    _HANDED_OUT.difference_update(ports)


def spawn(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, pass_fds: Sequence[int] = ()
) -> int:
    """Start `argv` in its own session (so it outlives the control plane), output appended to
    `log_path`, stdin from /dev/null, and `pass_fds` as its descriptors 3, 4, ... (nothing
    else of ours leaks into it). Returns the PID; raises OSError if it cannot start."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    file_actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # Copies above the target range first, so no dup2 overwrites a descriptor still to be
    # passed; a dup2 target loses close-on-exec, the copies keep it.
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(pass_fds)) for fd in pass_fds]
    file_actions += [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(copies)]
    try:
        return os.posix_spawnp(
            argv[0], list(argv), dict(env), file_actions=file_actions, setsid=True
        )
    finally:
        for fd in copies:
            os.close(fd)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot); None if the process is gone or a
    zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def poll(pid: int, started: int | None) -> Exited | None:
    """None while `pid` (started at `started`) runs; else how it ended, reaping our child."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped, status = -1, 0  # not our child: adopted, or already reaped
    if reaped == pid:
        return Exited(os.waitstatus_to_exitcode(status))
    now = start_time(pid)
    if now is not None and now == started:
        return None
    if reaped == 0:
        # Our child, a zombie /proc saw before waitpid could: reap it on the next call.
        return None
    return Exited(None)


def is_running(pid: int, started: int | None) -> bool:
    """True if `pid` is still the process that started at `started`."""
    return started is not None and start_time(pid) == started


def send(pid: int, sig: signal.Signals, started: int | None) -> None:
    """Signal the process, never a stranger that reused its PID."""
    if is_running(pid, started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a replica's session (workers it forked), after it exited."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def log_tail(log_path: Path, offset: int, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last `max_bytes` the replica wrote since `offset` (where its run began)."""
    try:
        with log_path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(offset, size - max_bytes))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except OSError:
        return 0
