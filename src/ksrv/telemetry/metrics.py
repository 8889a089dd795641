"""Prometheus metrics that stay right under pre-forked workers, and their text exposition.

A process that serves alone keeps its metrics in memory, in a registry of its own (never the
library's global one, so servers built side by side in one process do not collide). A server
that forks N workers enters `shared_across_workers()` before it creates any metric: from then
on every value lives in a file per process, in a directory the server creates and removes
(prometheus_client's multiprocess mode), and a scrape, which any one worker answers, reads the
sum over all of them. Gauges of requests in flight name a `livesum` mode, and `worker_exited`
drops a dead worker's share of those, so a worker that died mid-request leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, exposition, multiprocess, values

# Prometheus's text format, which every Prometheus 2.x reads (what `generate_latest` writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ENV = "PROMETHEUS_MULTIPROC_DIR"


def registry() -> CollectorRegistry:
    """A fresh registry for one server's metrics."""
    return CollectorRegistry(auto_describe=True)


def shared_directory() -> str | None:
    """The directory the workers of this process tree write their values to, if any."""
    return os.environ.get(_ENV) or None


@contextlib.contextmanager
def shared_across_workers(prefix: str = "ksrv-metrics-") -> Iterator[str]:
    """Metrics created inside (here and in processes forked from here) are summed over the
    processes at each scrape; the directory that holds them is removed on the way out."""
    path = tempfile.mkdtemp(prefix=prefix)
    previous_env, previous_class = os.environ.get(_ENV), values.ValueClass
    os.environ[_ENV] = path
    # prometheus_client picks the value class when it is imported; a server decides at start.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        yield path
    finally:
        values.ValueClass = previous_class
        if previous_env is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = previous_env
        shutil.rmtree(path, ignore_errors=True)


def is_shared() -> bool:
    """Whether metrics created now go to the workers' shared files (`shared_across_workers`)."""
    return shared_directory() is not None and getattr(values.ValueClass, "_multiprocess", False)


def worker_exited(pid: int) -> None:
    """Forget the live gauges (requests in flight) of a worker that is gone."""
    path = shared_directory()
    if path is not None:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def exposition_text(own: CollectorRegistry) -> bytes:
    """Prometheus's text format: `own` registry, or the sum over every worker's files."""
    path = shared_directory()
    # A process that only inherited the variable (exec'd by a worker) keeps its own values.
    if path is None or not is_shared():
        return exposition.generate_latest(own)
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path)  # type: ignore[no-untyped-call]
    return exposition.generate_latest(merged)
