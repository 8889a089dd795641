"""A Standard-mode InferenceService's networking.k8s.io/v1 Ingress (§5.4), named `{isvc}`.

Hosts come from the ConfigMap's domainTemplate; every rule is a `/` Prefix on port 80:
- the top host (`foo-ns.example.com`) goes to the transformer when there is one, else the
  predictor;
- with a transformer, `foo-transformer-ns...` goes to the *predictor* (KServe's rule: the
  transformer's host skips the transformer);
- with an explainer, `foo-explainer-ns...` goes to the explainer;
- `foo-predictor-ns...` goes to the predictor.
KServe creates it only once the predictor (and the transformer, else the explainer) is Ready.
"""

from __future__ import annotations

from typing import Any

from ksrv.k8s import naming
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.service import HTTP_PORT


def ingress(contexts: list[ComponentContext]) -> list[dict[str, Any]]:
    """The Ingress of the InferenceService of `contexts` (empty until its parts are Ready)."""
    by_component = {ctx.component: ctx for ctx in contexts}
    predictor = by_component.get("predictor")
    if predictor is None or not _is_ready(predictor, by_component):
        return []
    isvc = predictor.isvc
    name, namespace = isvc.metadata.name, predictor.namespace

    def host(of: str) -> str:
        return naming.domain_name(
            of,
            namespace,
            predictor.config.ingress,
            annotations=isvc.metadata.annotations,
            labels=isvc.metadata.labels,
        )

    transformer = naming.component_name(name, "transformer")
    explainer = naming.component_name(name, "explainer")
    has_explainer = "explainer" in by_component
    if "transformer" in by_component:
        # KServe writes the transformer's host on this explainer rule, which shadows the rule
        # after it; ksrv uses the explainer's own host, as KServe's docs describe.
        rules = [_rule(host(explainer), explainer)] if has_explainer else []
        rules += [_rule(host(name), transformer), _rule(host(transformer), predictor.name)]
    else:
        rules = [_rule(host(name), predictor.name)]
        if has_explainer:
            rules.append(_rule(host(explainer), explainer))
    rules.append(_rule(host(predictor.name), predictor.name))
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if isvc.metadata.annotations:
        metadata["annotations"] = dict(isvc.metadata.annotations)
    spec: dict[str, Any] = {"rules": rules}
    if predictor.config.ingress.ingress_class_name:
        spec = {"ingressClassName": predictor.config.ingress.ingress_class_name, **spec}
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata,
             "spec": spec}]  # fmt: skip


def _is_ready(predictor: ComponentContext, by_component: dict[str, ComponentContext]) -> bool:
    """KServe's gate: the predictor, then the transformer if any, else the explainer if any."""
    readiness = predictor.readiness
    if not readiness.is_component_ready("predictor"):
        return False
    if "transformer" in by_component:
        return readiness.is_component_ready("transformer")
    return "explainer" not in by_component or readiness.is_component_ready("explainer")


def _rule(host: str, service: str) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": HTTP_PORT}}}
    path = {"path": "/", "pathType": "Prefix", "backend": backend}
    return {"host": host, "http": {"paths": [path]}}
