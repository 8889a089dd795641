"""Tier 2 (../shared/k8s/TESTING.md): the strict emulator in a thread on a free port, a
kubeconfig pointing at it (the operator logs in as on a cluster), the official client for the
test, and the real operator under `kopf.testing.KopfRunner`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from ksrv.k8s import operator, reconcile
from tests.k8s_cluster import Cluster, declare, write_kubeconfig
from tests.k8s_emulator import EmulatorThread

# Retries come quickly here; the behaviour is the same at the default delays.
FAST = reconcile.Settings(retry_delay_s=0.2, slow_retry_delay_s=0.5)


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(declare) as k8s:
        yield k8s


@pytest.fixture
def kubeconfig(emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never the in-cluster path
    path = write_kubeconfig(tmp_path / "kubeconfig", emulator.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    client = Cluster(kubeconfig)
    yield client
    client.close()


@pytest.fixture
def kopf_runner(kubeconfig: Path) -> Iterator[Any]:
    """The operator, watching every namespace, until the test ends (then it must stop cleanly)."""
    runner = KopfRunner(
        ["run", "--standalone", "--all-namespaces"], registry=operator.registry(FAST), timeout=30
    )
    with runner:
        yield runner
    assert runner.exception is None, runner.output
