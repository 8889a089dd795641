"""Bearer-token checks for InferenceServices with `serving.kserve.io/enable-auth: "true"`.

`TokenCheck` is the dispatcher's first `Hook` while the route table has such a service (and
no hook at all otherwise, so open services pay nothing): its `on_request` runs once the route
is known and before a replica is chosen or the request held, and raises `Unauthenticated`
(401 / UNAUTHENTICATED) or `PermissionDenied` (403 / PERMISSION_DENIED), so a refused request
reaches no replica. The tokens it knows are the hashes the route table carries; an invoke or
an admin token of the service's namespace (or an admin token of every namespace) gets in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ksrv.gateway.hooks import Call, Hook
from ksrv.gateway.routes import RouteTable
from ksrv.http.tls import TLSFiles
from ksrv.protocol import tokens


@dataclass(frozen=True, slots=True)
class GatewaySecurity:
    """What secures a gateway process: TLS for its own ports, and the token file and CA it
    reaches the control plane with (`control_link.ControlCredentials`); read in each worker."""

    tls: TLSFiles | None = None
    control_token_file: Path | None = None
    control_ca: Path | None = None


class TokenCheck:
    """Admits a protected service's requests by token; a `Hook`."""

    def __init__(self) -> None:
        self.grants: dict[str, tuple[str, str]] = {}

    def on_request(self, call: Call) -> None:
        match = call.match
        if match is None or not match.service.enable_auth:
            return
        token = tokens.bearer(call.headers.get("authorization"))
        service = match.service
        grant = self.grants.get(tokens.token_hash(token))
        tokens.check_grant(grant, service.namespace, f"{service.namespace}/{service.name}")

    def on_response(self, call: Call, error: BaseException | None) -> None:
        return None


def with_check(hooks: Sequence[Hook], check: TokenCheck, table: RouteTable) -> tuple[Hook, ...]:
    """`hooks` with `check` first when `table` protects a service (a refused request is then
    nobody's demand), without it when none is protected; `check` learns the table's tokens."""
    check.grants = table.grants
    others = tuple(hook for hook in hooks if hook is not check)
    return (check, *others) if table.requires_auth else others
