"""Refusing to expose the platform off this machine unless it can tell callers apart.

The management API runs what a manifest says (a custom container's `command`) as the user who
started ksrv. Without `--auth` nothing checks who calls, so `ksrv up` and `ksrv gateway` bind
to a non-loopback address only with `--auth` (the management API then takes admin tokens
only, and the gateway asks a token of every service with `serving.kserve.io/enable-auth`), or
when `--insecure-no-auth` says the user accepts an open platform; both warn where tokens would
cross the network in clear (no `--tls-cert`). `ksrv serve` is not checked: like KServe's model
server it serves the models its operator chose and runs nothing a caller sends.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

from ksrv.errors import KsrvError
from ksrv.http.tls import TLSFiles, tls_files

INSECURE_FLAG = "--insecure-no-auth"

insecure_option = click.option(
    INSECURE_FLAG,
    "is_insecure_no_auth",
    is_flag=True,
    help="Allow binding to a non-loopback address although nothing checks who calls.",
)


def tls_options(function: click.decorators.FC) -> click.decorators.FC:
    """`--tls-cert` and `--tls-key`: serve over TLS (gateway ports and management API)."""
    path = click.Path(path_type=Path, exists=True, dir_okay=False)
    function = click.option(
        "--tls-key", type=path, envvar="KSRV_TLS_KEY", help="PEM private key of --tls-cert."
    )(function)
    return click.option(
        "--tls-cert",
        type=path,
        envvar="KSRV_TLS_CERT",
        help="PEM certificate (chain) to serve HTTPS and gRPC over TLS with.",
    )(function)


def checked_tls(cert: Path | None, key: Path | None) -> TLSFiles | None:
    """The pair, loaded once to check it (a bad file is one clear error: exit 1)."""
    try:
        tls = tls_files(cert.resolve() if cert else None, key.resolve() if key else None)
        if tls is not None:
            tls.server_context()
    except KsrvError as exc:
        raise click.ClickException(str(exc)) from None
    return tls


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) reaches this machine only; "" binds every
    interface, and a name counts only when each address it resolves to is loopback."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check(
    exposed: dict[str, str],
    is_insecure_no_auth: bool,
    enable_auth: bool = False,
    has_tls: bool = False,
) -> str | None:
    """Refuse (exit 1, saying why) when any of `exposed` (what -> host) is not loopback,
    unless `enable_auth` or `is_insecure_no_auth`: then the warning (if any) the caller
    prints and logs."""
    public = {what: host for what, host in exposed.items() if not is_loopback(host)}
    if not public:
        return None
    where = ", ".join(f"the {what} on {host or 'every interface'}" for what, host in public.items())
    if enable_auth:
        if has_tls:
            return None
        return (
            f"WARNING: serving {where} without TLS: bearer tokens cross the network in clear "
            "(give --tls-cert and --tls-key)"
        )
    if not is_insecure_no_auth:
        raise click.ClickException(
            f"refusing to bind {where} with no authentication: anyone who can reach it could "
            "deploy models and run commands (a custom container's `command`) as this user. "
            f"Bind to 127.0.0.1, pass --auth to require tokens, or {INSECURE_FLAG} to expose "
            "it anyway."
        )
    return (
        f"WARNING: serving {where} without authentication ({INSECURE_FLAG}): anyone who can "
        "reach it can call it, and the management API runs manifests' commands as this user"
    )
