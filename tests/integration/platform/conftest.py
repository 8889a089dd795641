"""Fixtures for the local-platform tests: one real `ksrv up` per module, tiny models."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform_support import LocalKsrv


@pytest.fixture(scope="module")
def ksrv_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-state")).start()
    try:
        yield platform
    finally:
        platform.stop()
        _assert_no_leftovers(platform)


def _assert_no_leftovers(platform: LocalKsrv) -> None:
    """Every replica and the gateway are gone after `ksrv up` ends."""
    path = platform.state_dir / "platform" / "platform.json"
    leftovers = []
    if path.exists():
        for pids in platform.replica_pids().values():
            leftovers += [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    gateway_pid = platform.state_dir / "gateway.pid"
    if gateway_pid.exists() and Path(f"/proc/{gateway_pid.read_text().strip()}").exists():
        leftovers.append(int(gateway_pid.read_text()))
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"replicas or gateway left running: {leftovers}"


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests import models, runtime_models

    root = tmp_path_factory.mktemp("platform-models")
    return {
        "sklearn": models.sklearn_iris(root / "sklearn"),
        "sklearn-v2": models.sklearn_iris(root / "sklearn-v2"),
        "xgboost": runtime_models.xgboost_iris(root / "xgboost"),
    }
