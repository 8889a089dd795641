"""A management API request as read from its URL: the resource it names, and query values.

Kubernetes' path layout (`control.api_paths`) and its `dryRun` rule; a malformed path is a
404 and a bad query value a 400, both as `errors` the server turns into a `Status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from ksrv import errors
from ksrv.control import api_paths
from ksrv.control.api_paths import ResourceType
from ksrv.http.server import Request


@dataclass(frozen=True, slots=True)
class Call:
    """A resource request, as read from its path and query."""

    type: ResourceType
    namespace: str | None  # None: all namespaces, or a cluster-scoped kind
    name: str | None
    subresource: str | None
    is_dry_run: bool

    @property
    def store_namespace(self) -> str:
        return (self.namespace or "") if self.type.is_namespaced else ""


def query_params(request: Request) -> dict[str, str]:
    """The query's values; a repeated key's last one."""
    raw = request.target.partition(b"?")[2].decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}


def parse_call(parts: list[str], query: dict[str, str]) -> Call:
    """The resource `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/status]]`
    names; `parts` are the path's segments."""
    if len(parts) < 4 or parts[0] != "apis" or parts[1] not in api_paths.GROUPS:
        raise errors.RouteNotFound("the server could not find the requested resource")
    group, version, rest = parts[1], parts[2], parts[3:]
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource_type = api_paths.by_plural(group, version, rest[0])
    if resource_type is None or len(rest) > 3:
        raise errors.RouteNotFound("the server could not find the requested resource")
    if not resource_type.is_namespaced and namespace is not None:
        raise errors.RouteNotFound(
            f"{resource_type.plural} are cluster-scoped: no namespace in the path"
        )
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if subresource not in (None, "status"):
        raise errors.RouteNotFound(f"no subresource {subresource!r}")
    if resource_type.is_namespaced and namespace is None and name is not None:
        raise errors.RouteNotFound(
            f"{resource_type.plural} are namespaced: the path needs a namespace"
        )
    dry_run = query.get("dryRun")
    if dry_run not in (None, "All"):
        raise errors.InvalidInput(f"dryRun must be All, not {dry_run!r}")
    return Call(resource_type, namespace, name, subresource, dry_run == "All")


def int_param(query: dict[str, str], key: str, default: int, minimum: int) -> int:
    try:
        value = int(query.get(key, default))
    except ValueError as exc:
        raise errors.InvalidInput(f"{key} must be an integer") from exc
    if value < minimum:
        raise errors.InvalidInput(f"{key} must be at least {minimum}")
    return value


def float_param(query: dict[str, str], key: str, default: float) -> float:
    try:
        value = float(query.get(key, default))
    except ValueError as exc:
        raise errors.InvalidInput(f"{key} must be a number") from exc
    if not value >= 0:
        raise errors.InvalidInput(f"{key} must not be negative")
    return value
