"""log_retention: replica logs of deleted services go after the retention period, on an
injected clock; logs of existing, draining or recently deleted services stay readable."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ksrv.control.log_retention import LogFile, LogJanitor, is_expired
from ksrv.control.plane import LogFiles
from ksrv.control.platforms.base import RevisionSpec
from ksrv.control.platforms.local import LocalPlatform
from ksrv.control.store import Store

NOW = 1_800_000_000.0
DAY = 24 * 3600.0
RETENTION_S = 7 * DAY


def isvc(namespace: str, name: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}}}},
    }


def log(logs: Path, namespace: str, name: str, age_s: float) -> Path:
    path = logs / namespace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{name}\n")
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


@pytest.mark.parametrize(
    ("name", "age_s", "expired"),
    [
        ("gone-predictor-00001-0.log", RETENTION_S, True),
        ("gone-predictor-00001-0.log", RETENTION_S - 1, False),
        ("kept-predictor-00003-1.log", 30 * DAY, False),  # the service exists
        ("kept-predictor-x-predictor-00001-0.log", 30 * DAY, True),  # another, dashed name
        ("draining-explainer-00002-0.log", 30 * DAY, False),  # its revision still runs
        ("notes.log", 30 * DAY, False),  # not a replica log
    ],
)
def test_a_log_expires_only_when_its_service_is_gone_and_it_is_old(name, age_s, expired):
    entry = LogFile("default", Path("/logs/default", name), NOW - age_s)
    services = {("default", "kept")}
    running = {("default", "draining-explainer-00002")}
    assert is_expired(entry, services, running, NOW, RETENTION_S) is expired


def test_sweep_removes_old_logs_of_deleted_services_and_keeps_the_rest(tmp_path: Path) -> None:
    store = Store(tmp_path / "ksrv.db")
    store.create(isvc("default", "kept"))
    platform = LocalPlatform(tmp_path / "platform")
    logs = tmp_path / "platform" / "logs"
    kept_old = log(logs, "default", "kept-predictor-00001-0.log", 30 * DAY)
    kept_new = log(logs, "default", "kept-predictor-00002-0.log", 0)
    recent = log(logs, "default", "recent-predictor-00001-0.log", RETENTION_S - 60)
    draining = log(logs, "default", "draining-transformer-00004-1.log", 30 * DAY)
    stray = log(logs, "default", "notes.txt.log", 30 * DAY)
    gone = log(logs, "default", "gone-predictor-00001-0.log", RETENTION_S + 1)
    gone_ns = log(logs, "team-b", "old-predictor-00002-0.log", 30 * DAY)

    async def scenario() -> list[Path]:
        # A deleted service whose revision still drains (none of its replicas left to run).
        draining_revision = RevisionSpec(
            namespace="default",
            isvc="draining",
            component="transformer",
            revision="draining-transformer-00004",
            command=["true"],
            replicas=0,
        )
        await platform.ensure(draining_revision)
        janitor = LogJanitor(logs, store, platform, RETENTION_S, now=lambda: NOW)
        return janitor.sweep()

    try:
        removed = asyncio.run(scenario())
    finally:
        store.close()
    assert sorted(removed) == sorted([gone, gone_ns])
    assert not gone.exists() and not gone_ns.parent.exists()
    assert all(path.exists() for path in (kept_old, kept_new, recent, draining, stray))
    # `ksrv logs` reads these: an existing service (every revision) and a recently deleted one.
    files = LogFiles(tmp_path)
    assert files.log_paths("default", "kept", "predictor") == [kept_old, kept_new]
    assert files.log_paths("default", "recent", "predictor") == [recent]


def test_zero_retention_keeps_logs_for_ever(tmp_path: Path) -> None:
    store = Store(tmp_path / "ksrv.db")
    logs = tmp_path / "logs"
    gone = log(logs, "default", "gone-predictor-00001-0.log", 365 * DAY)
    janitor = LogJanitor(logs, store, LocalPlatform(tmp_path), 0, now=lambda: NOW)
    try:
        assert janitor.sweep() == []
        asyncio.run(asyncio.wait_for(janitor.run(interval_s=0), timeout=5))  # returns at once
    finally:
        store.close()
    assert gone.exists()
