"""A Standard-mode InferenceService's Gateway API HTTPRoutes (§5.4), when `enableGatewayApi`.

One route per component (`foo-predictor`, `foo-transformer`, `foo-explainer`, each on its own
host) and a top-level `foo`, all attached to the `kserveIngressGateway`. Every rule sets the
`KServe-Isvc-Name` / `KServe-Isvc-Namespace` headers and a request timeout (the component's
`timeout`, else 60 s; none with `disableHTTPRouteTimeout`). A component whose Service has both
an HTTP and a gRPC port gets a gRPC rule first (path `^/inference\\.GRPCInferenceService/.*$`
and content-type `^application/grpc.*`, to the gRPC port), then a catch-all to the HTTP port;
otherwise one catch-all to port 80. The top route sends `:explain` to the explainer and the
rest to the transformer, else the predictor; a `pathTemplate` adds path rules on the ingress
domain. Canaries: rules to the stable predictor split by weight with the Ready canaries. The
predictor route keeps its `foo-predictor` name and host even for a named predictor (KServe
keeps them stable across a canary promotion); its backends use the real Service name.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.errors import ResourceInvalid
from ksrv.k8s import canary, naming, podspec
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.service import HTTP_PORT, protocol_ports, service_ports

NAME_HEADER: Final = "KServe-Isvc-Name"
NAMESPACE_HEADER: Final = "KServe-Isvc-Namespace"
FALLBACK_PATH: Final = "^/.*$"
EXPLAIN_PATH: Final = r"^/v1/models/[\w-]+:explain$"
PATH_EXPLAIN_SUFFIX: Final = r"(/v1/models/[\w-]+:explain)$"
GRPC_PATH: Final = r"^/inference\.GRPCInferenceService/.*$"
GRPC_CONTENT_TYPE: Final = "^application/grpc.*"
DEFAULT_TIMEOUT_S: Final = 60
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"


def routes(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The HTTPRoutes of the InferenceService of `contexts`, each once its parts are Ready."""
    by_component = {ctx.component: ctx for ctx in contexts}
    predictor = by_component.get("predictor")
    if predictor is None:
        return []
    readiness = predictor.readiness
    isvc_name = predictor.isvc.metadata.name
    found = []
    for component, ctx in by_component.items():
        if not readiness.is_component_ready(component):
            continue
        route_name = naming.component_name(isvc_name, component)
        rules = _component_rules(ctx)
        if component == "predictor":
            rules = _weighted(rules, ctx)
        found.append(_route(predictor, route_name, [_host(predictor, route_name)], rules))
    if all(readiness.is_component_ready(c) for c in by_component):
        found.append(_top_route(predictor, by_component))
    return found


def _top_route(
    predictor: ComponentContext, by_component: dict[str, ComponentContext]
) -> dict[str, Any]:
    ingress = predictor.config.ingress
    isvc_name = predictor.isvc.metadata.name
    top_host = _host(predictor, isvc_name)
    hosts = [top_host, *_additional_hosts(top_host, predictor)]
    explainer = by_component.get("explainer")
    entry = by_component.get("transformer") or predictor
    rules = []
    if explainer is not None:
        rules.append(_rule(explainer, [_path(EXPLAIN_PATH)], HTTP_PORT))
    rules += _component_rules(entry)
    if ingress.path_template:
        path = naming.url_path(isvc_name, predictor.namespace, ingress).removesuffix("/")
        hosts.append(ingress.ingress_domain)
        if explainer is not None:
            match = [_path(path + PATH_EXPLAIN_SUFFIX)]
            rules.append(_rule(explainer, match, HTTP_PORT))
        rules.append(_rule(entry, [_path(path + "/")], HTTP_PORT))
    return _route(predictor, isvc_name, hosts, _weighted(rules, predictor))


