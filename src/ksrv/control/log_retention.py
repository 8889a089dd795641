"""Removing the replica logs of deleted services once they are older than a retention period.

Logs live at `logs/{namespace}/{isvc}-{component}-{n:05d}-{replica}.log` (an InferenceGraph's
router at `{graph}-router-...`). One goes when no InferenceService (or graph) of that name
exists in its namespace, no revision of it still runs (a deleted
service drains for a while) and nothing wrote to it for `retention_s` (its mtime: a replica
appends while it runs). So `ksrv logs` keeps working for every existing service, old revisions
included, and for a deleted one until the period ends. Files that are not replica logs are left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ksrv.api.kinds import COMPONENTS
from ksrv.control.platforms.base import Platform, RevisionKey
from ksrv.control.store import Store

logger = logging.getLogger(__name__)

# A week: long enough to read why a service deleted on Friday failed, short enough that a
# machine creating and deleting services all day does not fill its disk.
DEFAULT_RETENTION_S: Final = 7 * 24 * 3600.0
SWEEP_INTERVAL_S: Final = 600.0
OWNERS: Final = ("InferenceService", "InferenceGraph")
LOG_NAME: Final = re.compile(
    rf"^(?P<isvc>.+)-(?:{'|'.join((*COMPONENTS, 'router'))})-\d+-\d+\.log$"
)


@dataclass(frozen=True, slots=True)
class LogFile:
    """One replica log: where it is and when it was last written (seconds since the epoch)."""

    namespace: str
    path: Path
    modified: float


def is_expired(
    log: LogFile,
    services: set[tuple[str, str]],
    running: set[RevisionKey],
    now: float,
    retention_s: float,
) -> bool:
    """Whether `log` belongs to a deleted service, none of whose revisions runs, and is older
    than the retention period."""
    match = LOG_NAME.match(log.path.name)
    if match is None or (log.namespace, match["isvc"]) in services:
        return False
    revision = log.path.name.removesuffix(".log").rsplit("-", 1)[0]
    if (log.namespace, revision) in running:
        return False
    return now - log.modified >= retention_s


class LogJanitor:
    """Sweeps the platform's log folder every `SWEEP_INTERVAL_S`; `now` is the wall clock
    (mtimes are wall-clock times)."""

    def __init__(
        self,
        logs_dir: Path,
        store: Store,
        platform: Platform,
        retention_s: float = DEFAULT_RETENTION_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.logs_dir = logs_dir
        self.store = store
        self.platform = platform
        self.retention_s = retention_s
        self.now = now

    def sweep(self) -> list[Path]:
        """Remove the expired logs (and namespace folders left empty); returns what went."""
        if self.retention_s <= 0:
            return []
        services = {
            (doc["metadata"].get("namespace") or "default", doc["metadata"]["name"])
            for kind in OWNERS
            for doc in self.store.list(kind)
        }
        running = set(self.platform.observe())
        now = self.now()
        removed: list[Path] = []
        for log in self._logs():
            if is_expired(log, services, running, now, self.retention_s):
                log.path.unlink(missing_ok=True)
                removed.append(log.path)
        for folder in {path.parent for path in removed}:
            if not any(namespace == folder.name for namespace, _ in running):
                # Not empty: other services' logs, or files that are not ours.
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if removed:
            logger.info("removed %d log(s) of deleted services", len(removed))
        return removed

    async def run(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        """Sweep now and then every `interval_s` until cancelled; a retention of 0 keeps every
        log for ever."""
        if self.retention_s <= 0:
            return
        while True:
            try:
                self.sweep()
            except OSError as exc:
                logger.warning("log retention sweep failed: %s", exc)
            await asyncio.sleep(interval_s)

    def _logs(self) -> list[LogFile]:
        found: list[LogFile] = []
        if not self.logs_dir.is_dir():
            return found
        for folder in self.logs_dir.iterdir():
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in folder.glob("*.log"):
                try:
                    modified = os.lstat(path).st_mtime
                except FileNotFoundError:
                    continue
                found.append(LogFile(folder.name, path, modified))
        return found
