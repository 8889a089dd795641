"""The platform seam: what the reconciler asks for (`RevisionSpec`) and sees (`RevisionState`).

A platform owns running replicas and nothing else; it knows no resources. It renders a
platform-neutral `plan.ComponentPlan` its own way (`render`), reports each replica's phase and
addresses (`host:port`), and says where a service is reached (`service_url`): the reconciler
never builds an address. Observed states are snapshots (frozen values), so a caller can diff
them against a plan without racing the platform.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ksrv.control.plan import ComponentPlan

Phase = Literal["Starting", "Ready", "Failed", "Stopping"]
RevisionKey = tuple[str, str]
"""(namespace, revision)."""

OnChange = Callable[[], None]


@dataclass(frozen=True, slots=True)
class RevisionSpec:
    """One immutable revision of a component, run as `replicas` copies of `command`.

    What `render` makes of a plan for processes (today's one platform; a Kubernetes platform
    will render objects instead): `command` is an argv whose "{http_port}" and "{grpc_port}"
    (and "{python}") are filled in per replica; `env` is added to the platform's own
    environment. `is_forkable` says that `command` is a ksrv model server (`python -m
    ksrv.cli.main serve ...`) that the platform may fork from a warm process instead of
    spawning: how a replica starts, not what it runs, so no part of the fingerprint.
    """

    namespace: str
    isvc: str
    component: str
    revision: str
    command: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    readiness_path: str = "/v2/health/ready"
    is_forkable: bool = False

    @property
    def key(self) -> RevisionKey:
        return (self.namespace, self.revision)

    @property
    def fingerprint(self) -> str:
        """What the replicas run, whatever the revision is named and however many run."""
        identity = [list(self.command), sorted(self.env.items()), self.readiness_path]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]

    def named(self, revision: str) -> RevisionSpec:
        return dataclasses.replace(self, revision=revision)

    def same_revision(self, other: RevisionSpec) -> bool:
        """True when only the replica count may differ (a revision never changes otherwise)."""
        return (
            self.key == other.key
            and self.isvc == other.isvc
            and self.component == other.component
            and tuple(self.command) == tuple(other.command)
            and dict(self.env) == dict(other.env)
            and self.readiness_path == other.readiness_path
        )


@dataclass(frozen=True, slots=True)
class ReplicaState:
    """One replica as last observed. `pid` is None while nothing runs (backing off)."""

    index: int
    pid: int | None
    http_port: int | None
    grpc_port: int | None
    phase: Phase
    restarts: int
    last_exit_code: int | None
    last_failure: str | None
    log_path: Path
    started_at: float | None
    """Wall-clock time (time.time()) the current process started."""
    host: str
    """Where the replica listens; with the ports, its addresses."""
    failures_in_a_row: int = 0
    """Failures since it was last Ready: how many tries a load that keeps failing has had."""

    @property
    def http_address(self) -> str | None:
        return f"{self.host}:{self.http_port}" if self.http_port is not None else None

    @property
    def grpc_address(self) -> str | None:
        return f"{self.host}:{self.grpc_port}" if self.grpc_port is not None else None


@dataclass(frozen=True, slots=True)
class RevisionState:
    """A revision and its replicas, ordered by index."""

    spec: RevisionSpec
    replicas: list[ReplicaState]


@dataclass(frozen=True, slots=True)
class Rendering:
    """A plan as this platform runs it (`spec.revision` not named yet), and what it cannot
    honour of the plan, one sentence each."""

    spec: RevisionSpec
    notes: tuple[str, ...] = ()


class Platform(Protocol):
    """Runs revisions. Implementations call their `on_change` callback on any phase change."""

    def render(self, namespace: str, isvc: str, plan: ComponentPlan) -> Rendering:
        """How this platform runs one component's plan.

        Raises:
            ResourceInvalid: the plan cannot run on this platform.
        """

    def service_url(self, namespace: str, isvc: str, component: str | None = None) -> str:
        """The service's (or one component's) external URL: KServe's `status.url`."""

    def address_url(self, namespace: str, isvc: str, component: str | None = None) -> str:
        """Where the service (or one component) is reached directly: `status.address.url`."""

    async def ensure(self, spec: RevisionSpec) -> None:
        """Start the revision, or resize it to `spec.replicas`."""

    async def remove(self, namespace: str, revision: str) -> None:
        """Drain and stop every replica of the revision."""

    def observe(self) -> dict[RevisionKey, RevisionState]:
        """A snapshot of every revision the platform runs."""

    async def start(self) -> None:
        """Adopt what a previous run of the platform left running."""

    async def shutdown(self, stop_replicas: bool) -> None:
        """Stop supervising; with `stop_replicas`, also drain and stop every replica."""
