"""The route table the control plane publishes, as a matcher: request host or path -> target.

Every host form a service answers to is expanded once into a dict when a table arrives, so a
request costs one dict lookup (host) or one split and lookup (path), never a scan over the
services. Only ready replicas are listed; a backend without any (scaled to zero, starting)
takes no traffic: its requests are held for it. A component with none and `failed` set
will get none until its spec changes (the reason).
A tagged backend (Knative's traffic tags, `latest` / `prev`) is also reached alone: on its
tag host `{tag}-{name}-{component}-{namespace}.{domain}` (or `.{namespace}.{domain}`), or
with the header `Knative-Serving-Tag: {tag}` on any host of the service; a backend at 0%
takes traffic only that way. A component may name a shadow revision (`ksrv.dev/shadow-percent`):
it gets copies of a share of the requests, never answers (`gateway/shadow.py`). A service with
`enable_auth` admits only tokens the table's `grants` list (`gateway/auth.py`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ksrv.errors import InvalidInput
from ksrv.protocol.routes import DEFAULT_ENTRY, DEFAULT_TIMEOUT_S

_PATH_PREFIX = "/serving/"
_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_CHARS = 512


@dataclass(frozen=True, slots=True)
class Replica:
    """One ready `ksrv serve` process: its REST and gRPC addresses (`host:port`)."""

    http: str
    grpc: str


@dataclass(frozen=True, slots=True)
class Backend:
    """One revision of a component and the share of traffic it should get."""

    revision: str
    percent: float
    tag: str
    replicas: tuple[Replica, ...]
    http: tuple[str, ...] = field(init=False)
    """The replicas' REST addresses, as the balancer takes them."""
    grpc: tuple[str, ...] = field(init=False)
    """The gRPC addresses of the replicas that have one."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "http", tuple(r.http for r in self.replicas))
        object.__setattr__(self, "grpc", tuple(r.grpc for r in self.replicas if r.grpc))


@dataclass(frozen=True, slots=True)
class Component:
    """A component's backends, with the cumulative weights a weighted choice needs."""

    name: str
    backends: tuple[Backend, ...]
    live: tuple[Backend, ...]
    cumulative: tuple[float, ...]
    timeout_s: float | None = None
    """The component's own `timeout`; None falls back to the service's."""
    failed: str | None = None
    """Why no replica will come without a change (the control plane's word), or None."""
    tags: dict[str, Component] = field(default_factory=dict)
    """Each tagged backend as a component of its own, for its tag host and header."""
    concurrency: int = 0
    """`containerConcurrency`: most requests in flight at one replica (0: no limit)."""
    shadow: Shadow | None = None
    """The revision that gets copies of `shadow.percent`% of the requests, if any."""
    is_multi_model: bool = False
    """A multi-model predictor: a model's requests prefer the replica that holds it."""

    def choose_held(self, rng: random.Random) -> Backend | None:
        """The revision a request held with no ready replica waits for (the activator asks
        for it): a backend by `percent`, replicas or not; None when none is listed."""
        backends = self.backends
        if len(backends) <= 1:
            return backends[0] if backends else None
        total = sum(max(b.percent, 0.0) for b in backends)
        point = rng.random() * total
        for backend in backends:
            point -= max(backend.percent, 0.0)
            if point < 0:
                return backend
        return backends[-1]

    def choose(self, rng: random.Random) -> Backend | None:
        """A backend by `percent`, among those with replicas; None when none has any.

        An empty backend's share goes to the others in proportion; a backend at 0% is
        reached only by its tag.
        """
        live = self.live
        if len(live) <= 1:
            return live[0] if live else None
        point = rng.random() * self.cumulative[-1]
        for backend, edge in zip(live, self.cumulative, strict=True):
            if point < edge:
                return backend
        return live[-1]


@dataclass(frozen=True, slots=True)
class Shadow:
    """A shadow revision as a one-backend component (its own timeout and limit), and the
    percentage of requests copied to it."""

    percent: float
    component: Component


