"""The URLs the operator writes to a Standard-mode InferenceService's status (§5.4).

- `status.url`: `{urlScheme}://` + the domainTemplate host of the InferenceService. Standard
  mode ignores `pathTemplate` (KServe's raw URL; the path form, `naming.url`, is Knative's).
- `status.address.url`: `http://{entry}.{ns}.svc.cluster.local`, the entry being the
  transformer if there is one, else the predictor; a headless entry Service has no port
  mapping, so its HTTP target port is added.
- `status.components.<component>.url`: `http://` + the domainTemplate host of the component's
  workload (`foo-predictor-ns.example.com`); KServe writes `http` there whatever the scheme.
"""

from __future__ import annotations

from typing import Any

from ksrv.api.inference_service import InferenceService
from ksrv.k8s import naming
from ksrv.k8s.config import Ingress
from ksrv.k8s.service import DEFAULT_TARGET_PORT, is_grpc_port


def status_url(isvc: InferenceService, ingress: Ingress) -> str:
    """`status.url`: `http://foo-ns.example.com`."""
    return f"{ingress.url_scheme}://{_host(isvc, isvc.metadata.name, ingress)}"


def entry_service_name(isvc: InferenceService) -> str:
    """The Service requests enter by: the transformer's, else the predictor's."""
    if isvc.spec.transformer is not None:
        return naming.component_name(isvc.metadata.name, "transformer")
    return naming.predictor_name(isvc.metadata.name, isvc.spec.predictor.name)


def address_url(isvc: InferenceService, entry_service: dict[str, Any] | None = None) -> str:
    """`status.address.url`; pass the entry Service (as rendered or read) to honour a headless
    one (`http://foo-predictor.ns.svc.cluster.local:8080`)."""
    host = naming.cluster_local_host(entry_service_name(isvc), _namespace(isvc))
    spec = (entry_service or {}).get("spec") or {}
    if spec.get("clusterIP") == "None":
        ports = [p for p in spec.get("ports") or () if not is_grpc_port(p)]
        target = ports[0].get("targetPort") if ports else None
        host = f"{host}:{target if isinstance(target, int) and target > 0 else DEFAULT_TARGET_PORT}"
    return f"http://{host}"


def component_url(isvc: InferenceService, name: str, ingress: Ingress) -> str:
    """`status.components.<component>.url` of workload `name` (`foo-predictor`)."""
    return f"http://{_host(isvc, name, ingress)}"


def _host(isvc: InferenceService, name: str, ingress: Ingress) -> str:
    meta = isvc.metadata
    return naming.domain_name(
        name, _namespace(isvc), ingress, annotations=meta.annotations, labels=meta.labels
    )


def _namespace(isvc: InferenceService) -> str:
    return isvc.metadata.namespace or "default"
