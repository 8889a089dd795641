"""A custom model whose `predict` is an async generator streams its chunks (KServe's rule).

The toy `tokens` model holds its stream after the first chunk until the test opens a gate,
so "the first chunk arrives before the last is produced" is forced, not timed.
"""

from __future__ import annotations

import uuid

import httpx

from tests.streaming import open_gate, wait_for_state


def test_an_async_generator_predict_streams_its_chunks(toy_server):
    key = uuid.uuid4().hex
    body = {"instances": ["alpha", "beta", "gamma"], "key": key}
    with (
        httpx.Client(base_url=toy_server.url, timeout=30) as client,
        client.stream("POST", "/v1/models/tokens:predict", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        lines = response.iter_lines()
        assert next(lines) == "alpha"  # the model still waits at its gate
        assert wait_for_state(client, key, {"streaming"}) == "streaming"
        open_gate(client, key)
        assert list(lines) == ["beta", "gamma"]
        assert wait_for_state(client, key, {"finished"}) == "finished"


def test_a_client_that_hangs_up_stops_the_models_generator(toy_server):
    key = uuid.uuid4().hex
    body = {"instances": ["alpha", "beta"], "key": key}
    with httpx.Client(base_url=toy_server.url, timeout=30) as client:
        with client.stream("POST", "/v1/models/tokens:predict", json=body) as response:
            assert next(response.iter_lines()) == "alpha"
        # The stream is closed with the gate still shut: the generator must be closed.
        with httpx.Client(base_url=toy_server.url, timeout=30) as other:
            assert wait_for_state(other, key, {"closed", "finished"}) == "closed"


def test_v2_infer_streams_too(toy_server):
    key = uuid.uuid4().hex
    body = {
        "inputs": [
            {"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]},
            {"name": "y", "shape": [1], "datatype": "BYTES", "data": ["b"]},
        ],
        "parameters": {"key": key},
    }
    with httpx.Client(base_url=toy_server.url, timeout=30) as client:
        open_gate(client, key)
        response = client.post("/v2/models/tokens/infer", json=body)
        assert (response.status_code, response.text) == (200, '{"token":"x"}\n{"token":"y"}\n')
