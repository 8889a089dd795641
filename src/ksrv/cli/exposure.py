"""Refusing to expose the platform off this machine until it can tell callers apart.

The management API runs what a manifest says (a custom container's `command`) as the user who
started ksrv, and neither it nor the gateway checks who calls. So `ksrv up` and `ksrv gateway`
bind to a non-loopback address only when `--insecure-no-auth` says the user accepts that, and
then warn on stderr and in the log. `ksrv serve` is not checked: like KServe's model server it
serves the models its operator chose and runs nothing a caller sends.
"""

from __future__ import annotations

import ipaddress
import socket

import click

INSECURE_FLAG = "--insecure-no-auth"

insecure_option = click.option(
    INSECURE_FLAG,
    "is_insecure_no_auth",
    is_flag=True,
    help="Allow binding to a non-loopback address although nothing checks who calls.",
)


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


def check(exposed: dict[str, str], is_insecure_no_auth: bool) -> str | None:
    """Refuse (exit 1, saying why) when any of `exposed` (what -> host) is not loopback,
    unless `is_insecure_no_auth`: then the warning the caller prints and logs."""
    public = {what: host for what, host in exposed.items() if not is_loopback(host)}
    if not public:
        return None
    where = ", ".join(f"the {what} on {host or 'every interface'}" for what, host in public.items())
    if not is_insecure_no_auth:
        raise click.ClickException(
            f"refusing to bind {where}: ksrv has no authentication yet, so anyone who can reach "
            "it could deploy models and run commands (a custom container's `command`) as this "
            f"user. Bind to 127.0.0.1, or pass {INSECURE_FLAG} to expose it anyway."
        )
    return (
        f"WARNING: serving {where} without authentication ({INSECURE_FLAG}): anyone who can "
        "reach it can call it, and the management API runs manifests' commands as this user"
    )
