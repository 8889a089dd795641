"""Listening sockets that belong to one server: a port in use is an error naming the port.

Every server binds (or checks) its port once, without SO_REUSEPORT, before anything else
runs: a second `ksrv serve` or gateway on a port already served fails with an error naming
the port (`port_in_use`) instead of silently splitting the traffic with the first (Linux
spreads connections over every socket of a SO_REUSEPORT group, whoever owns it). Only then
may the processes of this one server share the port among themselves, by inheriting one
socket or through `listeners(count > 1)`. grpcio cannot serve a socket it is handed, so
for gRPC `check_free` probes the port just before grpcio binds it (a race with another
server starting in the same milliseconds remains; grpcio then joins only with SO_REUSEPORT,
which a single process leaves off).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import MutableMapping

from ksrv.errors import ServerNotReady

BACKLOG = 2048
# How a supervising process hands listening sockets to a server it starts (`inherited`).
LISTEN_FDS_ENV = "KSRV_LISTEN_FDS"
FIRST_FD = 3


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


def inherited(environ: MutableMapping[str, str]) -> list[socket.socket]:
    """The listening sockets a supervising process handed down (`LISTEN_FDS_ENV` of them, from
    file descriptor `FIRST_FD` on, as systemd passes them), taking the variable out of
    `environ` so no child of ours mistakes them for its own; [] when none were."""
    count = int(environ.pop(LISTEN_FDS_ENV, "0") or "0")
    sockets = [socket.socket(fileno=FIRST_FD + index) for index in range(count)]
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
