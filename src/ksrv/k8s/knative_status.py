"""What KServe records about a component from its Knative Service's status (PropagateStatus).

The part the canary rollout depends on: `latestRolledoutRevision` becomes the latest ready
revision once it serves 100% of the traffic (the one it replaces moves to
`previousRolledoutRevision`), and a rollback of that revision to a split restores the previous
one. `knative.traffic` reads `latestRolledoutRevision` back on the next render. The URL and
address are recorded only while the Knative Service is Ready. Conditions are left to the
operator: it copies the Knative Service's `Ready` into `<Component>Ready`.
"""

from __future__ import annotations

import copy
from typing import Any


def component_status(
    previous: dict[str, Any] | None, ksvc_status: dict[str, Any]
) -> dict[str, Any]:
    """`status.components.<c>` after observing the component's Knative Service `ksvc_status`."""
    status = copy.deepcopy(previous or {})
    latest_ready = ksvc_status.get("latestReadyRevisionName")
    latest_created = ksvc_status.get("latestCreatedRevisionName")
    if latest_created:
        status["latestCreatedRevision"] = latest_created
    traffic = list(ksvc_status.get("traffic") or ())
    by_revision: dict[str, int] = {}
    for target in traffic:
        if target.get("percent") is not None:
            name = target.get("revisionName", "")
            by_revision[name] = by_revision.get(name, 0) + int(target["percent"])
    for target in traffic:
        if target.get("revisionName") != latest_ready or not target.get("latestRevision"):
            continue
        percent = target.get("percent")
        if status.get("latestRolledoutRevision") != latest_ready:
            if percent == 100:
                # The latest ready revision is fully rolled out.
                status["previousRolledoutRevision"] = status.get("latestRolledoutRevision", "")
                status["latestRolledoutRevision"] = latest_ready
        elif (
            latest_ready == latest_created
            and percent is not None
            and percent < 100
            and by_revision.get(str(latest_ready)) == 100
            and status.get("previousRolledoutRevision")
        ):
            # Rolled out, then split again over the same revision: KServe rolls back the record.
            status["latestRolledoutRevision"] = status["previousRolledoutRevision"]
    if latest_ready:
        status["latestReadyRevision"] = latest_ready
    if _is_ready(ksvc_status):
        for key in ("address", "url"):
            if ksvc_status.get(key):
                status[key] = copy.deepcopy(ksvc_status[key])
    status["traffic"] = copy.deepcopy(traffic)
    return {k: v for k, v in status.items() if v not in ("", None)}


def _is_ready(ksvc_status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and str(c.get("status")) == "True"
        for c in ksvc_status.get("conditions") or ()
    )
