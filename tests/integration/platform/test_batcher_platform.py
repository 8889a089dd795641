"""`predictor.batcher` on the local platform: a pytorch InferenceService's replica batches.

The batch size is 8 and the wait 60 s, so 8 concurrent requests through the gateway share one
model call exactly when the 8th arrives; KServe's `batchId` in each V1 answer shows which call.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests import runtime_models

pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(300)

ROWS = [[5.0 + index / 4, 3.0, 1.5 + index / 2, 0.2] for index in range(8)]


def isvc(name: str, storage_uri: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "predictor": {
                "batcher": {"maxBatchSize": 8, "maxLatency": 60000},
                "model": {"modelFormat": {"name": "pytorch"}, "storageUri": storage_uri},
            }
        },
    }


def test_an_applied_batcher_merges_concurrent_requests_through_the_gateway(ksrv_platform, tmp_path):
    model_dir = runtime_models.torchscript_linear(tmp_path / "linear")
    ksrv_platform.apply([isvc("batched", str(model_dir))], "--wait")
    conditions = {c["type"]: c for c in ksrv_platform.isvc("batched")["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert "batcher" not in conditions.get("LocalLimitations", {}).get("message", "")
    url = f"{ksrv_platform.gateway}/serving/default/batched/v1/models/batched:predict"

    async def predict_all():
        async with httpx.AsyncClient(timeout=60.0) as client:
            return await asyncio.gather(
                *(client.post(url, json={"instances": [row]}) for row in ROWS)
            )

    answers = asyncio.run(predict_all())
    assert [answer.status_code for answer in answers] == [200] * 8, answers[0].text
    assert len({answer.json()["batchId"] for answer in answers}) == 1
    assert all(len(answer.json()["predictions"]) == 1 for answer in answers)
    ksrv_platform.cli("delete", "isvc", "batched")
