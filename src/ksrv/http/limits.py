"""What a client may ask of `ksrv.http.server`: the size and pace of a request head, and how
many connections it may hold.

Pure checks and defaults, kept out of the connection code so each limit reads in one place.
A head is checked when it ends, because a whole oversized head can arrive in one read; the
server also counts raw bytes for a head that never ends.
"""

from __future__ import annotations

import resource

# Request line + headers: an endless header stream must not grow memory (431, as nginx).
MAX_HEAD_BYTES = 64 * 1024
# Small fields fit many in 64 KiB; each costs a tuple and a look-up (Node.js's default count).
MAX_HEADERS = 2000
# From a head's first byte to its end, however steadily its bytes arrive (slowloris).
HEAD_TIMEOUT_S = 30.0


class Refused(Exception):
    """A request the server answers `status` and then closes the connection."""

    def __init__(self, status: int, message: bytes) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


def check_head(target: bytes, headers: list[tuple[bytes, bytes]], is_upgrade: bool) -> None:
    """Refuse a head over the limits, with two Host fields, or an upgrade carrying a body.

    `headers` are (lower-case name, value) as received; `is_upgrade` is the parser's verdict.
    """
    if len(headers) > MAX_HEADERS:
        raise Refused(431, b"more than %d header fields" % MAX_HEADERS)
    size = len(target) + 4 * len(headers)  # ': ' and CRLF after each field
    hosts = 0
    for name, value in headers:  # every request passes here: one plain loop
        size += len(name) + len(value)
        if name == b"host":
            hosts += 1
    if size > MAX_HEAD_BYTES:
        raise Refused(431, b"request line and headers exceed %d bytes" % MAX_HEAD_BYTES)
    if hosts > 1:
        raise Refused(400, b"more than one Host header")  # RFC 9112 3.2
    if is_upgrade and any(
        name == b"transfer-encoding" or (name == b"content-length" and value != b"0")
        for name, value in headers
    ):
        # llhttp hands what follows the head to the new protocol: the body would be lost.
        raise Refused(400, b"Protocol upgrades are not supported")


def default_max_connections() -> int:
    """Half the open-file limit, between 64 and 4096: the other half is left for upstream
    connections, model files and logs, so accepting never fails for want of a descriptor."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft // 2))
