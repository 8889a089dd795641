"""`ksrv apply --wait`: poll each InferenceService (and InferenceGraph) until it is Ready for
its current spec.

It stops at once, exit 1, on a `Ready=False` reason that waiting will not change
(`api.conditions`: InvalidSpec, NoSupportingRuntime, a load that failed on every try), and at
the timeout prints every condition. A status that still describes an older generation counts
as neither Ready nor failed: the control plane has not seen this spec yet.
"""

from __future__ import annotations

import time
from typing import Any

import click

from ksrv.api import conditions
from ksrv.cli import tables
from ksrv.cli.api_client import ControlPlaneClient

Document = dict[str, Any]

POLL_S = 0.5


def wait_ready(
    client: ControlPlaneClient, targets: list[tuple[str, str]], timeout_s: float
) -> None:
    """Poll each `(label, path)` until Ready; `ClickException` with why not."""
    deadline = time.monotonic() + timeout_s
    for label, path in targets:
        while True:
            document = client.get_json(path)
            if _is_ready_now(document):
                click.echo(f"{label} condition met")
                break
            failure = _terminal_failure(document)
            if failure is not None:
                raise click.ClickException(f"{label} will not become Ready: {failure}")
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"timed out waiting for {label} to be Ready: {_why_not(document)}"
                )
            time.sleep(POLL_S)


def _is_ready_now(document: Document) -> bool:
    """Ready, and for this spec: a Ready left over from the previous generation does not count."""
    return tables.is_ready(document) and _stale_by(document) is None


def _terminal_failure(document: Document) -> str | None:
    """`reason: message` of a Ready=False that waiting will not change, for this spec; else
    None."""
    if _stale_by(document) is not None:
        return None
    for entry in document.get("status", {}).get("conditions") or []:
        if not isinstance(entry, dict) or entry.get("type") != "Ready":
            continue
        reason = entry.get("reason")
        if entry.get("status") == "False" and conditions.is_terminal(reason):
            return f"{reason}: {entry.get('message', '')}".rstrip(": ")
    return None


def _stale_by(document: Document) -> tuple[int, int] | None:
    """(observed, current) generations when the status describes an older spec."""
    observed = document.get("status", {}).get("observedGeneration")
    current = document.get("metadata", {}).get("generation")
    if isinstance(observed, int) and isinstance(current, int) and observed < current:
        return observed, current
    return None


def _why_not(document: Document) -> str:
    stale = _stale_by(document)
    if stale is not None:
        return (
            f"the status still describes generation {stale[0]}, the spec is generation {stale[1]}"
        )
    found = [c for c in document.get("status", {}).get("conditions") or [] if isinstance(c, dict)]
    if not found:
        return "no status reported yet"
    parts = []
    for entry in found:
        part = f"{entry.get('type')}={entry.get('status')}"
        detail = ": ".join(str(entry[k]) for k in ("reason", "message") if entry.get(k))
        parts.append(f"{part} ({detail})" if detail else part)
    return "; ".join(parts)
