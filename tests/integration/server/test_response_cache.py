"""The response cache in a real `ksrv serve`: hit and miss over V1, V2 REST and gRPC, the
no-cache bypass, errors never stored, LRU eviction by bytes, and its metrics."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.conftest import TESTS_DIR

pytestmark = pytest.mark.timeout(120)

SLOW = [f"{TESTS_DIR / 'cache_toy.py'}:SlowCounter", "--model-name", "slow"]
V2 = "/v2/models/slow/infer"
BODY = '{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}'
SAME = '{"inputs":[{"data":[1.0,2.0],"datatype":"FP32","shape":[2],"name":"x"}],"id":"mine"}'


def post(server, body: str, path: str = V2, **headers: str) -> httpx.Response:
    headers = {"content-type": "application/json", **headers}
    return httpx.post(server.url + path, content=body, headers=headers)


def calls(response: httpx.Response) -> int:
    outputs = {output["name"]: output["data"] for output in response.json()["outputs"]}
    return int(outputs["calls"][0])


@pytest.fixture
def cached(start_server):
    return start_server([*SLOW, "--response-cache-bytes", "1000000"])


def test_identical_v2_requests_hit_and_a_changed_one_misses(cached):
    first = post(cached, BODY)
    assert first.status_code == 200 and first.headers["ksrv-cache"] == "miss"
    again = post(cached, SAME)  # other spacing, key order and id: the same request
    assert again.headers["ksrv-cache"] == "hit"
    assert calls(again) == calls(first)
    assert again.json()["id"] == "mine"  # the caller's own id, not the stored answer's
    changed = post(cached, BODY.replace("[1, 2]", "[1, 3]"))
    assert changed.headers["ksrv-cache"] == "miss" and calls(changed) == calls(first) + 1
    with_parameter = post(cached, BODY.replace("{", '{"parameters": {"t": 1}, ', 1))
    assert with_parameter.headers["ksrv-cache"] == "miss"
    health = httpx.get(cached.url + "/v2/health/ready")
    assert "ksrv-cache" not in health.headers


def test_no_cache_bypasses_and_errors_are_never_stored(cached):
    first = post(cached, BODY)
    bypassed = post(cached, BODY, **{"cache-control": "no-cache"})
    assert "ksrv-cache" not in bypassed.headers and calls(bypassed) == calls(first) + 1
    assert post(cached, BODY).headers["ksrv-cache"] == "hit"  # the bypass stored nothing new
    failing = BODY.replace('"x"', '"fail"')
    for _ in range(2):
        refused = post(cached, failing)
        assert refused.status_code == 400 and "ksrv-cache" not in refused.headers
    v1 = '{"instances": [[1, 2]]}'
    v1_first = post(cached, v1, "/v1/models/slow:predict")
    v1_again = post(cached, ' { "instances" : [ [1,2] ] }', "/v1/models/slow:predict")
    assert (v1_first.headers["ksrv-cache"], v1_again.headers["ksrv-cache"]) == ("miss", "hit")
    assert v1_first.json() == v1_again.json()
    metrics = httpx.get(cached.url + "/metrics").text
    assert 'ksrv_response_cache_hits_total{model_name="slow"} 2.0' in metrics
    # misses: BODY, the failing request twice (the model was called), the V1 body
    assert 'ksrv_response_cache_misses_total{model_name="slow"} 4.0' in metrics
    assert "ksrv_response_cache_bytes " in metrics


def test_grpc_hits_the_same_cache(cached):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(cached.grpc_target)
    try:
        data = grpcclient.InferInput("x", [2], "FP32")
        data.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
        first = client.infer("slow", [data], request_id="g1")
        again = client.infer("slow", [data], request_id="g2")
        assert again.as_numpy("calls").tolist() == first.as_numpy("calls").tolist()
        assert again.get_response().id == "g2"
    finally:
        client.close()
    assert trailing_cache_outcomes(cached) == ["hit", "miss"]
    rest = post(cached, BODY)  # REST and gRPC share the data plane, so the key too
    assert rest.headers["ksrv-cache"] == "hit"
    assert calls(rest) == int(first.as_numpy("calls")[0])


def trailing_cache_outcomes(server) -> list[str]:
    """`ksrv-cache` in the trailing metadata of a raw ModelInfer: the same request, then a
    new one."""
    import grpc

    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb

    outcomes = []
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for value in (2.0, 5.0):
            tensor = pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP32", shape=[2],
                contents=pb.InferTensorContents(fp32_contents=[1.0, value]),
            )  # fmt: skip
            request = pb.ModelInferRequest(model_name="slow", inputs=[tensor])
            _response, call = infer.with_call(request)
            outcomes.append(dict(call.trailing_metadata())["ksrv-cache"])
    return outcomes


def test_a_small_cache_evicts_the_least_recently_used(start_server):
    server = start_server([*SLOW, "--response-cache-bytes", "700"])  # room for two answers
    bodies = [BODY.replace("[1, 2]", f"[1, {n}]") for n in range(3)]
    for body in bodies:
        assert post(server, body).headers["ksrv-cache"] == "miss"
    assert post(server, bodies[2]).headers["ksrv-cache"] == "hit"
    assert post(server, bodies[0]).headers["ksrv-cache"] == "miss"  # evicted first
    metrics = httpx.get(server.url + "/metrics").text
    assert 'ksrv_response_cache_evictions_total{model_name="slow"}' in metrics


def test_without_the_flag_there_is_no_cache(start_server):
    server = start_server(SLOW)
    first, again = post(server, BODY), post(server, BODY)
    assert "ksrv-cache" not in again.headers and calls(again) == calls(first) + 1
