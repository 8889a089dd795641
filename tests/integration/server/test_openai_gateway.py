"""The OpenAI API through a real `ksrv gateway` process, by host and by `/serving/NS/NAME`
path, with the official `openai` client; and the same model behind `ksrv up`.

Streams pass through untouched and promptly: the counting model holds its stream after the
first token until the test opens its gate (tests/openai_models.py), so the first chunk is seen
through the gateway before the model produced the last; a client that hangs up on the gateway
cancels the generation on the replica.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TESTS_DIR, ServerProcess, wait_until
from tests.integration.gateway.conftest import Gateway, RouteServer, service
from tests.integration.platform.conftest import _assert_no_leftovers
from tests.integration.server.test_openai_server import openai_script_server
from tests.platform_support import LocalKsrv

HOST = "llm.default.example.com"


@pytest.fixture(scope="module")
def replica() -> Iterator[ServerProcess]:
    process = openai_script_server()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def gateway(replica: ServerProcess) -> Iterator[Gateway]:
    routes = RouteServer()
    gw = Gateway(routes)
    try:
        gw.publish([service("llm", [(100, [replica])])])
        yield gw
    finally:
        gw.process.stop()
        routes.close()


def by_host(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/openai/v1",
        api_key="none",
        max_retries=0,
        default_headers={"Host": HOST},
    )


def by_path(gateway: Gateway) -> openai.OpenAI:
    base = f"{gateway.url}/serving/default/llm/openai/v1"
    return openai.OpenAI(base_url=base, api_key="none", max_retries=0)


@pytest.mark.parametrize("connect", [by_host, by_path], ids=["host", "path"])
def test_the_openai_client_works_through_the_gateway(gateway: Gateway, connect):
    with connect(gateway) as client:
        assert sorted(m.id for m in client.models.list()) == ["counter", "templated", "vectors"]
        answer = client.completions.create(model="counter", prompt=["a", "b"], n=2, max_tokens=2)
        assert [c.text for c in answer.choices] == [" a1 a2", " b1 b2"] * 2
        chunks = list(
            client.chat.completions.create(
                model="counter", messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                stream=True, stream_options={"include_usage": True},
            )
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == " a1 a2"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
        vectors = client.embeddings.create(model="vectors", input="x y")
        assert vectors.data[0].embedding == [3.0, 2.0, 0.5, -1.0]
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": ""}])
        assert raised.value.body["code"] == "model_not_found"
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model="counter", prompt="x", temperature=9)


def _state(gateway: Gateway, key: str) -> str:
    answer = httpx.post(
        gateway.url + "/v1/models/counter:predict", json={"state": key}, headers={"Host": HOST}
    )
    return str(answer.json()["state"])


def test_the_first_chunk_arrives_before_the_model_produced_the_last(gateway: Gateway):
    key = uuid.uuid4().hex
    with by_host(gateway) as client:
        stream = client.completions.create(
            model="counter", prompt="x", max_tokens=3, stream=True, extra_body={"gate": key}
        )
        chunks = iter(stream)
        assert next(chunks).choices[0].text == " a1"
        assert _state(gateway, key) == "streaming"  # the model holds the rest at its gate
        httpx.post(
            gateway.url + "/v1/models/counter:predict", json={"open": key}, headers={"Host": HOST}
        )
        assert "".join(c.choices[0].text for c in chunks) == " a2 a3"
    assert _state(gateway, key) == "finished"


def test_a_client_that_hangs_up_on_the_gateway_cancels_the_generation(gateway: Gateway):
    key = uuid.uuid4().hex
    with by_path(gateway) as client:
        stream = client.completions.create(
            model="counter", prompt="x", max_tokens=3, stream=True, extra_body={"gate": key}
        )
        assert next(iter(stream)).choices[0].text == " a1"
        stream.close()
    wait_until(lambda: _state(gateway, key) == "closed", "the generation was cancelled")


def test_the_openai_api_of_a_custom_model_behind_ksrv_up(tmp_path):
    platform = LocalKsrv(tmp_path).start()
    try:
        platform.apply([_counter_service()])
        platform.wait_ready("counter")
        base = f"{platform.gateway}/serving/default/counter/openai/v1"
        with openai.OpenAI(base_url=base, api_key="none", max_retries=0) as client:
            assert [m.id for m in client.models.list()] == ["counter"]
            stream = client.completions.create(
                model="counter", prompt="x", max_tokens=2, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            chunks = list(stream)
            assert "".join(c.choices[0].text for c in chunks if c.choices) == " a1 a2"
            assert chunks[-1].usage is not None
    finally:
        platform.stop()
        _assert_no_leftovers(platform)


def _counter_service() -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "counter", "namespace": "default"},
        "spec": {
            "predictor": {
                "containers": [{
                    "name": "kserve-container", "image": "ksrv-openai-test",
                    "command": ["ksrv", "serve", f"{TESTS_DIR / 'openai_models.py'}:Counter"],
                    "args": ["--model-name", "counter"],
                }],
            }
        },
    }  # fmt: skip
