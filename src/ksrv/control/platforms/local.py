"""LocalPlatform: revisions as supervised `ksrv serve` processes on 127.0.0.1.

Replicas run in their own sessions, so they outlive the control plane; `platform.json` in the
state directory records them (PID + process start time) and the next run adopts what is still
running instead of restarting it. Output goes to `logs/{namespace}/{revision}-{index}.log`.
Model-server replicas are forked from a warm `ksrv forkserver` when the platform has one
(`forkserver.py`), else spawned. Scaling down drains the highest indexes in the background
(observed as Stopping); `remove` waits until every replica of the revision has exited. Plans
become argv through `local_render`; services are reached through the gateway (`service_url`),
and so are the predictors of transformers and explainers.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ksrv.control import trained_models
from ksrv.control.plan import ComponentPlan, PredictorLink
from ksrv.control.platforms import local_render, statefile
from ksrv.control.platforms.base import Rendering, RevisionKey, RevisionSpec, RevisionState
from ksrv.control.platforms.forkserver import ForkServer
from ksrv.control.platforms.replica import LocalReplica, Supervision

logger = logging.getLogger(__name__)

STATE_FILE = "platform.json"


@dataclass(slots=True)
class _Revision:
    spec: RevisionSpec
    replicas: dict[int, LocalReplica] = field(default_factory=dict)
    stopping: set[LocalReplica] = field(default_factory=set)

    def state(self) -> RevisionState:
        every = [*self.replicas.values(), *self.stopping]
        return RevisionState(
            self.spec, [replica.snapshot() for replica in sorted(every, key=lambda r: r.index)]
        )


class LocalPlatform:
    """Runs each replica as a child process and keeps it running."""

    def __init__(
        self,
        state_dir: Path,
        on_change: Callable[[], None] | None = None,
        python: str = sys.executable,
        *,
        supervision: Supervision | None = None,
        gateway: str = "127.0.0.1:8080",
        domain: str = "example.com",
        fork_server: ForkServer | None = None,
    ) -> None:
        """`gateway` is the gateway's `host:port`, `domain` the one its route table serves;
        with a `fork_server`, model-server replicas are forked from it (it starts and stops
        with the platform)."""
        self.state_dir = Path(state_dir)
        self.gateway = gateway
        self.domain = domain
        self._on_change = on_change
        self._python = python
        self._supervision = supervision or Supervision()
        self._fork_server = fork_server
        self._revisions: dict[RevisionKey, _Revision] = {}
        self._removing: dict[RevisionKey, _Revision] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._is_supervising = True

    @property
    def models_config_root(self) -> Path:
        """Where the multi-model services' `models.json` files live (`trained_models`)."""
        return self.state_dir / "modelconfig"

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def render(self, namespace: str, isvc: str, plan: ComponentPlan) -> Rendering:
        """The plan as `ksrv serve` (or a custom command) processes; see `local_render`."""
        host = self.predictor_host(plan.predictor) if plan.predictor is not None else None
        config = trained_models.models_config_path(self.models_config_root, namespace, isvc)
        local = local_render.render(plan, isvc, host, self._python, str(config))
        spec = RevisionSpec(
            namespace=namespace,
            isvc=isvc,
            component=plan.component,
            revision="",
            command=local.command,
            env=local.env,
            replicas=local.replicas,
            readiness_path=local.readiness_path,
            is_forkable=local.is_forkable,
        )
        return Rendering(spec, local.notes)

    def predictor_host(self, link: PredictorLink) -> str:
        """Where a transformer or explainer reaches its predictor: through the gateway."""
        return f"{self.gateway}/serving/{link.namespace}/{link.isvc}-predictor"

    def service_url(self, namespace: str, isvc: str, component: str | None = None) -> str:
        """KServe's host form, `http://{isvc}[-{component}]-{namespace}.{domain}`.

        The gateway routes it by the `Host` header, so KServe's getting-started recipe
        (`curl -H "Host: ${SERVICE_HOSTNAME}" http://127.0.0.1:8080/v1/...`) works unchanged."""
        suffix = f"-{component}" if component else ""
        return f"http://{isvc}{suffix}-{namespace}.{self.domain}"

    def address_url(self, namespace: str, isvc: str, component: str | None = None) -> str:
        """The gateway's path form, reachable without a Host header:
        `http://{gateway}/serving/{namespace}/{isvc}[-{component}]`."""
        suffix = f"-{component}" if component else ""
        return f"http://{self.gateway}/serving/{namespace}/{isvc}{suffix}"

    async def ensure(self, spec: RevisionSpec) -> None:
        """Start the revision or resize it; surplus replicas (not ready first) drain meanwhile.

        Raises:
            ValueError: a negative replica count, or a known revision with another command,
                env or readiness path (a revision is immutable).
        """
        if spec.replicas < 0:
            raise ValueError(f"{spec.revision}: replicas must be >= 0, not {spec.replicas}")
        revision = self._revisions.get(spec.key)
        if revision is None:
            revision = self._revisions[spec.key] = _Revision(spec)
        elif not revision.spec.same_revision(spec):
            raise ValueError(
                f"revision {spec.namespace}/{spec.revision} already runs another command or "
                "env; a changed spec needs a new revision name"
            )
        is_changed = revision.spec != spec
        revision.spec = spec
        # Scale down by draining the least useful replicas first (not ready before ready,
        # then the highest index), as a ReplicaSet does; scale up into the lowest free index.
        surplus = len(revision.replicas) - spec.replicas
        if surplus > 0:
            victims = sorted(
                revision.replicas,
                key=lambda i: (revision.replicas[i].phase == "Ready", -i),
            )[:surplus]
            for index in victims:
                self._drain_in_background(revision, revision.replicas.pop(index))
            is_changed = True
        index = 0
        while len(revision.replicas) < spec.replicas:
            if index not in revision.replicas:
                replica = self._replica(spec, index)
                revision.replicas[index] = replica
                replica.run()
                is_changed = True
            index += 1
        if is_changed:  # the reconciler ensures every pass: a no-op must not nudge it again
            self._changed()

    async def remove(self, namespace: str, revision: str) -> None:
        """Drain every replica of the revision at once; returns when all have exited."""
        key = (namespace, revision)
        running = self._revisions.pop(key, None)
        if running is None:
            return
        self._removing[key] = running
        running.stopping.update(running.replicas.values())
        running.replicas.clear()
        self._changed()
        try:
            await asyncio.gather(*(replica.stop() for replica in running.stopping))
        finally:
            self._removing.pop(key, None)
            self._changed()

    def observe(self) -> dict[RevisionKey, RevisionState]:
        """Every revision, including those still draining after `remove`."""
        every = {**self._removing, **self._revisions}
        return {key: revision.state() for key, revision in every.items()}

    async def start(self) -> None:
        """Adopt the replicas `platform.json` names that still run; restart the others."""
        if self._fork_server is not None:
            await self._fork_server.start()
        for record in statefile.read(self.state_path):
            spec = record.spec
            revision = self._revisions[spec.key] = _Revision(spec)
            for replica_record in record.replicas:
                replica = self._replica(spec, replica_record.index)
                is_adopted = await replica.adopt(replica_record)
                logger.info(
                    "replica %s-%s: %s",
                    spec.revision,
                    replica_record.index,
                    f"adopted pid {replica.pid}" if is_adopted else "not running, restarting",
                )
                if replica_record.index < spec.replicas:
                    revision.replicas[replica_record.index] = replica
                    replica.run()
                elif is_adopted:
                    self._drain_in_background(revision, replica)
            for index in range(spec.replicas):
                if index not in revision.replicas:
                    revision.replicas[index] = replica = self._replica(spec, index)
                    replica.run()
        self._changed()

    async def shutdown(self, stop_replicas: bool) -> None:
        """Stop supervising. With `stop_replicas` drain and stop every replica (`ksrv down`);
        without, leave them running and recorded for the next run to adopt."""
        if stop_replicas:
            keys = [*self._revisions]
            # Removals already under way are awaited too (stop() is idempotent): a drain cut
            # short by the event loop closing would leave a process that ignores SIGTERM.
            removing = [r for running in self._removing.values() for r in running.stopping]
            await asyncio.gather(
                *(self.remove(*key) for key in keys),
                *self._drains,
                *(replica.stop() for replica in removing),
            )
        else:
            for revision in self._revisions.values():
                for replica in revision.replicas.values():
                    await replica.detach()
            # Draining replicas got SIGTERM already and exit on their own.
            for task in self._drains:
                task.cancel()
            await asyncio.gather(*self._drains, return_exceptions=True)
        self._write_state()
        self._is_supervising = False
        if self._fork_server is not None:
            await self._fork_server.close()

    def _replica(self, spec: RevisionSpec, index: int) -> LocalReplica:
        log_path = self.state_dir / "logs" / spec.namespace / f"{spec.revision}-{index}.log"
        return LocalReplica(
            spec, index, log_path, self._python, self._supervision, self._changed, self._fork_server
        )

    def _drain_in_background(self, revision: _Revision, replica: LocalReplica) -> None:
        revision.stopping.add(replica)

        async def drain() -> None:
            try:
                await replica.stop()
            finally:
                revision.stopping.discard(replica)
                self._changed()

        task = asyncio.create_task(drain(), name=f"drain {replica.spec.revision}-{replica.index}")
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    def _changed(self) -> None:
        if not self._is_supervising:
            return
        self._write_state()
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                logger.exception("platform on_change callback failed")

    def _write_state(self) -> None:
        records = [
            statefile.RevisionRecord(
                revision.spec,
                [revision.replicas[index].record() for index in sorted(revision.replicas)],
            )
            for revision in self._revisions.values()
        ]
        statefile.write(self.state_path, records)
