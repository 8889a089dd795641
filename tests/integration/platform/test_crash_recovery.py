"""After the control plane is killed: `ksrv up` on other ports replaces the old gateway, and
`ksrv down` stops what a dead control plane left running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.platform_support import LocalKsrv

pytestmark = pytest.mark.timeout(300)


def isvc(name: str, storage: Path) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"sklearn": {"storageUri": str(storage)}}},
    }


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.1)


def test_up_on_new_ports_after_a_crash_replaces_the_gateway_and_down_cleans_up(
    tmp_path, model_dirs
):
    first = LocalKsrv(tmp_path).start()
    try:
        first.apply([isvc("crashy", model_dirs["sklearn"])], "--wait")
        old_gateway = int((tmp_path / "gateway.pid").read_text())
        replicas = first.replica_pids()["crashy-predictor-00001"]
        first.kill()
        second = LocalKsrv(tmp_path).start()  # fresh ports, same state
        try:
            wait_gone([old_gateway])
            second.wait_ready("crashy")
            url = f"{second.gateway}/serving/default/crashy/v1/models/crashy:predict"
            deadline = time.monotonic() + 30
            while (
                second.http.post(url, json={"instances": [[6.8, 2.8, 4.8, 1.4]]}).status_code != 200
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert second.replica_pids()["crashy-predictor-00001"] == replicas  # adopted
            new_gateway = int((tmp_path / "gateway.pid").read_text())
            second.kill()
            output = second.cli("down", "--state-dir", str(tmp_path))
            assert "stopped" in output, output
            wait_gone([*replicas, new_gateway])
            data = json.loads((tmp_path / "platform" / "platform.json").read_text())
            assert data["revisions"] == []
        finally:
            second.stop()
    finally:
        first.stop()
