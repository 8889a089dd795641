"""Request-based autoscaling on the real local platform: load through the gateway scales a
revision up to maxReplicas, and back down to minReplicas when it stops.

`ksrv up` runs with a config-autoscaler file (a short stable window), the service is the
`slow` toy (each request sleeps) with `scaleTarget: 1`, and 4 clients keep 4 requests in
flight: 4 / (1 x 70%) wants 6 replicas, capped at maxReplicas 3.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TESTS_DIR
from tests.integration.platform.conftest import _assert_no_leftovers
from tests.platform_support import LocalKsrv

NAME = "slow-scaler"


@pytest.fixture(scope="module")
def scaling_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    state = tmp_path_factory.mktemp("ksrv-autoscaling")
    config = state / "config-autoscaler.yaml"
    config.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-autoscaler, namespace: "
        "knative-serving}\ndata:\n  stable-window: 6s\n  scale-to-zero-grace-period: 10s\n"
    )
    platform = LocalKsrv(state, args=("--autoscaler-config", str(config))).start()
    try:
        yield platform
    finally:
        platform.stop()
        _assert_no_leftovers(platform)


def slow_service() -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "scaleTarget": 1,
                "containers": [{
                    "name": "kserve-container", "image": "ksrv-toys",
                    "command": ["ksrv", "serve", f"{TESTS_DIR / 'toys.py'}:Slow"],
                    "args": ["--model-name", "slow"],
                }],
            }
        },
    }  # fmt: skip


def replicas(platform: LocalKsrv) -> int:
    """Replicas the platform runs for the service's revision (its state file)."""
    return sum(len(pids) for name, pids in platform.replica_pids().items() if NAME in name)


def wait_for(condition, what: str, timeout_s: float, platform: LocalKsrv) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            status = json.dumps(platform.isvc(NAME).get("status", {}), indent=1)
            raise AssertionError(
                f"{what}: not within {timeout_s}s\n{status}\n{platform.log()[-3000:]}"
            )
        time.sleep(0.25)


class Load:
    """`clients` loops sending slow requests through the gateway until stopped."""

    def __init__(self, gateway: str, clients: int) -> None:
        self.url = f"{gateway}/serving/default/{NAME}/v1/models/slow:predict"
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(clients)))

    async def _run(self, clients: int) -> None:
        async with httpx.AsyncClient(timeout=60) as client:

            async def loop() -> None:
                while not self.stop.is_set():
                    answer = await client.post(self.url, json={"instances": [[1]], "delay_s": 0.3})
                    self.statuses.append(answer.status_code)

            await asyncio.gather(*(loop() for _ in range(clients)))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(60)


def test_load_scales_up_to_max_replicas_and_back_down_to_min(scaling_platform: LocalKsrv):
    platform = scaling_platform
    platform.apply([slow_service()])
    platform.wait_ready(NAME)
    assert replicas(platform) == 1
    with Load(platform.gateway, clients=4) as load:
        wait_for(lambda: replicas(platform) == 3, "scaled up to maxReplicas 3", 60, platform)
        wait_for(lambda: len(platform.routed_replicas(NAME)) == 1 and
                 sum(platform.routed_replicas(NAME).values()) == 3,
                 "three ready replicas routed", 60, platform)  # fmt: skip
        scaler = platform.isvc(NAME)["status"]["components"]["predictor"]["autoscaler"]
    assert load.statuses and set(load.statuses) == {200}
    assert scaler["metric"] == "concurrency" and scaler["target"] == 0.7
    assert scaler["desiredReplicas"] == 3
    assert scaler["revisionName"] == f"{NAME}-predictor-00001"
    # Idle: the 6 s window empties, panic ends a window later, then it halves per tick.
    wait_for(lambda: replicas(platform) == 1, "back down to minReplicas 1", 60, platform)
    wait_for(
        lambda: (
            "  stable, concurrency " in platform.cli("describe", "isvc", NAME)
            and "1 desired: " in platform.cli("describe", "isvc", NAME)
        ),
        "describe shows the last decision",
        30,
        platform,
    )
    notes = json.dumps(platform.isvc(NAME)["status"]["conditions"])
    assert "maxReplicas" not in notes and "scaleTarget" not in notes


def test_a_bad_autoscaling_annotation_fails_the_service_naming_it(scaling_platform: LocalKsrv):
    document = slow_service()
    document["metadata"]["name"] = "bad-window"
    document["metadata"]["annotations"] = {"autoscaling.knative.dev/window": "2s"}
    platform = scaling_platform
    platform.apply([document])
    deadline = time.monotonic() + 30
    while True:
        conditions = {
            c["type"]: c
            for c in platform.isvc("bad-window").get("status", {}).get("conditions", [])
        }
        if conditions.get("Ready", {}).get("status") == "False":
            break
        assert time.monotonic() < deadline, conditions
        time.sleep(0.2)
    assert conditions["Ready"]["reason"] == "InvalidSpec"
    assert (
        'autoscaling.knative.dev/window"]: 2s must be between 6s' in conditions["Ready"]["message"]
    )
    platform.cli("delete", "isvc", "bad-window")


def test_the_autoscaler_config_file_must_be_valid(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("stable-window: 2s\n")
    platform = LocalKsrv(tmp_path, args=("--autoscaler-config", str(config)))
    with pytest.raises(AssertionError, match=r"data\.stable-window: must be between 6s and 1h"):
        platform.start()
    platform.stop()
