"""KServe's names, labels and hosts for the objects of an InferenceService on a cluster.

One place for what users see and scripts depend on: `{isvc}-predictor` Deployments and
Services, `app=isvc.{isvc}-predictor` labels, hosts from the ConfigMap's `domainTemplate`
(`{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}`) or `pathTemplate`, and cluster-local
addresses. The template language is Go's text/template; KServe's templates use only field
references (`.Name`, `.Namespace`, `.IngressDomain`, `.Annotations.key`, `.Labels.key`), which
is the subset read here; anything else is an error naming the template.
"""

from __future__ import annotations

import re
from typing import Final

from ksrv.errors import ResourceInvalid
from ksrv.k8s.config import Ingress

ISVC_LABEL: Final = "serving.kserve.io/inferenceservice"
COMPONENT_LABEL: Final = "component"
APP_LABEL: Final = "app"
GRAPH_LABEL: Final = "serving.kserve.io/inferencegraph"
FINALIZER: Final = "inferenceservice.finalizers"
CLUSTER_DOMAIN: Final = "svc.cluster.local"
_DNS_SUBDOMAIN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_FIELD: Final = re.compile(r"\{\{\s*\.([A-Za-z]+)(?:\.([A-Za-z0-9_./-]+))?\s*\}\}")


def component_name(isvc: str, component: str) -> str:
    """`foo-predictor`: the Deployment, Service and Knative Service of a component."""
    return f"{isvc}-{component}"


def predictor_name(isvc: str, name: str | None = None) -> str:
    """`foo-predictor`, or `foo-blue-predictor` for a predictor (or canary) named `blue`."""
    return f"{isvc}-{name}-predictor" if name else component_name(isvc, "predictor")


def app_label(name: str) -> str:
    """`isvc.foo-predictor`: the Standard-mode `app` label (and selector) of workload `name`."""
    return f"isvc.{name}"


def component_labels(isvc: str, component: str) -> dict[str, str]:
    """The labels KServe puts on a component's workload and pods."""
    return {
        APP_LABEL: f"isvc.{component_name(isvc, component)}",
        COMPONENT_LABEL: component,
        ISVC_LABEL: isvc,
    }


def cluster_local_host(name: str, namespace: str) -> str:
    """`foo-predictor.ns.svc.cluster.local`."""
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def host(
    name: str,
    namespace: str,
    ingress: Ingress,
    *,
    domain: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """The external host of `name` in `namespace`, from the ConfigMap's domainTemplate."""
    values = {
        "Name": name,
        "Namespace": namespace,
        "IngressDomain": domain or ingress.ingress_domain,
    }
    maps = {"Annotations": annotations or {}, "Labels": labels or {}}

    def substitute(match: re.Match[str]) -> str:
        key, sub = match.group(1), match.group(2)
        if sub is None and key in values:
            return values[key]
        if sub is not None and key in maps:
            return maps[key].get(sub, "")
        raise ResourceInvalid(
            f"domainTemplate {ingress.domain_template!r}: unknown field {match.group(0)!r}",
            "InvalidConfig",
        )

    return _FIELD.sub(substitute, ingress.domain_template)


def domain_name(
    name: str,
    namespace: str,
    ingress: Ingress,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """`host(...)`, refused unless it is a fully qualified domain name (as KServe refuses it)."""
    found = host(name, namespace, ingress, annotations=annotations, labels=labels)
    if not is_dns_subdomain(found) or "." not in found:
        raise ResourceInvalid(
            f"domainTemplate {ingress.domain_template!r} gives {found!r} for {name!r}, which "
            "is not a fully qualified domain name",
            "InvalidConfig",
        )
    return found


def is_dns_subdomain(value: str) -> bool:
    """Kubernetes' DNS-1123 subdomain: lower-case labels joined by dots, at most 253 chars."""
    return len(value) <= 253 and _DNS_SUBDOMAIN.match(value) is not None


def url_path(name: str, namespace: str, ingress: Ingress) -> str:
    """The ConfigMap's `pathTemplate` for one InferenceService (`/serving/ns/foo`); "" if unset."""
    values = {"Name": name, "Namespace": namespace}
    return _FIELD.sub(lambda m: values.get(m.group(1), ""), ingress.path_template or "")


def url(name: str, namespace: str, ingress: Ingress) -> str:
    """`status.url` of an InferenceService: its host, or the domain plus `pathTemplate`."""
    if ingress.path_template:
        path = _FIELD.sub(
            lambda m: {"Name": name, "Namespace": namespace}.get(m.group(1), ""),
            ingress.path_template,
        )
        return f"{ingress.url_scheme}://{ingress.ingress_domain}{path}"
    return f"{ingress.url_scheme}://{host(name, namespace, ingress)}"
