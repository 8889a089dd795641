"""Which revisions of a component get traffic: KServe's rollout rules as one pure function.

The last rolled-out revision keeps 100% until the latest revision has a ready replica, whatever
its own replicas do meanwhile; then the latest takes over, or, with `canaryTrafficPercent` P <
100, gets P% beside the previous one until the user promotes (drop P or set it to 100) or rolls
back (P = 0). Status pointers are inputs, not facts: one that names no known revision (status
lost, or scribbled over by a client) is ignored, and the newest other revision with a ready
replica counts as rolled out instead (`previousRolledoutRevision` may also name an older
revision of the same component that was collected since). Tags follow KServe's ksvc
reconciler: the rolled-out revision beside the latest is tagged `prev`; the latest is tagged
`latest` only with `serving.kserve.io/enable-tag-routing: "true"`. A tag gives a revision its
own URL.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Traffic:
    """One revision's share; `tag` ("latest" / "prev") gives it its own URL."""

    revision: str
    percent: int
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Rollout:
    traffic: tuple[Traffic, ...]
    rolled_out: str | None
    """`latestRolledoutRevision` to report."""
    previous_rolled_out: str | None
    """`previousRolledoutRevision` to report."""

    @property
    def routed(self) -> set[str]:
        return {share.revision for share in self.traffic}


def rollout(
    revisions: Sequence[str],
    latest: str | None,
    ready: Set[str],
    status_rolled_out: object,
    status_previous: object,
    canary_percent: int | None,
    enable_tag_routing: bool = False,
) -> Rollout:
    """The traffic split and rolled-out pointers for one component.

    Args:
        revisions: the component's known revisions, oldest first (the latest among them).
        latest: the revision the current spec runs; None while the spec cannot run (an
            invalid spec keeps whatever was rolled out serving).
        ready: the revisions that have at least one ready replica.
        status_rolled_out, status_previous: `latestRolledoutRevision` and
            `previousRolledoutRevision` as the stored status has them (anything at all).
        canary_percent: the component's `canaryTrafficPercent` (None in Standard mode,
            where KServe ignores it).
        enable_tag_routing: `serving.kserve.io/enable-tag-routing` is "true": the latest
            revision is tagged `latest` whatever its share.
    """
    latest_tag = "latest" if enable_tag_routing else None
    known = set(revisions)
    rolled_out = _known(status_rolled_out, known)
    if rolled_out is None:
        others = [name for name in revisions if name != latest and name in ready]
        rolled_out = others[-1] if others else None
    previous = _known(status_previous, known) or _older_sibling(status_previous, rolled_out)
    traffic: tuple[Traffic, ...]
    if latest is None:
        traffic = (Traffic(rolled_out, 100),) if rolled_out is not None else ()
    elif rolled_out is None or rolled_out == latest:
        traffic = (Traffic(latest, 100, latest_tag),)
        if latest in ready and rolled_out is None:
            rolled_out = latest  # the first revision is rolled out once it is ready
    elif canary_percent is not None and canary_percent < 100:
        # Only the user promotes a canary: the split holds whatever replicas do (a backend
        # without ready replicas gets no traffic until it has one again).
        traffic = (
            Traffic(latest, canary_percent, latest_tag),
            Traffic(rolled_out, 100 - canary_percent, "prev"),
        )
    elif latest in ready:
        previous, rolled_out = rolled_out, latest
        traffic = (Traffic(latest, 100, latest_tag),)
    else:
        # The old revision serves until the new is ready; the new one is listed at 0% so the
        # status (and `kubectl get isvc`'s PREV/LATEST) shows the rollout under way.
        traffic = (Traffic(latest, 0, latest_tag), Traffic(rolled_out, 100, "prev"))
    return Rollout(traffic, rolled_out, previous)


def _older_sibling(value: object, rolled_out: str | None) -> str | None:
    """`value` if it names an older revision of the rolled-out one's component: the previous
    revision was collected after the promotion, and status still names it, as Knative's
    revisions outlive their traffic."""
    if not isinstance(value, str) or rolled_out is None:
        return None
    prefix, _, number = rolled_out.rpartition("-")
    other_prefix, _, other_number = value.rpartition("-")
    is_sibling = other_prefix == prefix and other_number.isdigit() and number.isdigit()
    return value if is_sibling and int(other_number) < int(number) else None


def _known(value: object, known: Set[str]) -> str | None:
    """`value` if it names one of the component's revisions, else None."""
    return value if isinstance(value, str) and value in known else None
