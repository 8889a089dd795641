"""LocalModelCache and LocalModelNamespaceCache: download ahead of time, report, clean up.

KServe runs a download job per node of the cache's node groups; locally there is one node,
this machine (named by its host name), and every node group is it. Each pass of
`ModelCacheReconciler`:
- starts a `ksrv storage download URI DEST --no-cache` process for each cached URI without a
  complete copy (`model_copies`), at most `MAX_DOWNLOADS` at once, in its own session as the
  platform runs replicas: control never imports the storage layer, and a pass never waits;
- polls the running ones; a failed one is retried after a back-off that doubles (`Backoff`),
  its status saying why (the download's own error line) and when the next try is;
- stops the downloads and removes the copies of URIs no cache names any more (a copy stays
  while another cache, cluster or namespaced, names the same URI);
- writes each cache's status the KServe way (`copies`, `nodeStatus`, `inferenceServices`),
  plus a `Ready` condition saying in words what the node state means.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ksrv.api import local_model_cache as lmc
from ksrv.control.model_copies import ModelCopies, ServiceFacts, service_facts, stored_caches, users
from ksrv.control.platforms import processes
from ksrv.control.service_status import condition, keep_transition_times, mapping
from ksrv.control.store import Store

logger = logging.getLogger(__name__)

MAX_DOWNLOADS: Final = 2
ERROR_PREFIX: Final = "ksrv storage download: "

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before the next try after `failures` failed ones: doubling, capped."""

    first_s: float = 5.0
    max_s: float = 300.0

    def delay_s(self, failures: int) -> float:
        return float(min(self.max_s, self.first_s * 2 ** max(0, failures - 1)))


@dataclass(frozen=True, slots=True)
class NodeView:
    """This machine's state for one cached URI, and what to say about it."""

    state: str
    message: str


@dataclass(slots=True)
class _Download:
    uri: str
    pid: int | None = None
    started: int | None = None
    log_offset: int = 0
    attempts: int = 0
    failures: int = 0
    error: str | None = None
    retry_at: float = 0.0  # monotonic
    retry_stamp: str = ""  # the same moment, for people


