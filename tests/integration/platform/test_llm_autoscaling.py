"""KServe's LLM autoscaling guide on the real local platform: a huggingface InferenceService
with `autoscalerClass: keda` and a Prometheus query of the model server's own tokens in flight
scales from 1 to 2 replicas while concurrent streamed completions keep tokens in flight.

The tiny Llama (tests/hf_models.py) serves; each request asks for 200 new tokens, so it holds
prompt + 200 tokens in flight (`ksrv_llm_tokens_in_flight`) until its stream ends. The target
is 250 per replica: one request in flight wants 1 replica, two or more want 2 (maxReplicas).
Four clients loop streamed completions until the autoscaler, which reads the replica's
/metrics each tick, asks for 2; then 2 replicas are routed, and the decision is in the status.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import hf_models
from tests.platform_support import LocalKsrv

pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(300)

NAME = "llm-keda"
QUERY = 'sum(ksrv_llm_tokens_in_flight{namespace="default"})'


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKsrv]:
    platform = LocalKsrv(tmp_path_factory.mktemp("ksrv-llm-keda")).start()
    try:
        yield platform
    finally:
        platform.stop()


def service(model_uri: str) -> dict:
    """The guide's shape (KServe's generative-inference autoscaling example), model local."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "annotations": {
            "serving.kserve.io/deploymentMode": "Standard",
            "serving.kserve.io/autoscalerClass": "keda",
        }},
        "spec": {"predictor": {
            "model": {"modelFormat": {"name": "huggingface"}, "storageUri": model_uri,
                      "args": ["--model_name=tiny"]},
            "minReplicas": 1,
            "maxReplicas": 2,
            "autoScaling": {"metrics": [{"type": "External", "external": {
                "metric": {"backend": "prometheus",
                           "serverAddress": "http://prometheus.monitoring:9090", "query": QUERY},
                "target": {"type": "Value", "value": "250"}}}]},
        }},
    }  # fmt: skip


class StreamedLoad:
    """`clients` loops of streamed completions through the gateway, until stopped."""

    def __init__(self, gateway: str, clients: int) -> None:
        self.url = f"{gateway}/serving/default/{NAME}/openai/v1/completions"
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(clients)))

    async def _run(self, clients: int) -> None:
        body = {"model": "tiny", "prompt": "hello world", "max_tokens": 200, "stream": True,
                "temperature": 0}  # fmt: skip
        async with httpx.AsyncClient(timeout=60) as client:

            async def loop() -> None:
                while not self.stop.is_set():
                    async with client.stream("POST", self.url, json=body) as answer:
                        async for _ in answer.aiter_lines():
                            pass
                        self.statuses.append(answer.status_code)

            await asyncio.gather(*(loop() for _ in range(clients)))

    def __enter__(self) -> StreamedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(60)


def scaler(platform: LocalKsrv) -> dict:
    return platform.isvc(NAME).get("status", {}).get("components", {}).get(
        "predictor", {}).get("autoscaler", {})  # fmt: skip


def wait_for(condition, what: str, timeout_s: float, platform: LocalKsrv) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            status = json.dumps(platform.isvc(NAME).get("status", {}), indent=1)
            raise AssertionError(f"{what}: not within {timeout_s}s\n{status}\n"
                                 f"{platform.log()[-3000:]}")  # fmt: skip
        time.sleep(0.25)


def test_tokens_in_flight_scale_the_llm_from_one_to_two_replicas(platform, tmp_path):
    model = hf_models.tiny_llama(tmp_path / "llama")
    platform.apply([service(model.as_uri())])
    platform.wait_ready(NAME, timeout_s=120)
    # Idle: the autoscaler reads 0 tokens in flight and keeps minReplicas. (A decision made
    # before any replica's /metrics answered names the query but no replica count.)
    wait_for(lambda: scaler(platform).get("metric") == QUERY
             and scaler(platform).get("desiredReplicas") is not None,
             "a decision on the query's value", 30, platform)  # fmt: skip
    decision = scaler(platform)
    assert decision["desiredReplicas"] == 1 and decision["observedStable"] == 0, decision
    with StreamedLoad(platform.gateway, clients=4) as load:
        wait_for(lambda: scaler(platform).get("desiredReplicas") == 2, "2 replicas asked for",
                 60, platform)  # fmt: skip
    assert load.statuses and set(load.statuses) == {200}
    decision = scaler(platform)
    assert decision["mode"] == "external" and decision["target"] == 250
    wait_for(lambda: sum(platform.routed_replicas(NAME).values()) == 2, "two replicas routed",
             120, platform)  # fmt: skip
    # The scale-down waits for KServe's 300 s stabilisation window: still 2 when idle.
    assert platform.routed_replicas(NAME) == {f"{NAME}-predictor-00001": 2}