@dataclass(frozen=True, slots=True)
class Service:
    """One InferenceService: where its entry, components and explainer live."""

    namespace: str
    name: str
    timeout_s: float
    entry: str
    components: dict[str, Component]
    enable_auth: bool = False
    """KServe's `serving.kserve.io/enable-auth`: a token for the namespace is required."""
    identity: bytes = field(init=False, repr=False)
    """The header lines the proxy adds upstream (KServe's `kserve-isvc-*`), encoded once."""

    def __post_init__(self) -> None:
        identity = b"\r\nkserve-isvc-name: %b\r\nkserve-isvc-namespace: %b" % (
            self.name.encode(),
            self.namespace.encode(),
        )
        object.__setattr__(self, "identity", identity)


@dataclass(frozen=True, slots=True)
class Match:
    """Where a request goes: a service's component, and the target to send upstream."""

    service: Service
    component: Component
    target: bytes


class RouteTable:
    """A parsed route table: `match(host, target)` finds the component a request is for."""

    def __init__(
        self,
        version: int,
        domain: str,
        services: list[Service],
        grants: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        """`grants`: token hash -> (namespace, role), for the services with `enable_auth`."""
        self.version = version
        self.domain = domain
        self.services = services
        self.grants = grants or {}
        self.requires_auth = any(service.enable_auth for service in services)
        self._hosts: dict[str, tuple[Service, str, str]] = {}
        self._paths: dict[tuple[str, str], tuple[Service, str, str]] = {}
        self._remembered: dict[tuple[str, bytes, str], Match] = {}
        for service in services:
            n, s, d = service.name, service.namespace, domain
            for host in (f"{n}.{s}.{d}", f"{n}-{s}.{d}"):
                self._hosts.setdefault(host, (service, service.entry, ""))
            self._paths.setdefault((s, n), (service, service.entry, ""))
            for c in service.components:
                for host in (f"{n}-{c}.{s}.{d}", f"{n}-{c}-{s}.{d}"):
                    self._hosts.setdefault(host, (service, c, ""))
                self._paths.setdefault((s, f"{n}-{c}"), (service, c, ""))
        # After every service's own names, so a service called `latest-x` keeps its hosts.
        for service in services:
            n, s, d = service.name, service.namespace, domain
            for c, component in service.components.items():
                for t in component.tags:
                    for host in (f"{t}-{n}-{c}.{s}.{d}", f"{t}-{n}-{c}-{s}.{d}"):
                        self._hosts.setdefault(host, (service, c, t))
                    self._paths.setdefault((s, f"{t}-{n}-{c}"), (service, c, t))

    @classmethod
    def empty(cls) -> RouteTable:
        return cls(0, "example.com", [])

    def match(self, host: str, target: bytes, tag: str = "") -> Match | None:
        """The component for this Host header (port ignored) or `/serving/NS/NAME` path;
        `tag` (a `Knative-Serving-Tag` header) narrows it to that tag's revision, when the
        component has one (Knative routes an unknown tag as if none were given).

        Clients repeat the same few (host, target) pairs, so matches are remembered (up to
        `_MAX_REMEMBERED`, then forgotten all at once); misses and long targets are not, so
        scans cannot crowd the memory.
        """
        key = (host, target, tag)
        remembered = self._remembered.get(key)
        if remembered is not None:
            return remembered
        match = self._match(host, target, tag)
        if match is not None and len(target) + len(host) <= _MAX_REMEMBERED_CHARS:
            if len(self._remembered) >= _MAX_REMEMBERED:
                self._remembered.clear()
            self._remembered[key] = match
        return match

    def _match(self, host: str, target: bytes, tag: str) -> Match | None:
        found = self._hosts.get(host.partition(":")[0].lower()) if host else None
        if found is None:
            found, target = self._match_path(target)
            if found is None:
                return None
        service, name, host_tag = found
        if name == service.entry and "explainer" in service.components and not host_tag:
            path = target.partition(b"?")[0]
            if path.endswith(b":explain"):
                name = "explainer"
        component = service.components.get(name)
        if component is None:
            return None
        tag = host_tag or tag
        if tag:
            component = component.tags.get(tag, component)
        return Match(service, component, target)

    def _match_path(self, target: bytes) -> tuple[tuple[Service, str, str] | None, bytes]:
        if not target.startswith(b"/serving/"):
            return None, target
        parts = target[len(_PATH_PREFIX) :].split(b"/", 2)
        if len(parts) < 2:
            return None, target
        namespace = parts[0].decode("latin-1")
        name, _, query = parts[1].partition(b"?")
        found = self._paths.get((namespace, name.decode("latin-1")))
        rest = b"/" + parts[2] if len(parts) == 3 else b"/"
        if query:
            rest += b"?" + query
        return found, rest


def parse_table(document: Mapping[str, Any]) -> RouteTable:
    """The JSON the control plane serves (a `ksrv.protocol.routes.RouteTableDoc`) -> a
    RouteTable. It comes off the wire, so every field is checked, not trusted to the type."""
    try:
        services = [_parse_service(item) for item in document.get("services", [])]
        grants = {
            str(g["sha256"]): (str(g["namespace"]), str(g["role"]))
            for g in document.get("tokens") or []
        }
        return RouteTable(int(document["version"]), str(document["domain"]), services, grants)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"route table is malformed: {exc!r}") from exc


