"""`ksrv get` tables: the columns kubectl shows for KServe's kinds, and kubectl's AGE.

The columns follow KServe's CRD printer columns (`kubectl get isvc` shows NAME URL READY PREV
LATEST PREVROLLEDOUTREVISION LATESTREADYREVISION AGE), so the output reads the same locally and
on a cluster; an InferenceService also shows ADDRESS (`status.address.url`, the gateway's path
form, reachable without a Host header) before AGE. A Revision shows what Knative's `kn revision
list` and its CRD's printer columns show together. Pure: documents and `now` in, text out.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]
Columns = list[tuple[str, Callable[[Document], str]]]


def age(created: str | None, now: float) -> str:
    """kubectl's human duration since an RFC 3339 timestamp (`5s`, `3m20s`, `2h`, `4d`)."""
    if not created:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_duration(max(0, int(now - then)))


def human_duration(seconds: int) -> str:
    """kubectl's rounding: more precision while young, coarser with age."""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def render(rows: list[list[str]]) -> str:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def table(kind: str, documents: list[Document], now: float, wide: bool, namespaces: bool) -> str:
    """The `ksrv get` table for documents of one kind."""
    columns = _columns(kind, wide, now)
    if namespaces:
        columns = [("NAMESPACE", lambda d: str(d["metadata"].get("namespace", ""))), *columns]
    rows = [[header for header, _ in columns]]
    rows += [[cell(document) for _, cell in columns] for document in documents]
    return render(rows)


def condition(document: Document, kind: str) -> Document | None:
    for entry in document.get("status", {}).get("conditions") or []:
        if isinstance(entry, dict) and entry.get("type") == kind:
            return entry
    return None


def is_ready(document: Document) -> bool:
    ready = condition(document, "Ready")
    return ready is not None and ready.get("status") == "True"


def _columns(kind: str, wide: bool, now: float) -> Columns:
    name: Columns = [("NAME", lambda d: str(d["metadata"].get("name", "")))]
    created: Columns = [("AGE", lambda d: age(d["metadata"].get("creationTimestamp"), now))]
    if kind == "InferenceService":
        return [
            *name,
            ("URL", _url),
            ("READY", _ready),
            ("PREV", lambda d: _traffic(d, "prev", "percent")),
            ("LATEST", _latest_percent),
            ("PREVROLLEDOUTREVISION", lambda d: _traffic(d, "prev", "revisionName")),
            ("LATESTREADYREVISION", lambda d: _text(_predictor(d).get("latestReadyRevision"))),
            ("ADDRESS", _address),
            *created,
        ]
    if kind in ("ServingRuntime", "ClusterServingRuntime"):
        return [
            *name,
            ("DISABLED", lambda d: _text(d.get("spec", {}).get("disabled"))),
            ("MODELTYPE", _model_types),
            ("CONTAINERS", _containers),
            *created,
        ]
    if kind == "Revision":
        return [*name, *revision_columns(wide), *created]
    if kind == "ClusterStorageContainer":  # its CRD has no printer columns: kubectl's default
        return [*name, *created]
    if kind in ("LocalModelCache", "LocalModelNamespaceCache"):
        return [*name, *_model_cache_columns(wide), *created]
    if kind in ("LLMInferenceService", "LLMInferenceServiceConfig"):  # the CRDs' printer columns
        url: Columns = [("URL", _url)] if kind == "LLMInferenceService" else []
        reason: Columns = [("REASON", lambda d: _text((condition(d, "Ready") or {}).get("reason")))]
        urls: Columns = [("URLS", _urls)] if wide and url else []
        return [*name, *url, ("READY", _ready), *reason, *created, *urls]
    if kind == "TrainedModel":
        # wide: the service, and the replicas that have the model loaded now (ksrv's status)
        extra: Columns = [
            ("INFERENCESERVICE", lambda d: _text(d["spec"].get("inferenceService"))),
            ("LOADEDON", lambda d: ",".join((d.get("status") or {}).get("loadedOn") or [])),
        ]
        return [*name, *(extra if wide else []), ("URL", _url), ("READY", _ready), *created]
    return [*name, ("URL", _url), ("READY", _ready), *created]


