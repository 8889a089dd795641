"""The local platform's own secrets when `ksrv up --auth`: the first admin token, the gateway's.

Both are files in the state directory, readable by the user who runs ksrv only (0600), as
kubeadm leaves `admin.conf`: `admin.token` is made once, when no admin token for every
namespace exists, so `ksrv` commands on this machine work at once (the CLI reads it when
no `--token` is given); `gateway.token` is how the gateway the control plane starts calls it
back, kept across restarts so an adopted gateway's token still holds. The gateway is told
the file's path, never the token, so no secret shows in a process listing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ksrv.control.api_tokens import TokenAuthority
from ksrv.http.tls import TLSFiles
from ksrv.protocol import tokens

logger = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin.token"
GATEWAY_TOKEN_FILE = "gateway.token"


def gateway_token(state_dir: Path) -> str:
    """The gateway's token, made (and written) the first time."""
    path = state_dir / GATEWAY_TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = tokens.new_token()
    _write_secret(path, token)
    return token


def bootstrap_admin(authority: TokenAuthority, state_dir: Path) -> None:
    """Make an admin token for every namespace when there is none, into `admin.token`."""
    if any(
        t.role == tokens.ADMIN and t.namespace == tokens.ALL_NAMESPACES
        for t in authority.store.tokens()
    ):
        return
    path = state_dir / ADMIN_TOKEN_FILE
    created = authority.create({"name": _free_name(authority), "role": tokens.ADMIN})
    _write_secret(path, created["token"])
    logger.warning(
        "management API requires tokens: admin token %r written to %s (mode 600)",
        created["name"],
        path,
    )


def gateway_args(state_dir: Path, enable_auth: bool, tls: TLSFiles | None) -> list[str]:
    """The `ksrv gateway` options that carry the platform's TLS pair and credentials."""
    args: list[str] = []
    if enable_auth:
        args += ["--control-token-file", str(state_dir / GATEWAY_TOKEN_FILE)]
    if tls is not None:
        # The gateway calls the management API, which has the same certificate: pinned.
        args += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        args += ["--control-ca", str(tls.cert)]
    return args


def _free_name(authority: TokenAuthority) -> str:
    taken = {t.name for t in authority.store.tokens()}
    name, n = "admin", 1
    while name in taken:
        n += 1
        name = f"admin-{n}"
    return name


def _write_secret(path: Path, text: str) -> None:
    """Create `path` readable by its owner only, before any byte is written."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
