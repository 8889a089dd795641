"""`ksrv serve --model-format pytorch --max-latency-ms`: KServe's batcher on a TorchScript model.

The wait is long (60 s) and the batch size 8, so a batch runs exactly when its 8th request
arrives: concurrent clients share one call whatever the machine's speed, and each still gets
the answer the model gives its own input alone.
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from tests import runtime_models
from tests.conftest import serve

torch = pytest.importorskip("torch")

ROWS = [[5.0 + index / 4, 3.0 - index / 8, 1.5 + index / 2, 0.2 + index / 4] for index in range(8)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return runtime_models.torchscript_linear(tmp_path_factory.mktemp("linear"))


@pytest.fixture(scope="module")
def server(model_dir):
    flags = ["--max-batch-size", "8", "--max-latency-ms", "60000"]
    server = serve(["--model-format", "pytorch", "--model-dir", str(model_dir), *flags])
    yield server
    server.stop()


def alone(model_dir, row):
    """What the TorchScript module answers for one row on its own."""
    with runtime_models.torchscript_allowed():
        module = torch.jit.load(str(model_dir / "model.pt"))
    with torch.no_grad():
        return module(torch.tensor([row], dtype=torch.float32)).numpy()


def post_all(server, path, bodies):
    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
            return await asyncio.gather(*(client.post(path, json=body) for body in bodies))

    return asyncio.run(main())


def test_concurrent_v1_requests_share_one_call_and_get_their_own_predictions(server, model_dir):
    bodies = [{"instances": [row]} for row in ROWS]
    ragged = {"instances": [[1.0, 2.0], [1.0, 2.0, 3.0, 4.0]]}
    *answers, bad = post_all(server, "/v1/models/model:predict", [*bodies, ragged])
    assert bad.status_code == 400 and "error" in bad.json()
    assert [answer.status_code for answer in answers] == [200] * 8
    assert len({answer.json()["batchId"] for answer in answers}) == 1  # one merged call
    for row, answer in zip(ROWS, answers, strict=True):
        # float32 sums may round differently in an 8-row matrix than in a 1-row one
        np.testing.assert_allclose(answer.json()["predictions"], alone(model_dir, row), rtol=1e-6)


def test_concurrent_v2_requests_are_split_back_per_request(server, model_dir):
    bodies = [
        {"id": f"r{index}", "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32",
                                        "data": row}]}
        for index, row in enumerate(ROWS)
    ]  # fmt: skip
    answers = post_all(server, "/v2/models/model/infer", bodies)
    for index, (row, answer) in enumerate(zip(ROWS, answers, strict=True)):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == f"r{index}"
        (output,) = body["outputs"]
        assert output["shape"] == [1, 3]
        np.testing.assert_allclose([output["data"]], alone(model_dir, row), rtol=1e-6)
