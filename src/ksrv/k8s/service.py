"""A Standard-mode component's Service, and which of its ports speak gRPC.

KServe's rule (§5.4): the serving container is the collocated `transformer-container` when
there is one, else the first container. Its first port is published on port 80, every other
port on its own number; a port whose name says `grpc` or `h2c` gets `appProtocol:
kubernetes.io/h2c`, which is also how the HTTPRoutes find the gRPC port. A container without
ports is reached on 8080. With KServe's agent sidecar in the pod, port 80 goes to the agent
(9081). The ConfigMap's `service.serviceClusterIPNone` makes it headless.
"""

from __future__ import annotations

from typing import Any, Final

from ksrv.k8s import naming
from ksrv.k8s.context import ComponentContext
from ksrv.k8s.object_meta import Meta

HTTP_PORT: Final = 80
DEFAULT_TARGET_PORT: Final = 8080
AGENT_CONTAINER: Final = "agent"
AGENT_PORT: Final = 9081
TRANSFORMER_CONTAINER: Final = "transformer-container"
H2C: Final = "kubernetes.io/h2c"


def service(ctx: ComponentContext, pod: dict[str, Any], meta: Meta) -> dict[str, Any]:
    """The Service `{name}` in front of `ctx`'s pods."""
    spec: dict[str, Any] = {
        "selector": {naming.APP_LABEL: naming.app_label(ctx.name)},
        "ports": service_ports(pod, ctx.name),
    }
    if ctx.config.workloads.service_cluster_ip_none:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(ctx.name, ctx.namespace),
        "spec": spec,
    }


def service_ports(pod: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The Service's ports for `pod` (`name` names the port of a container without ports)."""
    containers = pod.get("containers") or []
    if not containers:
        return []
    serving = next((c for c in containers if c.get("name") == TRANSFORMER_CONTAINER), containers[0])
    ports = serving.get("ports") or []
    if not ports:
        found = [_port(name, HTTP_PORT, DEFAULT_TARGET_PORT, "TCP")]
    else:
        first = ports[0]
        found = [_port(first.get("name"), HTTP_PORT, first["containerPort"], first.get("protocol"))]
        found += [
            _port(p.get("name"), p["containerPort"], p["containerPort"], p.get("protocol"))
            for p in ports[1:]
        ]
    if any(c.get("name") == AGENT_CONTAINER for c in containers):
        found[0]["targetPort"] = AGENT_PORT
    return found


def _port(name: str | None, port: int, target: int, protocol: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if name:
        found["name"] = name
    found.update(port=port, targetPort=target, protocol=protocol or "TCP")
    if is_grpc_port(found):
        found["appProtocol"] = H2C
    return found


def is_grpc_port(port: dict[str, Any]) -> bool:
    """A Service port that carries gRPC: `appProtocol: kubernetes.io/h2c`, or a name saying so."""
    name = str(port.get("name") or "").lower()
    return port.get("appProtocol") == H2C or "grpc" in name or "h2c" in name


def protocol_ports(ports: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """`(rest, grpc)`: the first HTTP port and the first gRPC port of a Service."""
    rest = next((p["port"] for p in ports if not is_grpc_port(p)), None)
    grpc = next((p["port"] for p in ports if is_grpc_port(p)), None)
    return rest, grpc
