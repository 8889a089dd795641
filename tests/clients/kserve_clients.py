"""Runs KServe 0.21's own clients against a server and prints what they got, as JSON.

A separate process on purpose: KServe's generated gRPC stubs and tritonclient's register the
same protobuf names and cannot be imported into one process.
Usage: python kserve_clients.py REST_URL GRPC_TARGET MODEL
"""

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def iris_request(model: str, binary: bool = False) -> InferRequest:
    infer_input = InferInput("input-0", [2, 4], "FP32")
    infer_input.set_data_from_numpy(np.asarray(ROWS, dtype=np.float32), binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[infer_input], request_id="kserve-1")


async def rest(url: str, model: str) -> dict:
    found = {}
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    found["rest_server_live"] = await v2.is_server_live(url)
    found["rest_server_ready"] = await v2.is_server_ready(url)
    found["rest_model_ready"] = await v2.is_model_ready(url, model)
    response = await v2.infer(url, iris_request(model), model_name=model)
    found["rest_v2"] = response.outputs[0].as_numpy().tolist()
    found["rest_v2_id"] = response.id
    response = await v2.infer(url, iris_request(model, binary=True), model_name=model)
    found["rest_v2_binary"] = response.outputs[0].as_numpy().tolist()
    try:
        await v2.infer(url, iris_request("missing"), model_name="missing")
    except httpx.HTTPStatusError as exc:
        found["rest_missing_status"] = exc.response.status_code
    await v2.close()
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    found["rest_v1"] = await v1.infer(url, {"instances": ROWS}, model_name=model)
    await v1.close()
    return found


async def grpc(target: str, model: str) -> dict:
    found = {}
    client = InferenceGRPCClient(target)
    found["grpc_server_live"] = await client.is_server_live()
    found["grpc_server_ready"] = await client.is_server_ready()
    found["grpc_model_ready"] = await client.is_model_ready(model)
    response = await client.infer(iris_request(model))
    found["grpc"] = response.outputs[0].as_numpy().tolist()
    found["grpc_id"] = response.id
    try:
        await client.infer(iris_request("missing"))
    except Exception as exc:  # grpc.aio.AioRpcError
        found["grpc_missing_code"] = str(exc.code())
    await client.close()
    return found


async def main(url: str, target: str, model: str) -> None:
    found = await rest(url, model)
    found.update(await grpc(target, model))
    print(json.dumps(found))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