class ModelCacheReconciler:
    """Keeps one complete copy of every cached URI on this machine and reports it."""

    kinds: Final = (*lmc.KINDS, "InferenceService")
    follows_platform: Final = False

    def __init__(
        self,
        store: Store,
        copies: ModelCopies,
        *,
        python: str = sys.executable,
        node: str | None = None,
        backoff: Backoff = Backoff(),
        env: Mapping[str, str] | None = None,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.copies = copies
        self.python = python
        self.node = node or socket.gethostname()
        self.backoff = backoff
        self.env = env
        self.now = now
        self.monotonic = monotonic
        self._downloads: dict[str, _Download] = {}
        self._killed: list[tuple[int, int | None]] = []  # (pid, start time) not reaped yet
        # uid -> (resourceVersion, what the matching rule reads of that InferenceService)
        self._services: dict[str, tuple[str, ServiceFacts | None]] = {}

    async def reconcile_all(self) -> None:
        caches = stored_caches(self.store)
        uris = {cache.ref.key: cache.ref.source_model_uri for cache in caches}
        sizes: dict[str, float] = {}
        for cache in caches:  # caches of one URI may guess its size differently: the largest
            sizes[cache.ref.key] = max(sizes.get(cache.ref.key, 0.0), cache.ref.model_size_bytes)
        self._stop_unwanted(set(uris))
        self._sweep(set(uris))
        views = {key: self._advance(key, uri, sizes[key]) for key, uri in sorted(uris.items())}
        users = self._users([cache.ref for cache in caches])
        for cache in caches:
            ref = cache.ref
            old = mapping(cache.document.get("status"))
            status = cache_status(
                cache.document["metadata"].get("generation"),
                self.node,
                views[ref.key],
                users.get((ref.kind, ref.namespace, ref.name), []),
                old,
                self.now(),
                cache.notes,
            )
            if status != old:
                self.store.update_status(ref.kind, ref.namespace, ref.name, status)

    def shutdown(self) -> None:
        """Stop every running download (the next control plane starts them again)."""
        for key in list(self._downloads):
            self._stop(key)

    def _advance(self, key: str, uri: str, size_bytes: float) -> NodeView:
        """Poll, finish, retry or start the download of `uri`; its node state now."""
        download = self._downloads.setdefault(key, _Download(uri))
        if download.pid is not None:
            exited = processes.poll(download.pid, download.started)
            if exited is None:
                return NodeView(lmc.NODE_DOWNLOADING, f"downloading {uri} (attempt "
                                f"{download.attempts})")  # fmt: skip
            self._finish(key, download, exited.code)
        if self.copies.is_complete(key):
            return NodeView(lmc.NODE_DOWNLOADED, f"{uri} is cached in {self.copies.path(key)}")
        if download.error is not None and download.retry_at > self.monotonic():
            return _error_view(download)
        running = sum(d.pid is not None for d in self._downloads.values())
        if running >= MAX_DOWNLOADS:
            return NodeView(lmc.NODE_PENDING, f"waiting for {running} running downloads")
        # KServe checks modelSize against the node group's storage limit; here, the free disk.
        free_bytes = self.copies.free_bytes()
        if size_bytes > free_bytes:
            download.attempts += 1
            self._failed(download, f"modelSize {size_bytes / 2**30:.1f} GiB is more than the "
                         f"{free_bytes / 2**30:.1f} GiB free in {self.copies.root}")  # fmt: skip
            return _error_view(download)
        return self._start(key, download)

    def _start(self, key: str, download: _Download) -> NodeView:
        dest = self.copies.path(key)
        log = self._log_path(key)
        argv = [self.python, "-m", "ksrv.cli.main", "storage", "download", download.uri,
                str(dest), "--no-cache", "--no-progress"]  # fmt: skip
        download.attempts += 1
        download.log_offset = processes.log_size(log)
        try:
            download.pid = processes.spawn(argv, dict(self.env or os.environ), log)
        except OSError as exc:
            self._failed(download, f"cannot start the download: {exc}")
            return _error_view(download)
        download.started = processes.start_time(download.pid)
        logger.info("local model cache downloading uri=%s dest=%s", download.uri, dest)
        return NodeView(lmc.NODE_DOWNLOADING, f"downloading {download.uri} (attempt "
                        f"{download.attempts})")  # fmt: skip

    def _finish(self, key: str, download: _Download, code: int | None) -> None:
        pid, download.pid = download.pid, None
        if pid is not None:
            processes.kill_group(pid)
        if code == 0 and self.copies.is_complete(key):
            download.failures, download.error = 0, None
            return
        tail = processes.log_tail(self._log_path(key), download.log_offset)
        self._failed(download, failure_message(tail, code))

    def _failed(self, download: _Download, error: str) -> None:
        download.failures += 1
        download.error = error
        delay_s = self.backoff.delay_s(download.failures)
        download.retry_at = self.monotonic() + delay_s
        download.retry_stamp = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now() + delay_s)
        )
        logger.warning("local model cache download failed uri=%s: %s", download.uri, error)

    def _log_path(self, key: str) -> Path:
        return self.copies.root / f"{key}.log"

    def _stop(self, key: str) -> None:
        download = self._downloads.pop(key)
        if download.pid is not None:
            processes.send(download.pid, signal.SIGKILL, download.started)
            processes.kill_group(download.pid)
            self._killed.append((download.pid, download.started))

    def _stop_unwanted(self, wanted: set[str]) -> None:
        for key in set(self._downloads) - wanted:
            self._stop(key)
        # Reap what was killed (a pass later at the latest), so no zombie stays behind.
        self._killed = [(pid, t) for pid, t in self._killed if processes.poll(pid, t) is None]

    def _sweep(self, wanted: set[str]) -> None:
        """Remove copies, logs and partial downloads of URIs no cache names, and partial
        downloads that no running download owns (one killed with the control plane)."""
        if not self.copies.root.is_dir():
            return
        running = {key for key, d in self._downloads.items() if d.pid is not None}
        for entry in self.copies.root.iterdir():
            key = entry.name.lstrip(".")[:16]
            is_kept = entry.name in (key, f"{key}.log") and key in wanted
            if is_kept or key in running:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            logger.info("local model cache removed %s", entry)

    def _users(self, caches: list[lmc.CacheRef]) -> dict[tuple[str, str, str], list[Document]]:
        """(kind, namespace, name) of each cache -> the InferenceServices it serves."""
        facts: list[ServiceFacts] = []
        seen: set[str] = set()
        for document in self.store.list("InferenceService"):
            metadata = document["metadata"]
            uid, version = metadata.get("uid", ""), metadata.get("resourceVersion", "")
            seen.add(uid)
            cached = self._services.get(uid)
            if cached is None or cached[0] != version:  # parsed once per resourceVersion
                cached = self._services[uid] = (version, service_facts(document))
            if cached[1] is not None:
                facts.append(cached[1])
        for uid in set(self._services) - seen:
            del self._services[uid]
        return users(caches, facts)


def _error_view(download: _Download) -> NodeView:
    # A fixed time, not a countdown: the status changes only when something happens.
    return NodeView(lmc.NODE_ERROR, f"attempt {download.attempts} failed: {download.error}; "
                    f"next try at {download.retry_stamp}")  # fmt: skip


def failure_message(log_tail: str, code: int | None) -> str:
    """Why a download failed, from what it wrote: its own error line when there is one."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line.removeprefix(ERROR_PREFIX)
    how = "was killed" if code is not None and code < 0 else f"exited with code {code}"
    return f"the download {how}" + (f": {lines[-1]}" if lines else "")


def cache_status(
    generation: Any,
    node: str,
    view: NodeView,
    services: list[Document],
    old_status: Document,
    now: float,
    notes: tuple[str, ...] = (),
) -> Document:
    """KServe's LocalModelCache status for one node, plus a Ready condition in words (and,
    as an InferenceService's, a LocalLimitations condition for what is not honoured)."""
    is_downloaded = view.state == lmc.NODE_DOWNLOADED
    is_failed = view.state == lmc.NODE_ERROR
    reasons = {
        lmc.NODE_DOWNLOADED: "Downloaded",
        lmc.NODE_DOWNLOADING: "Downloading",
        lmc.NODE_PENDING: "DownloadPending",
        lmc.NODE_ERROR: "DownloadFailed",
    }
    conditions = [condition("Ready", is_downloaded, reasons[view.state], view.message)]
    if notes:
        limits = condition("LocalLimitations", True, "NotHonouredLocally", "; ".join(notes))
        conditions.append({**limits, "severity": "Info"})
    keep_transition_times(conditions, old_status.get("conditions"), now)
    return {
        "observedGeneration": generation,
        "copies": {"available": int(is_downloaded), "total": 1, "failed": int(is_failed)},
        "nodeStatus": {node: view.state},
        "inferenceServices": sorted(services, key=lambda s: (s["namespace"], s["name"])),
        "conditions": conditions,
    }
