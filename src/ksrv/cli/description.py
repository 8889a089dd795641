"""`ksrv describe`: one resource for a human, in kubectl's describe layout.

Reads KServe's status fields (url, address.url, conditions, components.*.traffic, modelStatus)
so a failure is readable at a glance: the condition table, then the last failure as an event.
An InferenceGraph's nodes and steps come first, with the services behind them
(`graph_description`). An InferenceService's revisions (`ksrv get revisions`) follow its
status, each with the autoscaler's last decision, or "-" while none was reported; a
component's shadow revision (`ksrv.dev/shadow-percent`) is one line with its copy counts.
Pure: documents and `now` in, text out.
"""

from __future__ import annotations

from typing import Any

import yaml

from ksrv.api.kinds import COMPONENTS
from ksrv.cli import tables
from ksrv.cli.graph_description import graph_nodes

Document = dict[str, Any]


def description(
    document: Document,
    now: float,
    revisions: list[Document] | None = None,
    services: dict[str, Document] | None = None,
) -> str:
    """The whole description of one stored resource; `revisions`: an InferenceService's
    (None: unknown, the section is left out); `services`: for an InferenceGraph, the
    InferenceServices of its namespace by name (its nodes and steps are shown with them)."""
    metadata = document.get("metadata", {})
    status = document.get("status") or {}
    created = metadata.get("creationTimestamp")
    lines = [
        f"Name:          {metadata.get('name', '')}",
        *([f"Namespace:     {metadata['namespace']}"] if metadata.get("namespace") else []),
        f"Kind:          {document.get('kind', '')}",
        f"API Version:   {document.get('apiVersion', '')}",
        f"Labels:        {_pairs(metadata.get('labels'))}",
        f"Annotations:   {_pairs(metadata.get('annotations'))}",
        f"Created:       {created} ({tables.age(created, now)} ago)",
        f"Generation:    {metadata.get('generation', '')}",
        *(["Nodes:", *_indent(graph_nodes(document, services), 2)] if services is not None else []),
        "Spec:",
        *_indent(_spec_summary(document), 2),
        "Status:",
        *_indent(
            _status(status, document.get("kind") in ("InferenceService", "InferenceGraph")), 2
        ),
        *(["Revisions:", *_indent(_revisions(revisions), 2)] if revisions is not None else []),
        "Events:",
        *_indent(_events(status), 2),
    ]
    return "\n".join(lines)


def _pairs(mapping: Any) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return "<none>"
    return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items()))


def _indent(lines: list[str], spaces: int) -> list[str]:
    return [" " * spaces + line if line else line for line in lines]


def _spec_summary(document: Document) -> list[str]:
    """For an InferenceService, one line per component first; then the spec in full."""
    spec = document.get("spec") or {}
    lines = []
    if document.get("kind") == "InferenceService":
        for component in COMPONENTS:
            if isinstance(spec.get(component), dict):
                lines.append(f"{component.capitalize()}:  {_component(spec[component])}")
    lines += yaml.safe_dump(spec, sort_keys=False).rstrip("\n").splitlines() if spec else []
    return lines


def _component(component: Document) -> str:
    parts = []
    model = component.get("model")
    if isinstance(model, dict):
        model_format = model.get("modelFormat") or {}
        name = model_format.get("name", "?")
        version = model_format.get("version")
        parts.append(f"model {name}{':' + str(version) if version else ''}")
        for key in ("runtime", "storageUri", "protocolVersion"):
            if model.get(key):
                parts.append(f"{key}={model[key]}")
    elif component.get("containers"):
        images = [str(c.get("image", "?")) for c in component["containers"] if isinstance(c, dict)]
        parts.append("containers " + ",".join(images))
    low, high = component.get("minReplicas"), component.get("maxReplicas")
    if low is not None or high is not None:
        parts.append(f"replicas {low if low is not None else 1}..{high or '∞'}")
    if component.get("canaryTrafficPercent") is not None:
        parts.append(f"canary {component['canaryTrafficPercent']}%")
    return ", ".join(parts) or "(custom)"


def _status(status: Document, is_reconciled: bool) -> list[str]:
    if not status:
        return ["<none yet: the reconciler has not reported>" if is_reconciled else "<none>"]
    lines = [f"URL:       {status.get('url', '<none>')}"]
    address = status.get("address")
    if isinstance(address, dict) and address.get("url"):
        lines.append(f"Address:   {address['url']}")
    lines += ["Conditions:", *_indent(_conditions(status.get("conditions")), 2)]
    model_status = status.get("modelStatus")
    if isinstance(model_status, dict):
        lines += ["Model Status:", *_indent(_model_status(model_status), 2)]
    components = status.get("components")
    if isinstance(components, dict) and components:
        lines.append("Components:")
        for name, component in components.items():
            if isinstance(component, dict):
                lines += _indent([f"{name}:", *_indent(_component_status(component), 2)], 2)
    known = {"url", "address", "conditions", "modelStatus", "components"}
    rest = {key: value for key, value in status.items() if key not in known}
    if rest:
        lines += yaml.safe_dump(rest, sort_keys=False).rstrip("\n").splitlines()
    return lines


