"""Knative mode's top-level host: the Istio VirtualService `{isvc}` and the ExternalName Service
`{isvc}` pointing at the local gateway, as KServe's `ingress_reconciler.go` makes them (§5.5).

The VirtualService answers on `{isvc}.{ns}.svc.cluster.local` and the external host (the entry
component's Knative host with `-predictor`/`-transformer` cut out, as KServe derives it), sends
`:explain` calls to the explainer and everything else to the entry component, each through
Knative's local gateway with the Host header rewritten. Two facts come from the cluster and are
read from the InferenceService's status, where the operator records what it observed:
`status.components.<c>.url` (Knative's URL of each component) and the `<Component>Ready`
conditions (KServe creates the VirtualService only once every component is Ready). Without
them, as in a pure `ksrv k8s render`, the steady state is rendered: every component Ready, at
Knative's default host `{ksvc}.{ns}.{ingressDomain}`.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from ksrv.api import names
from ksrv.api.inference_service import InferenceService
from ksrv.k8s import naming
from ksrv.k8s.config import DISALLOWED_ANNOTATIONS, Ingress
from ksrv.k8s.context import ComponentContext

API_VERSION: Final = "networking.istio.io/v1beta1"
VISIBILITY_LABEL: Final = "networking.knative.dev/visibility"
CLUSTER_LOCAL: Final = "cluster-local"
MESH_GATEWAY: Final = "mesh"
NAME_HEADER: Final = "KServe-Isvc-Name"
NAMESPACE_HEADER: Final = "KServe-Isvc-Namespace"
EXPLAIN_REGEX: Final = r"^/v1/models/[\w-]+:explain$"
PATH_EXPLAIN_REGEX: Final = r"(/v1/models/[\w-]+:explain)$"
_PORT_MATCH: Final = r"(?::\d{1,5})?"
_GO_META: Final = frozenset("\\.+*?()|[]{}^$")


def ingress_objects(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The VirtualService (once every component is Ready) and the ExternalName Service; none
    when the cluster disables Istio's virtual host."""
    if not contexts or contexts[0].config.ingress.disable_istio_virtual_host:
        return []
    isvc, ingress = contexts[0].isvc, contexts[0].config.ingress
    ksvcs = {ctx.component: ctx.name for ctx in contexts}
    objects = []
    if all(is_component_ready(isvc, component) for component in ksvcs):
        objects.append(virtual_service(isvc, ksvcs, ingress))
    objects.append(external_name_service(isvc, ingress))
    return objects


