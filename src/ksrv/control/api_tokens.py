"""Bearer tokens on the management API: who may call it, and `/ksrv/v1/tokens` to manage them.

`TokenAuthority` keeps the tokens (hashes in the `Store`, and a copy in memory for the
checks), answers `GET|POST /ksrv/v1/tokens` and `DELETE /ksrv/v1/tokens/{name}` (the
plaintext is in the create answer only), and hands every change to `publish`, which puts the
hashes in the route table so the gateway learns them with its routes. With `is_required`
(`ksrv up --auth`), every call but `/healthz` needs a token: an admin token for resources,
logs and tokens (one made for a namespace only for that namespace's objects), or the
gateway's own token, which reaches only what the gateway calls (routes, traffic, activation).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from ksrv import errors
from ksrv.api import names
from ksrv.control.store import Store, StoredToken
from ksrv.http.server import Request
from ksrv.protocol import tokens
from ksrv.protocol.tokens import TokenDoc

Document = dict[str, Any]
# What the gateway's token reaches: the endpoints the gateway itself calls.
_GATEWAY_PATHS = (["ksrv", "v1", "routes"], ["ksrv", "v1", "traffic"], ["ksrv", "v1", "activate"])


class TokenAuthority:
    """Creates, lists, revokes and checks bearer tokens."""

    def __init__(
        self,
        store: Store,
        publish: Callable[[list[TokenDoc]], None] = lambda grants: None,
        *,
        is_required: bool = False,
        gateway_token: str | None = None,
    ) -> None:
        """`publish`: takes every token's grant after each change (and once now);
        `gateway_token`: the gateway's credential, accepted only on its own endpoints."""
        self.store = store
        self.publish = publish
        self.is_required = is_required
        self._gateway_hash = tokens.token_hash(gateway_token) if gateway_token else None
        self._grants: dict[str, tuple[str, str]] = {}
        self._refresh()

    # -- checking ----------------------------------------------------------------------------
    def check(self, request: Request, parts: list[str]) -> None:
        """Let the call through, or raise why not (nothing when tokens are not required).

        Raises:
            Unauthenticated: no token, or an unknown one.
            PermissionDenied: the token's role or namespace does not reach this path.
        """
        if not self.is_required:
            return
        digest = tokens.token_hash(tokens.bearer(request.headers.get("authorization")))
        if digest == self._gateway_hash:
            if parts not in _GATEWAY_PATHS:
                raise errors.PermissionDenied("the gateway's token reaches only its endpoints")
            return
        grant = self._grants.get(digest)
        namespace = _namespace_of(parts)
        what = f"namespace {namespace!r}" if namespace is not None else "every namespace"
        role = tokens.check_grant(grant, namespace or "*", what)
        if role != tokens.ADMIN:
            raise errors.PermissionDenied(
                f"a token with role {role!r} may only call inference services at the gateway; "
                "the management API takes an admin token"
            )

    # -- /ksrv/v1/tokens -----------------------------------------------------------------------
    def serve(self, method: str, rest: list[str], body: Document) -> tuple[Document, int]:
        """Answer a call under `/ksrv/v1/tokens`; `rest` is the path after it."""
        if not rest:
            if method == "GET":
                items = [_public(token) for token in self.store.tokens()]
                return {"kind": "TokenList", "items": items}, 200
            if method == "POST":
                return self.create(body), 201
        elif len(rest) == 1 and method == "DELETE":
            revoked = self.store.revoke_token(rest[0])
            self._refresh()
            return _public(revoked), 200
        elif len(rest) == 1:
            raise errors.MethodNotAllowed(f"{method} is not supported on a token")
        else:
            raise errors.RouteNotFound("the server could not find the requested resource")
        raise errors.MethodNotAllowed(f"{method} is not supported on tokens")

    def create(self, body: Document) -> Document:
        """A new token from `{"name", "namespace", "role"}`: its record and, once, its secret.

        An admin token without a namespace holds in every namespace; an invoke token without
        one is for `default`.
        """
        role = body.get("role", tokens.INVOKE)
        if role not in tokens.ROLES:
            raise errors.InvalidInput(
                f"role must be one of {', '.join(tokens.ROLES)}, not {role!r}"
            )
        default = tokens.ALL_NAMESPACES if role == tokens.ADMIN else "default"
        namespace = body.get("namespace") or default
        if not isinstance(namespace, str) or (
            namespace != tokens.ALL_NAMESPACES and names.namespace_problem(namespace)
        ):
            raise errors.InvalidInput(f"namespace {names.namespace_problem(str(namespace))}")
        name = body.get("name") or f"token-{secrets.token_hex(4)}"
        problem = names.name_problem(name) if isinstance(name, str) else "must be a string"
        if problem:
            raise errors.InvalidInput(f"name {problem}")
        secret = tokens.new_token()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        stored = StoredToken(name, tokens.token_hash(secret), namespace, role, created)
        self.store.add_token(stored)
        self._refresh()
        return {**_public(stored), "token": secret}

    def grants(self) -> list[TokenDoc]:
        """What the gateway needs of every token: hash, namespace, role."""
        return [
            {"sha256": t.sha256, "namespace": t.namespace, "role": t.role}
            for t in self.store.tokens()
        ]

    def _refresh(self) -> None:
        grants = self.grants()
        self._grants = {g["sha256"]: (g["namespace"], g["role"]) for g in grants}
        self.publish(grants)


def _public(token: StoredToken) -> Document:
    """A token's record without its hash (`*` for every namespace)."""
    return {
        "name": token.name,
        "namespace": token.namespace or "*",
        "role": token.role,
        "created": token.created,
    }


def _namespace_of(parts: list[str]) -> str | None:
    """The namespace a management API path is about, or None (cluster-wide or every one)."""
    if parts[:1] == ["apis"] and parts[3:4] == ["namespaces"] and len(parts) > 4:
        return parts[4]
    if parts[:3] == ["ksrv", "v1", "namespaces"] and len(parts) > 3:
        return parts[3]
    return None