def _conditions(conditions: Any) -> list[str]:
    entries = [entry for entry in conditions or [] if isinstance(entry, dict)]
    if not entries:
        return ["<none>"]
    rows = [["TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"]]
    rows += [
        [str(entry.get(key) or "") for key in ("type", "status", "reason", "lastTransitionTime")]
        + [str(entry.get("message") or "")]
        for entry in entries
    ]
    return tables.render(rows).splitlines()


def _model_status(model_status: Document) -> list[str]:
    states = model_status.get("states") or {}
    copies = model_status.get("copies") or {}
    fields = [
        ("Transition Status:", model_status.get("transitionStatus")),
        ("Active Model State:", states.get("activeModelState")),
        ("Target Model State:", states.get("targetModelState")),
    ]
    if copies:
        failed, total = copies.get("failedCopies", 0), copies.get("totalCopies", 0)
        fields.append(("Copies:", f"{total} total, {failed} failed"))
    return [f"{label:<20} {value}" for label, value in fields if value]


def _component_status(component: Document) -> list[str]:
    labels = {
        "url": "URL:",
        "latestCreatedRevision": "Latest Created Revision:",
        "latestReadyRevision": "Latest Ready Revision:",
        "latestRolledoutRevision": "Latest Rolled-out Revision:",
        "previousRolledoutRevision": "Previous Rolled-out Revision:",
    }
    present = [(label, component[key]) for key, label in labels.items() if component.get(key)]
    width = max((len(label) for label, _ in present), default=0)
    lines = [f"{label.ljust(width)}  {value}" for label, value in present]
    traffic = [entry for entry in component.get("traffic") or [] if isinstance(entry, dict)]
    if traffic:
        rows = [["REVISION", "PERCENT", "TAG", "LATEST"]]
        rows += [
            [
                str(entry.get("revisionName", "")),
                f"{entry.get('percent', 0)}%",
                str(entry.get("tag") or ""),
                "true" if entry.get("latestRevision") else "",
            ]
            for entry in traffic
        ]
        lines += ["Traffic:", *_indent(tables.render(rows).splitlines(), 2)]
    shadow = component.get("shadow")
    if isinstance(shadow, dict) and shadow:
        lines.append(
            f"Shadow: {shadow.get('revisionName', '?')} gets {shadow.get('percent', '?')}% "
            f"as copies: {shadow.get('sent', 0)} sent, {shadow.get('errors', 0)} errors, "
            f"{shadow.get('skipped', 0)} skipped"
        )
    return lines


def _revisions(revisions: list[Document]) -> list[str]:
    """One row per revision, then the autoscaler's last decision for each."""
    if not revisions:
        return ["<none>"]
    rows = [["NAME", "COMPONENT", "TRAFFIC", "TAG", "ACTUAL", "DESIRED", "READY", "REASON"]]
    decisions = []
    for revision in revisions:
        name = str(revision["metadata"].get("name", ""))
        labels = revision["metadata"].get("labels") or {}
        status = revision.get("status") or {}
        ready = tables.condition(revision, "Ready") or {}
        percent, tag = tables.revision_traffic(revision)
        rows.append(
            [
                name,
                str(labels.get("component", "")),
                percent,
                tag,
                str(status.get("actualReplicas", "")),
                str(status.get("desiredReplicas", "")),
                str(ready.get("status", "")),
                str(ready.get("reason", "")),
            ]
        )
        decisions.append([name, _decision(status.get("autoscaler"))])
    return [
        *tables.render(rows).splitlines(),
        "Autoscaler (last decision):",
        *_indent(tables.render(decisions).splitlines(), 2),
    ]


def _decision(decision: Any) -> str:
    """The autoscaler's last decision in a line: mode, observed load, target, replicas."""
    if not isinstance(decision, dict) or not decision:
        return "-"
    parts = [str(decision.get("mode", "?"))]
    metric = decision.get("metric", "")
    if decision.get("mode") == "external":  # one value: a KEDA query on the replicas' metrics
        parts.append(f"{metric} = {decision.get('observedStable', '?')}")
    elif "observedStable" in decision or "observedPanic" in decision:
        parts.append(
            f"{metric} {decision.get('observedStable', '?')} stable / "
            f"{decision.get('observedPanic', '?')} panic".strip()
        )
    if "target" in decision:
        parts.append(f"target {decision['target']}")
    if "desiredReplicas" in decision:
        parts.append(f"{decision['desiredReplicas']} desired")
    reason = decision.get("reason")
    return ", ".join(parts) + (f": {reason}" if reason else "")


def _events(status: Document) -> list[str]:
    """What went wrong last: modelStatus.lastFailureInfo, then failing conditions."""
    lines = []
    model_status = status.get("modelStatus")
    failure = model_status.get("lastFailureInfo") if isinstance(model_status, dict) else None
    if isinstance(failure, dict) and failure:
        where = f" in {failure['location']}" if failure.get("location") else ""
        exit_code = failure.get("exitCode")
        lines.append(
            f"{failure.get('time', '')}  Warning  {failure.get('reason', 'Failed')}{where}: "
            f"{failure.get('message', '')}"
            + (f" (exit code {exit_code})" if exit_code is not None else "")
        )
    for entry in status.get("conditions") or []:
        if isinstance(entry, dict) and entry.get("status") == "False" and entry.get("message"):
            lines.append(
                f"{entry.get('lastTransitionTime', '')}  Warning  "
                f"{entry.get('reason') or entry.get('type')}: {entry['message']}"
            )
    return [line.strip() for line in lines] or ["<none>"]
