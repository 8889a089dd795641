"""Listening sockets that belong to one server: a port in use is an error naming the port.

Every server binds (or checks) its port once, without SO_REUSEPORT, before anything else
runs: a second `ksrv serve` or gateway on a port already served fails with an error naming
the port (`port_in_use`) instead of silently splitting the traffic with the first (Linux
spreads connections over every socket of a SO_REUSEPORT group, whoever owns it). Only then
may the processes of this one server share the port among themselves, by inheriting one
socket or through `listeners(count > 1)`. grpcio cannot serve a socket it is handed, so
for gRPC `check_free` probes the port just before grpcio binds it (a race with another
server starting in the same milliseconds remains; grpcio then joins only with SO_REUSEPORT,
which a single process leaves off). A supervising process may own a server's sockets so
they outlive it: it hands them down (`inherited`) and, after restarting itself, takes them
back from the server it adopts (`hand_over` / `take_over`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from ksrv.errors import ServerNotReady

BACKLOG = 2048
# How a supervising process hands listening sockets to a server it starts (`inherited`).
LISTEN_FDS_ENV = "KSRV_LISTEN_FDS"
FIRST_FD = 3
# Where that server hands them back to a supervisor that restarted (`hand_over`).
HANDOVER_ENV = "KSRV_LISTEN_HANDOVER"
_MAX_FDS = 64


def listeners(host: str, port: int, count: int, what: str) -> list[socket.socket]:
    """`count` non-blocking listening sockets on `host:port` (port 0: one the kernel picks).

    One socket is bound without SO_REUSEPORT, so no other process can join it. With
    `count > 1` the port is first probed the same way, then bound `count` times with
    SO_REUSEPORT: one socket per worker, and the kernel spreads connections over exactly
    these.

    Raises:
        ServerNotReady: another socket listens on the port (`what` names the port's role).
    """
    if count > 1:
        port = check_free(host, port, what)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sockets.append(sock)
            # SO_REUSEADDR only lets a restart bind past TIME_WAIT; it never shares a listener.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            _bind(sock, host, port, what)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            port = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def check_free(host: str, port: int, what: str) -> int:
    """Bind `host:port` alone for a moment, to learn that nothing else listens there; the port
    (what port 0 became).

    Raises:
        ServerNotReady: another socket listens on the port.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind(probe, host, port, what)
        return int(probe.getsockname()[1])


def reserve(host: str, port: int, what: str) -> socket.socket:
    """A socket bound to `host:port` that does not listen yet (`start_listening` opens it).

    A model server takes its port this way before it loads its models, which may take
    seconds: meanwhile no other process picking a free port gets this one (a supervisor
    would then probe that stranger as this server and route to it), and connections are
    refused, not left waiting.

    Raises:
        ServerNotReady: another socket listens on the port.
    """
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind(sock, host, port, what)
    except BaseException:
        sock.close()
        raise
    return sock


def start_listening(sock: socket.socket, what: str) -> socket.socket:
    """Listen on a socket `reserve` bound; non-blocking from now on.

    Raises:
        ServerNotReady: another server began listening on the port meanwhile.
    """
    try:
        sock.listen(BACKLOG)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            host, port = sock.getsockname()[:2]
            raise port_in_use(port, what, host) from None
        raise
    sock.setblocking(False)
    return sock


def inherited(environ: MutableMapping[str, str]) -> list[socket.socket]:
    """The listening sockets a supervising process handed down (`LISTEN_FDS_ENV` of them, from
    file descriptor `FIRST_FD` on, as systemd passes them), taking the variable out of
    `environ` so no child of ours mistakes them for its own; [] when none were."""
    count = int(environ.pop(LISTEN_FDS_ENV, "0") or "0")
    sockets = [socket.socket(fileno=FIRST_FD + index) for index in range(count)]
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def hand_over(sockets: Sequence[socket.socket], path: Path) -> socket.socket:
    """Give `sockets` to whoever connects to the Unix socket `path` (mode 0600, so only our
    user), as SCM_RIGHTS: a supervisor that restarted and adopted this server takes them
    back, and keeps them open across this server's next restart. Returns the Unix socket's
    listener; closing it ends the handing over (a daemon thread answers meanwhile)."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen()
    fds = [sock.fileno() for sock in sockets]
    threading.Thread(target=_hand_over_forever, args=(server, fds), daemon=True).start()
    return server


def _hand_over_forever(server: socket.socket, fds: list[int]) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # closed: we are stopping
            return
        with connection, contextlib.suppress(OSError):
            socket.send_fds(connection, [b"ksrv"], fds)


def take_over(path: Path, timeout_s: float = 5.0) -> list[socket.socket]:
    """The listening sockets the server at `path` hands over (`hand_over`); [] when nothing
    answers there (a server gone, or one that hands nothing over)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout_s)
            connection.connect(str(path))
            _, fds, _, _ = socket.recv_fds(connection, 16, _MAX_FDS)
    except OSError:
        return []
    sockets = [socket.socket(fileno=fd) for fd in fds]
    for sock in sockets:
        sock.setblocking(False)
    return sockets


def _bind(sock: socket.socket, host: str, port: int, what: str) -> None:
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, what, host) from None
        raise


def port_in_use(port: int, what: str, host: str) -> ServerNotReady:
    """The one-line error for a port another socket listens on."""
    return ServerNotReady(f"port {port} ({what}) is already in use on {host}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def close_all(sockets: list[socket.socket]) -> None:
    """Close every socket (a no-op for one already closed)."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
