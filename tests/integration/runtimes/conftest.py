"""V2 inference through the real clients users have: tritonclient over REST (JSON and binary
tensors) and gRPC, one fixture parametrized over the three so the runtimes' tests cover all."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

V2Infer = Callable[..., dict[str, np.ndarray]]


@pytest.fixture(params=["rest-json", "rest-binary", "grpc"])
def v2_infer(request) -> Iterator[V2Infer]:
    """`infer(server, model, {name: array}, outputs=None)` -> {output name: array}."""
    transport = request.param
    module = pytest.importorskip(
        "tritonclient.grpc" if transport == "grpc" else "tritonclient.http"
    )
    utils = pytest.importorskip("tritonclient.utils")
    binary = transport != "rest-json"
    clients = []

    def infer(server, model: str, arrays: dict[str, np.ndarray], outputs=None):
        target = server.grpc_target if transport == "grpc" else f"127.0.0.1:{server.port}"
        client = module.InferenceServerClient(url=target)
        clients.append(client)
        inputs = []
        for name, array in arrays.items():
            item = module.InferInput(name, list(array.shape), utils.np_to_triton_dtype(array.dtype))
            if transport == "grpc":
                item.set_data_from_numpy(array)
            else:
                item.set_data_from_numpy(array, binary_data=binary)
            inputs.append(item)
        requested = None
        if outputs is not None:
            requested = [
                module.InferRequestedOutput(name)
                if transport == "grpc"
                else module.InferRequestedOutput(name, binary_data=binary)
                for name in outputs
            ]
        result = client.infer(model, inputs, outputs=requested)
        response = (
            result.get_response(as_json=True) if transport == "grpc" else result.get_response()
        )
        return {output["name"]: result.as_numpy(output["name"]) for output in response["outputs"]}

    yield infer
    for client in clients:
        client.close()