def _component_rules(ctx: ComponentContext) -> list[dict[str, Any]]:
    """A gRPC rule then a catch-all when the Service has both protocols, else one catch-all."""
    rest, grpc = protocol_ports(service_ports(podspec.pod_spec(ctx), ctx.name))
    if rest is not None and grpc is not None:
        grpc_match = {
            "path": {"type": "RegularExpression", "value": GRPC_PATH},
            "headers": [
                {"type": "RegularExpression", "name": "content-type", "value": GRPC_CONTENT_TYPE}
            ],
        }
        return [
            _rule(ctx, [grpc_match], grpc),
            _rule(ctx, [_path(FALLBACK_PATH)], rest),
        ]
    return [_rule(ctx, [_path(FALLBACK_PATH)], HTTP_PORT)]


def _rule(ctx: ComponentContext, matches: list[dict[str, Any]], port: int) -> dict[str, Any]:
    """One rule: `matches` -> `ctx`'s Service on `port`, with the ISVC headers and `ctx`'s
    timeout."""
    headers = [
        {"name": NAME_HEADER, "value": ctx.isvc.metadata.name},
        {"name": NAMESPACE_HEADER, "value": ctx.namespace},
    ]
    rule: dict[str, Any] = {
        "matches": matches,
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": headers}}],
        "backendRefs": [
            {"kind": "Service", "name": ctx.name, "namespace": ctx.namespace, "port": port}
        ],
    }
    if not ctx.config.ingress.disable_http_route_timeout:
        timeout = ctx.raw.get("timeout") or DEFAULT_TIMEOUT_S
        rule["timeouts"] = {"request": f"{int(timeout)}s"}
    return rule


def _weighted(rules: list[dict[str, Any]], predictor: ComponentContext) -> list[dict[str, Any]]:
    """Rules to the stable predictor split between it and its Ready canaries.

    KServe splits every rule of the route, so `:explain` and transformer rules would also
    reach canary predictors; ksrv splits only the rules that go to the predictor."""
    if not predictor.isvc.spec.canary:
        return rules
    split = canary.weights(predictor.isvc, predictor.readiness)
    stable = split[0][0]
    for rule in rules:
        (template,) = rule["backendRefs"]
        if template["name"] != stable:
            continue
        rule["backendRefs"] = [
            {**template, "name": name, "weight": weight} for name, weight in split
        ]
    return rules


def _route(
    ctx: ComponentContext, name: str, hosts: list[str], rules: list[dict[str, Any]]
) -> dict[str, Any]:
    isvc, config = ctx.isvc, ctx.config
    gateway_namespace, _, gateway_name = config.ingress.kserve_ingress_gateway.partition("/")
    if not gateway_namespace or not gateway_name:
        raise ResourceInvalid(
            f"ingress.kserveIngressGateway {config.ingress.kserve_ingress_gateway!r} must be "
            "namespace/name",
            "InvalidConfig",
        )
    metadata: dict[str, Any] = {"name": name, "namespace": ctx.namespace}
    labels = {k: v for k, v in isvc.metadata.labels.items() if k not in config.disallowed_labels}
    annotations = {
        k: v for k, v in isvc.metadata.annotations.items() if k not in config.disallowed_annotations
    }
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    parent = {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": gateway_namespace,
              "name": gateway_name}  # fmt: skip
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": {"parentRefs": [parent], "hostnames": hosts, "rules": rules},
    }


def _host(ctx: ComponentContext, name: str) -> str:
    meta = ctx.isvc.metadata
    return naming.domain_name(
        name, ctx.namespace, ctx.config.ingress, annotations=meta.annotations, labels=meta.labels
    )


def _additional_hosts(top_host: str, ctx: ComponentContext) -> list[str]:
    """The top host again under each `additionalIngressDomains` entry (valid, new ones only)."""
    ingress = ctx.config.ingress
    subdomain = top_host.removesuffix(ingress.ingress_domain)
    if subdomain == top_host or not subdomain:
        return []
    found: list[str] = []
    for domain in ingress.additional_ingress_domains:
        host = subdomain + domain
        if naming.is_dns_subdomain(host) and host not in found and host != top_host:
            found.append(host)
    return found


def _path(regex: str) -> dict[str, Any]:
    return {"path": {"type": "RegularExpression", "value": regex}}
