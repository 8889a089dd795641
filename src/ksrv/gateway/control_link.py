"""How the gateway reaches the control plane: its address, TLS, and the gateway's own token.

The route watcher, the traffic reporter and the activator all call the management API, so
they open their connection here: one URL check, one `ReplicaPool` (TLS when the URL is
https), and the head lines every call carries (`host`, and `authorization` when the control
plane requires tokens). The token and the CA come from files `ksrv up` writes and names on the
gateway's command line, so no secret shows in a process listing.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ksrv.http.upstream import ReplicaPool


@dataclass(frozen=True, slots=True)
class ControlCredentials:
    """What the gateway shows the control plane: a bearer token, and the CA its TLS
    certificate must chain to (None: plain HTTP)."""

    token: str = ""
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_files(cls, token_file: Path | None, ca_file: Path | None) -> ControlCredentials:
        """Read the token file and build a client context from the CA file. The control
        plane is reached at a loopback address its certificate may not name, so the
        certificate is pinned (it must chain to `ca_file`) but its host name is not checked."""
        token = token_file.read_text().strip() if token_file is not None else ""
        tls = None
        if ca_file is not None:
            tls = ssl.create_default_context(cafile=str(ca_file))
            tls.check_hostname = False
            tls.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf certificate pins too
        return cls(token, tls)


@dataclass(frozen=True, slots=True)
class ControlLink:
    """One endpoint of the management API, ready to be called."""

    pool: ReplicaPool
    host_lines: bytes
    """`host: ...` and, with a token, `\\r\\nauthorization: Bearer ...`: what follows
    `\\r\\nhost: ` in a request head is this."""
    path: bytes


def open_link(url: str, what: str, credentials: ControlCredentials | None) -> ControlLink:
    """The link to `url` (`what` names it in errors).

    Raises:
        ValueError: not an http(s)://host:port/path URL, or https without a CA.
    """
    credentials = credentials or ControlCredentials()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} URL must be http(s)://host:port/path, got {url!r}")
    is_tls = parts.scheme == "https"
    if is_tls and credentials.tls is None:
        raise ValueError(f"{what} URL {url!r} is https: the gateway needs the CA (--control-ca)")
    port = parts.port or (443 if is_tls else 80)
    pool = ReplicaPool(f"{parts.hostname}:{port}", tls=credentials.tls if is_tls else None)
    host_lines = parts.netloc.encode()
    if credentials.token:
        host_lines += b"\r\nauthorization: Bearer " + credentials.token.encode()
    return ControlLink(pool, host_lines, (parts.path or "/").encode())
