"""`ksrv up` forks model-server replicas from its fork server, and `--no-fork-server` spawns
them: driven through the CLI and the gateway, as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import wait_until
from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)

ROWS = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}


def iris(name: str, storage_uri: Path) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(storage_uri)}
            }
        },
    }


@pytest.fixture(scope="module")
def spawning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    state_dir = tmp_path_factory.mktemp("ksrv-spawning")
    platform = LocalKsrv(state_dir, args=("--no-fork-server",)).start()
    try:
        yield platform
    finally:
        platform.stop()


def parent_command(pid: int) -> list[str]:
    return psutil.Process(pid).parent().cmdline()


def predicts(platform: LocalKsrv, name: str) -> bool:
    url = f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict"
    response = platform.http.post(url, json=ROWS)
    return response.status_code == 200 and response.json() == {"predictions": [1, 1]}


def test_ksrv_up_forks_replicas_and_delete_leaves_none_behind(ksrv_platform, model_dirs):
    ksrv_platform.apply([iris("forked", model_dirs["sklearn"])], "--wait")
    (pid,) = ksrv_platform.replica_pids()["forked-predictor-00001"]
    assert parent_command(pid)[3:5] == ["forkserver", "--fd"]
    assert predicts(ksrv_platform, "forked")
    assert "deleted" in ksrv_platform.cli("delete", "isvc", "forked")
    wait_until(lambda: not psutil.pid_exists(pid), "the forked replica exits")
    wait_until(
        lambda: "forked-predictor-00001" not in ksrv_platform.replica_pids(),
        "the platform forgets it",
    )


def test_no_fork_server_spawns_every_replica_from_the_control_plane(spawning, model_dirs):
    spawning.apply([iris("spawned", model_dirs["sklearn"])], "--wait")
    (pid,) = spawning.replica_pids()["spawned-predictor-00001"]
    assert parent_command(pid)[3] == "up"
    assert predicts(spawning, "spawned")
