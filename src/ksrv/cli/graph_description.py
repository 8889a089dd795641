"""`ksrv describe ig`: an InferenceGraph's nodes, their steps, and the services behind them.

One table per node (root first, then by name): each step's name (or index), where it sends
(a node, an InferenceService or a URL), what it sends (`data`), its `condition` or `weight`,
its dependency, and for a service step that service's READY and address (`status.address.url`,
where the router reaches it: the gateway). Pure: documents in, lines out.
"""

from __future__ import annotations

from typing import Any

from ksrv.cli import tables

Document = dict[str, Any]


def graph_nodes(graph: Document, services: dict[str, Document]) -> list[str]:
    """The "Nodes:" section's lines; `services`: the graph's namespace's, by name."""
    nodes = (graph.get("spec") or {}).get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        return ["<none>"]
    lines: list[str] = []
    for name in sorted(nodes, key=lambda n: (n != "root", n)):
        node = nodes[name] if isinstance(nodes[name], dict) else {}
        lines.append(f"{name} ({node.get('routerType', '?')}):")
        steps = [step for step in node.get("steps") or [] if isinstance(step, dict)]
        if not steps:
            lines.append("  <no steps>")
            continue
        rows = [["STEP", "TARGET", "", "DATA", "CONDITION/WEIGHT", "DEPENDENCY", "READY",
                 "ADDRESS"]]  # fmt: skip
        rows += [_row(index, step, services) for index, step in enumerate(steps)]
        lines += ["  " + line for line in tables.render(rows).splitlines()]
    return lines


def _row(index: int, step: Document, services: dict[str, Document]) -> list[str]:
    ready = address = ""
    if step.get("nodeName"):
        target = ["node", str(step["nodeName"])]
    elif step.get("serviceName"):
        service_name = str(step["serviceName"])
        target = ["service", service_name]
        service = services.get(service_name)
        if service is None:
            ready = "<not found>"
        else:
            ready = (tables.condition(service, "Ready") or {}).get("status") or "Unknown"
            found = (service.get("status") or {}).get("address")
            address = str(found.get("url") or "") if isinstance(found, dict) else ""
    else:
        target = ["url", str(step.get("serviceUrl") or "")]
    choice = step.get("condition") or step.get("weight")
    return [
        str(step.get("name") or index),
        *target,
        str(step.get("data") or "$request"),
        "" if choice is None else str(choice),
        str(step.get("dependency") or "Soft"),
        ready,
        address,
    ]
