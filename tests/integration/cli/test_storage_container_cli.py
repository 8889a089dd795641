"""A ClusterStorageContainer through the real local platform (`ksrv up`, driven by the `ksrv`
command): applied, listed and read back with the status saying what the platform cannot run,
re-applied from its own YAML, deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ksrv.api.storage_container import default_storage_container
from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

PATH = "/apis/serving.kserve.io/v1alpha1/clusterstoragecontainers/default"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LocalKsrv]:
    running = LocalKsrv(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_storage_container_is_stored_and_says_it_needs_a_container_engine(platform):
    document = default_storage_container("ghcr.io/ksrv-dev/ksrv-storage-initializer:1")
    assert "created" in platform.apply([document])

    def ready_condition() -> dict | None:
        status = platform.http.get(platform.api + PATH).json().get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    wait_until(lambda: ready_condition() is not None, what="the ClusterStorageContainer status")
    condition = ready_condition()
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "NotSupportedLocally")
    assert "no container engine" in condition["message"]
    assert "ksrv's own storage layer" in condition["message"]

    table = platform.cli("get", "csc").splitlines()
    assert table[0].split() == ["NAME", "AGE"]
    assert table[1].split()[0] == "default"

    stored = yaml.safe_load(
        platform.cli("get", "clusterstoragecontainers", "default", "-o", "yaml")
    )
    assert stored["spec"] == document["spec"]
    assert "unchanged" in platform.apply(yaml.safe_dump(stored))

    assert "deleted" in platform.cli("delete", "csc", "default")
    listed = json.loads(platform.cli("get", "csc", "-o", "json"))
    assert listed["items"] == []