def revision_columns(wide: bool) -> Columns:
    """A revision's service, component, traffic, replicas and readiness (wide: generation,
    the condition count as `kn` shows it, and the autoscaler's mode)."""
    columns: Columns = [
        ("INFERENCESERVICE", lambda d: _label(d, "serving.kserve.io/inferenceservice")),
        ("COMPONENT", lambda d: _label(d, "component")),
        ("TRAFFIC", lambda d: revision_traffic(d)[0]),
        ("TAGS", lambda d: revision_traffic(d)[1]),
        ("ACTUAL", lambda d: _text(d.get("status", {}).get("actualReplicas"))),
        ("DESIRED", lambda d: _text(d.get("status", {}).get("desiredReplicas"))),
        ("READY", _ready),
        ("REASON", lambda d: _text((condition(d, "Ready") or {}).get("reason"))),
    ]
    if wide:
        columns += [
            ("GENERATION", lambda d: _label(d, "serving.knative.dev/configurationGeneration")),
            ("CONDITIONS", _conditions_ok),
            ("AUTOSCALER", lambda d: _text(_autoscaler(d).get("mode")) or "-"),
        ]
    return columns


def revision_traffic(document: Document) -> tuple[str, str]:
    """A revision's traffic percent (`kn`'s `20%`) and tag."""
    traffic = document.get("status", {}).get("traffic")
    if not isinstance(traffic, dict):
        return "", ""
    return f"{traffic.get('percent', 0)}%", _text(traffic.get("tag"))


def _label(document: Document, key: str) -> str:
    return _text((document["metadata"].get("labels") or {}).get(key))


def _conditions_ok(document: Document) -> str:
    """`kn`'s CONDITIONS: how many are True, of how many."""
    entries = [c for c in document.get("status", {}).get("conditions") or [] if isinstance(c, dict)]
    ok = sum(entry.get("status") == "True" for entry in entries)
    return f"{ok} OK / {len(entries)}"


def _autoscaler(document: Document) -> Document:
    found = document.get("status", {}).get("autoscaler")
    return found if isinstance(found, dict) else {}


def _model_cache_columns(wide: bool) -> Columns:
    """A model cache's URI, size, this machine's download state (each node's, on a cluster)
    and copies available of total; `-o wide` adds the node groups."""

    def spec(field: str) -> Callable[[Document], str]:
        return lambda d: _text((d.get("spec") or {}).get(field))

    def state(document: Document) -> str:
        nodes = document.get("status", {}).get("nodeStatus") or {}
        return ",".join(str(value) for value in nodes.values()) if isinstance(nodes, dict) else ""

    def copies(document: Document) -> str:
        found = document.get("status", {}).get("copies")
        return (
            f"{found.get('available', 0)}/{found.get('total', 0)}"
            if isinstance(found, dict)
            else ""
        )

    groups: Columns = [
        ("NODEGROUPS", lambda d: ",".join((d.get("spec") or {}).get("nodeGroups") or []))
    ]
    return [("URI", spec("sourceModelUri")), ("SIZE", spec("modelSize")), ("STATE", state),
            ("COPIES", copies), *(groups if wide else [])]  # fmt: skip


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _url(document: Document) -> str:
    return _text(document.get("status", {}).get("url"))


def _address(document: Document) -> str:
    address = document.get("status", {}).get("address")
    return _text(address.get("url")) if isinstance(address, dict) else ""


def _urls(document: Document) -> str:
    addresses = document.get("status", {}).get("addresses") or []
    return ",".join(_text(a.get("url")) for a in addresses if isinstance(a, dict))


def _ready(document: Document) -> str:
    ready = condition(document, "Ready")
    return "" if ready is None else _text(ready.get("status"))


def _predictor(document: Document) -> Document:
    components = document.get("status", {}).get("components") or {}
    predictor = components.get("predictor") if isinstance(components, dict) else None
    return predictor if isinstance(predictor, dict) else {}


def _traffic(document: Document, tag: str, field: str) -> str:
    for target in _predictor(document).get("traffic") or []:
        if isinstance(target, dict) and target.get("tag") == tag:
            return _text(target.get(field))
    return ""


def _latest_percent(document: Document) -> str:
    for target in _predictor(document).get("traffic") or []:
        if isinstance(target, dict) and target.get("latestRevision") is True:
            return _text(target.get("percent"))
    return ""


def _model_types(document: Document) -> str:
    formats = document.get("spec", {}).get("supportedModelFormats") or []
    return ",".join(str(entry.get("name")) for entry in formats if isinstance(entry, dict))


def _containers(document: Document) -> str:
    containers = document.get("spec", {}).get("containers") or []
    return ",".join(str(entry.get("name")) for entry in containers if isinstance(entry, dict))
