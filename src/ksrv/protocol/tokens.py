"""Bearer tokens as both sides see them: how a token is hashed, read from a header, granted.

The control plane stores only `token_hash(token)` and publishes the hashes with the route
table (`TokenDoc`); the gateway and the management API hash what a caller sends and look it
up. SHA-256, not bcrypt: a token is 32 random bytes (`secrets.token_urlsafe`), so there is
nothing to brute-force offline, and the gateway checks one on every request of a protected
service, where a deliberately slow hash would cost milliseconds each time.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal, TypedDict

from ksrv.errors import PermissionDenied, Unauthenticated

ENABLE_AUTH_ANNOTATIONS: Final = (
    "serving.kserve.io/enable-auth",
    "security.opendatahub.io/enable-auth",
)
"""Either, "true" on an InferenceService, makes the gateway require a token for it (the
second is OpenDataHub's spelling, which its users carry over)."""
PREFIX: Final = "ksrv_"
"""Every token starts with it, so a leaked one is easy to recognise (secret scanners)."""
ADMIN: Final = "admin"
INVOKE: Final = "invoke"
GATEWAY: Final = "gateway"
"""The gateway's own credential towards the control plane (routes, traffic, activation)."""
ROLES: Final = (ADMIN, INVOKE)
"""The roles a user creates tokens with."""
ALL_NAMESPACES: Final = ""
"""The namespace of a token that holds in every namespace (an admin made without one)."""
CHALLENGE: Final = (b"www-authenticate", b'Bearer realm="ksrv"')
"""The header a 401 carries (RFC 6750)."""

Role = Literal["admin", "invoke"]


class TokenDoc(TypedDict):
    """One token as the gateway learns it: its hash and what it grants, never the token."""

    sha256: str
    namespace: str
    role: str


def is_auth_enabled(annotations: dict[str, str]) -> bool:
    """Whether a service's annotations ask for tokens (`ENABLE_AUTH_ANNOTATIONS`)."""
    return any(annotations.get(key, "").lower() == "true" for key in ENABLE_AUTH_ANNOTATIONS)


def new_token() -> str:
    """A fresh token: the prefix and 32 random bytes, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps and the gateway compares: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header.

    Raises:
        Unauthenticated: no header, or not a bearer one.
    """
    if not authorization:
        raise Unauthenticated("this endpoint requires a bearer token (Authorization: Bearer ...)")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


def check_grant(grant: tuple[str, str] | None, namespace: str, what: str) -> str:
    """The role of a token's `grant` ((namespace, role), None when unknown) for `namespace`.

    Raises:
        Unauthenticated: the token is unknown (never created, or revoked).
        PermissionDenied: it belongs to another namespace.
    """
    if grant is None:
        raise Unauthenticated("the bearer token is not valid (unknown or revoked)")
    granted, role = grant
    if granted != ALL_NAMESPACES and granted != namespace:
        raise PermissionDenied(f"the token is for namespace {granted!r}, not {what}")
    return role