def is_component_ready(isvc: InferenceService, component: str) -> bool:
    """Whether `<Component>Ready` is True, or not recorded at all (the steady state)."""
    wanted = f"{component.capitalize()}Ready"
    for condition in (isvc.status or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == wanted:
            return str(condition.get("status")) == "True"
    return True


def virtual_service(
    isvc: InferenceService, ksvcs: dict[str, str], ingress: Ingress
) -> dict[str, Any]:
    """The VirtualService `{isvc}`; `ksvcs` maps each component to its Knative Service."""
    name, namespace = isvc.metadata.name, isvc.metadata.namespace or "default"
    entry = "transformer" if "transformer" in ksvcs else "predictor"
    service_host = _service_host(isvc, entry, ksvcs[entry], ingress)
    internal_host = naming.cluster_local_host(name, namespace)
    is_internal = (
        isvc.metadata.labels.get(VISIBILITY_LABEL) == CLUSTER_LOCAL or service_host == internal_host
    )
    extra_hosts = [] if is_internal else _additional_hosts(service_host, name, namespace, ingress)
    gateway = ingress.knative_local_gateway_service or ingress.local_gateway_service
    route = [{"destination": {"host": gateway, "port": {"number": 80}}, "weight": 100}]

    def headers(component: str) -> dict[str, Any]:
        backend = naming.cluster_local_host(ksvcs[component], namespace)
        return {"request": {"set": {"Host": backend, NAME_HEADER: name,
                                    NAMESPACE_HEADER: namespace}}}  # fmt: skip

    def match(uri: dict[str, str] | None) -> list[dict[str, Any]]:
        return _matches(uri, service_host, internal_host, extra_hosts, is_internal, ingress)

    http = []
    if "explainer" in ksvcs:
        http.append({"match": match({"regex": EXPLAIN_REGEX}), "route": route,
                     "headers": headers("explainer")})  # fmt: skip
    http.append({"match": match(None), "route": route, "headers": headers(entry)})
    hosts = [internal_host]
    gateways = [ingress.local_gateway, MESH_GATEWAY]
    if not is_internal:
        hosts.append(service_host)
        gateways.append(ingress.ingress_gateway)
    if ingress.path_template:
        path = urlsplit(naming.url(name, namespace, ingress)).path.rstrip("/")
        http.extend(_path_routes(path, "explainer" in ksvcs, ingress, route, headers, entry))
        hosts.append(ingress.ingress_domain)
    hosts.extend(host for host in extra_hosts if host not in hosts)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if isvc.metadata.labels:
        metadata["labels"] = dict(isvc.metadata.labels)
    annotations = {
        k: v for k, v in isvc.metadata.annotations.items() if k not in DISALLOWED_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {"hosts": hosts, "gateways": gateways, "http": http},
    }


def external_name_service(isvc: InferenceService, ingress: Ingress) -> dict[str, Any]:
    """The Service `{isvc}` that resolves to the local gateway, so the cluster-local host works."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": isvc.metadata.name, "namespace": isvc.metadata.namespace or "default"},
        "spec": {
            "externalName": ingress.local_gateway_service,
            "type": "ExternalName",
            "sessionAffinity": "None",
        },
    }


def host_regex(host: str) -> str:
    """KServe's HostRegExp: the host, exactly, with any port."""
    # KServe also special-cases cluster-local hosts, but its suffix test compares against a
    # pattern string, so it never fires: every host takes this form.
    return "^" + "".join("\\" + c if c in _GO_META else c for c in host) + _PORT_MATCH + "$"


def _matches(
    uri: dict[str, str] | None,
    service_host: str,
    internal_host: str,
    extra_hosts: list[str],
    is_internal: bool,
    ingress: Ingress,
) -> list[dict[str, Any]]:
    """KServe's createHTTPMatchRequest: the internal host on the local gateway and the mesh,
    and unless internal the external and additional hosts on the ingress gateway."""

    def one(host: str, gateways: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {"authority": {"regex": host_regex(host)}, "gateways": gateways}
        if uri is not None:
            found = {"uri": uri, **found}
        return found

    matches = [one(internal_host, [ingress.local_gateway, MESH_GATEWAY])]
    if not is_internal:
        matches.append(one(service_host, [ingress.ingress_gateway]))
        for host in extra_hosts:
            candidate = one(host, [ingress.ingress_gateway])
            if candidate not in matches:
                matches.append(candidate)
    return matches


def _path_routes(
    path: str,
    has_explainer: bool,
    ingress: Ingress,
    route: list[dict[str, Any]],
    headers: Any,
    entry: str,
) -> list[dict[str, Any]]:
    """The routes for a `pathTemplate` URL (`http://{ingressDomain}{path}`)."""
    authority = {"regex": host_regex(ingress.ingress_domain)}
    gateways = [ingress.ingress_gateway]
    routes = []
    if has_explainer:
        explain = path + PATH_EXPLAIN_REGEX
        routes.append({
            "match": [{"uri": {"regex": explain}, "authority": authority, "gateways": gateways}],
            "rewrite": {"uriRegexRewrite": {"match": explain, "rewrite": "\\1"}},
            "route": route,
            "headers": headers("explainer"),
        })  # fmt: skip
    routes.append({
        "match": [
            {"uri": {"prefix": path + "/"}, "authority": authority, "gateways": gateways},
            {"uri": {"exact": path}, "authority": authority, "gateways": gateways},
        ],
        "rewrite": {"uri": "/"},
        "route": route,
        "headers": headers(entry),
    })  # fmt: skip
    return routes


def _service_host(isvc: InferenceService, entry: str, ksvc: str, ingress: Ingress) -> str:
    """KServe's getServiceHost: the entry component's Knative host less `-{component}`."""
    recorded = ((isvc.status or {}).get("components") or {}).get(entry) or {}
    url = recorded.get("url") if isinstance(recorded, dict) else None
    host = urlsplit(str(url)).netloc if url else knative_host(isvc, ksvc, ingress)
    if "-default" in host:
        return host.replace(f"-{entry}-default", "", 1)
    return host.replace(f"-{entry}", "", 1)


def knative_host(isvc: InferenceService, ksvc: str, ingress: Ingress) -> str:
    """Knative's host for a Knative Service with its default domain template
    (`{name}.{namespace}.{domain}`), the ingress domain standing in for Knative's domain;
    cluster-local services get the cluster domain."""
    namespace = isvc.metadata.namespace or "default"
    if isvc.metadata.labels.get(VISIBILITY_LABEL) == CLUSTER_LOCAL:
        return naming.cluster_local_host(ksvc, namespace)
    return f"{ksvc}.{namespace}.{ingress.ingress_domain}"


def _additional_hosts(service_host: str, name: str, namespace: str, ingress: Ingress) -> list[str]:
    """KServe's GetAdditionalHosts: the service host's subdomain under each additional domain.

    KServe cuts the subdomain against Knative's configured domains. Those are not known here:
    the ingress domain stands in, and so does whatever follows `{isvc}.{ns}.` in the service
    host (Knative's default domain template puts its domain there)."""
    domains = [ingress.ingress_domain]
    prefix = f"{name}.{namespace}."
    if service_host.startswith(prefix):
        domains.append(service_host.removeprefix(prefix))
    subdomain = next(
        (service_host.removesuffix(d) for d in domains if d and service_host.endswith(d)), ""
    )
    hosts: list[str] = []
    if not subdomain:
        return hosts
    for extra in ingress.additional_ingress_domains:
        host = subdomain + extra
        if host not in hosts and names.name_problem(host) is None:
            hosts.append(host)
    return hosts
