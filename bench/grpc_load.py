"""gRPC load generator: N concurrent ModelInfer streams over one grpc.aio channel.

Runs in its own process (the runner pins it to the CPU the server does not use) and prints
one JSON line: requests, errors, RPS, p50 and p99 in ms. Each "stream" is a coroutine that
sends the next request as soon as the previous answer arrives, like a wrk connection.

    python grpc_load.py --target 127.0.0.1:8081 --model iris --concurrency 8 --duration 8
"""

import argparse
import asyncio
import json
import sys
import time

import grpc
import numpy as np

from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb_grpc

ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def infer_request(model: str) -> pb.ModelInferRequest:
    """Two iris rows as FP64 raw contents, as tritonclient sends them."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=[len(ROWS), len(ROWS[0])])
    request.raw_input_contents.append(np.asarray(ROWS, dtype="<f8").tobytes())
    return request


def classes(response: pb.ModelInferResponse) -> list[int]:
    """The predicted class ids, from raw or typed contents (servers differ)."""
    output = response.outputs[0]
    if response.raw_output_contents:
        dtype = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[output.datatype]
        return [int(v) for v in np.frombuffer(response.raw_output_contents[0], dtype=dtype)]
    contents = output.contents
    values = contents.int64_contents or contents.int_contents or contents.fp64_contents
    return [int(v) for v in values]


async def stream(stub, request, stop_at: float, latencies: list[float], errors: list[str]):
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            await stub.ModelInfer(request, timeout=30)
        except grpc.aio.AioRpcError as error:
            errors.append(error.code().name)
            continue
        latencies.append(time.perf_counter() - started)


async def run(args: argparse.Namespace) -> dict:
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = infer_request(args.model)
        check = classes(await stub.ModelInfer(request, timeout=30))
        for seconds in (args.warmup, args.duration):  # the last pass is the one reported
            latencies: list[float] = []
            errors: list[str] = []
            stop_at = time.perf_counter() + seconds
            await asyncio.gather(
                *(
                    stream(stub, request, stop_at, latencies, errors)
                    for _ in range(args.concurrency)
                )
            )
    ordered = np.sort(np.asarray(latencies)) * 1000 if latencies else np.zeros(1)
    return {
        "classes": check,
        "requests": len(latencies),
        "errors": len(errors),
        "error_codes": sorted(set(errors)),
        "rps": len(latencies) / args.duration,
        "p50_ms": float(np.percentile(ordered, 50)),
        "p99_ms": float(np.percentile(ordered, 99)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the gRPC server")
    parser.add_argument("--model", default="iris")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
