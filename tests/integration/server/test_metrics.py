"""A model server's `/metrics`: KServe's step histograms by `model_name`, requests counted by
protocol and status, merged calls, load time; with `--workers 2` every scrape, whichever worker
answers it, shows the sum over both."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.conftest import HeldLoop, serve

V2_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [6.8, 2.8, 4.8, 1.4]}]}  # fmt: skip  # noqa: E501


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, by (name, labels)."""
    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def two_workers(iris_dir):
    server = serve(
        ["--model-format", "sklearn", "--model-dir", str(iris_dir), "--model-name", "iris",
         "--workers", "2"]
    )  # fmt: skip
    yield server
    server.stop()


def test_every_scrape_sums_both_workers_by_protocol_and_status(two_workers):
    url = two_workers.url
    with httpx.Client(base_url=url) as client:
        for _ in range(12):
            answer = client.post(
                "/v1/models/iris:predict", json={"instances": [[6.8, 2.8, 4.8, 1.4]]}
            )
            assert answer.status_code == 200
        for _ in range(7):
            assert client.post("/v2/models/iris/infer", json=V2_BODY).status_code == 200
        for _ in range(3):
            assert client.post("/v2/models/iris/infer", content=b"{not json").status_code == 400
        assert client.post("/v2/models/nobody/infer", json=V2_BODY).status_code == 404
    with grpc.insecure_channel(two_workers.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        message = pb.ModelInferRequest(model_name="iris")
        message.inputs.add(name="x", datatype="FP64", shape=[1, 4])
        message.raw_input_contents.append(np.array([6.8, 2.8, 4.8, 1.4]).tobytes())
        for _ in range(5):
            stub.ModelInfer(message, timeout=30)
    for _ in range(4):  # the workers take turns: each scrape must still see everything
        scrape = samples(url)
        counted = {
            (dict(labels)["protocol"], dict(labels)["code"]): count
            for (name, labels), count in scrape.items()
            if name == "ksrv_requests_total" and count
        }
        assert counted == {("v1", "200"): 12, ("v2", "200"): 7, ("v2", "400"): 3, ("grpc", "OK"): 5}
        assert all(dict(labels)["model_name"] == "iris" for _, labels in scrape)
        for step in ("preprocess", "predict", "postprocess"):
            assert value(scrape, f"request_{step}_seconds_count", model_name="iris") == 24
        assert value(scrape, "ksrv_model_load_seconds", model_name="iris") > 0


def test_merged_calls_are_counted_with_their_requests(toy_server):
    before = samples(toy_server.url)
    calls_count = 8
    with grpc.insecure_channel(toy_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with HeldLoop(toy_server, grpc_calls=calls_count) as held:
            calls = [
                stub.ModelInfer.future(_rows_message(i), timeout=30) for i in range(calls_count)
            ]
            held.wait_for_grpc_calls()
        for call in calls:
            call.result()
    after = samples(toy_server.url)

    def delta(name: str) -> float:
        return value(after, name, model_name="rows") - value(before, name, model_name="rows")

    assert delta("ksrv_merged_requests_count") == 1
    assert delta("ksrv_merged_requests_sum") == calls_count
    assert delta("ksrv_merged_rows_sum") == 2 * calls_count
    assert delta("request_predict_seconds_count") == 1  # one model call answered all eight


def _rows_message(index: int) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="rows", id=str(index))
    message.inputs.add(name="x", datatype="FP64", shape=[2])
    message.raw_input_contents.append(np.full(2, index, np.float64).tobytes())
    return message