def _parse_service(item: dict[str, Any]) -> Service:
    components = {
        name: _parse_component(name, spec) for name, spec in item.get("components", {}).items()
    }
    return Service(
        namespace=str(item["namespace"]),
        name=str(item["name"]),
        timeout_s=float(item.get("timeout_s") or DEFAULT_TIMEOUT_S),
        entry=str(item.get("entry") or DEFAULT_ENTRY),
        components=components,
        enable_auth=item.get("enable_auth") is True,
    )


def _parse_component(name: str, spec: dict[str, Any]) -> Component:
    backends = tuple(
        Backend(
            revision=str(b.get("revision", "")),
            percent=float(b.get("percent", 100)),
            tag=str(b.get("tag") or ""),
            replicas=_replicas(b["replicas"]),
        )
        for b in spec.get("backends", [])
    )
    live = tuple(b for b in backends if b.replicas and b.percent > 0)
    cumulative: list[float] = []
    total = 0.0
    for backend in live:
        total += backend.percent
        cumulative.append(total)
    timeout_s = float(spec["timeout_s"]) if spec.get("timeout_s") else None
    failed = spec.get("failed")
    concurrency = max(0, int(spec.get("container_concurrency") or 0))
    tags = {
        b.tag: Component(
            name, (b,), (b,) if b.replicas else (), (100.0,), timeout_s, concurrency=concurrency
        )
        for b in backends
        if b.tag
    }
    return Component(
        name, backends, live, tuple(cumulative), timeout_s,
        str(failed) if failed and not live else None, tags, concurrency,
        _parse_shadow(name, spec.get("shadow"), timeout_s, concurrency),
        bool(spec.get("multi_model")),
    )  # fmt: skip


def _parse_shadow(
    name: str, spec: dict[str, Any] | None, timeout_s: float | None, concurrency: int
) -> Shadow | None:
    """The route's `shadow` (a `ShadowDoc`), or None; a percentage outside (0, 100] is
    refused, as the control plane never sends one."""
    if not spec:
        return None
    percent = float(spec["percent"])
    if not 0 < percent <= 100:
        raise ValueError(f"shadow percent {percent!r} is not in (0, 100]")
    replicas = _replicas(spec["replicas"])
    backend = Backend(str(spec["revision"]), 100.0, "", replicas)
    live = (backend,) if replicas else ()
    component = Component(name, (backend,), live, (100.0,), timeout_s, concurrency=concurrency)
    return Shadow(percent, component)


def _replicas(items: list[dict[str, Any]]) -> tuple[Replica, ...]:
    return tuple(Replica(str(r["http"]), str(r.get("grpc") or "")) for r in items)
