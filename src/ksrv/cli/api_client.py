"""The CLI's side of the management API: httpx calls whose failures are one-line CLI errors.

A down control plane or a Kubernetes `Status` from it becomes a `click.ClickException` (exit 1,
one line, kubectl's wording), never a traceback. Credentials, as kubectl takes them: a bearer
token from `ksrv --token` (env KSRV_TOKEN), else, for a control plane on this machine, the
admin token `ksrv up --auth` wrote to its state directory; an https server's CA from
`ksrv --certificate-authority` (env KSRV_CA_FILE).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from ksrv.cli import exposure

DEFAULT_SERVER = "http://127.0.0.1:8090"
TOKEN_META = "ksrv.token"
CA_META = "ksrv.certificate_authority"
ADMIN_TOKEN_FILE = "admin.token"  # as `control.access` writes it

server_option = click.option(
    "--server",
    envvar="KSRV_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="Management API of the ksrv control plane (env KSRV_SERVER).",
)


class APIFailure(click.ClickException):
    """The server answered with a Kubernetes `Status` failure."""

    def __init__(
        self, code: int, reason: str, message: str, causes: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(f"Error from server ({reason}): {message}")
        self.code = code
        self.reason = reason
        self.causes = causes or []  # (field, message) of a 422, as `details.causes` lists them


class ControlPlaneClient:
    """Calls the management API at `server`; one connection pool per CLI run."""

    def __init__(self, server: str, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        meta = click.get_current_context(silent=True)
        options = meta.meta if meta is not None else {}
        token = options.get(TOKEN_META) or _local_admin_token(self.server)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        ca = options.get(CA_META)
        verify = ssl.create_default_context(cafile=ca) if ca else True
        self._client = httpx.Client(
            base_url=self.server, timeout=timeout_s, headers=headers, verify=verify
        )

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """One call; `APIFailure` for a 4xx/5xx, a clear `ClickException` when unreachable."""
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            response = self._client.request(
                method, path, params=params, content=content, headers=headers, **extra
            )
        except httpx.TransportError as exc:
            raise _unreachable(self.server, exc) from exc
        if response.status_code >= 400:
            raise _failure(response)
        return response

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives (no read timeout); failures as in
        `request`."""
        timeout = httpx.Timeout(self._client.timeout.connect or 30.0, read=None)
        try:
            with self._client.stream(method, path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _failure(response)
                yield response
        except httpx.ConnectError as exc:
            raise _unreachable(self.server, exc) from exc

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", path, params=params).json()
        return body


def _unreachable(server: str, exc: httpx.TransportError) -> click.ClickException:
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return click.ClickException(
            f"the ksrv control plane at {server} presented a certificate this machine does not "
            "trust: pass its CA with --certificate-authority (env KSRV_CA_FILE)"
        )
    return click.ClickException(
        f"cannot reach the ksrv control plane at {server}: is `ksrv up` running?"
    )


def _local_admin_token(server: str) -> str | None:
    """The admin token `ksrv up --auth` wrote, for a control plane on this machine only: it
    is never sent to another host."""
    if not exposure.is_loopback(urlsplit(server).hostname or ""):
        return None
    state_dir = Path(os.environ.get("KSRV_STATE_DIR") or Path.home() / ".ksrv")
    try:
        return (state_dir / ADMIN_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def _failure(response: httpx.Response) -> APIFailure:
    try:
        status = response.json()
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        details = status.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        return APIFailure(
            response.status_code,
            str(status.get("reason") or ""),
            str(status.get("message")),
            [
                (str(cause.get("field")), str(cause.get("message")))
                for cause in causes or []
                if isinstance(cause, dict) and cause.get("field")
            ],
        )
    text = response.text.strip() or response.reason_phrase
    return APIFailure(response.status_code, str(response.status_code), text)
