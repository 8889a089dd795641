"""The OpenAI API of `ksrv` model server, driven by the official `openai` client unchanged.

The models are tests/openai_models.py (a counting generator and a fixed-vector encoder),
served by a KServe-style script; what they answer is exact, so every assertion is too.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TESTS_DIR, ServerProcess, free_port, wait_until


def openai_script_server(env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable, str(TESTS_DIR / "openai_models.py"), "--host", "127.0.0.1",
        "--http_port", str(port), "--enable_grpc", "false",
    ]  # fmt: skip
    return ServerProcess(command, port, env).wait_ready()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = openai_script_server()
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/openai/v1", api_key="none", max_retries=0) as c:
        yield c


def test_models_lists_every_openai_model(client: openai.OpenAI):
    models = client.models.list()
    assert sorted(m.id for m in models.data) == ["counter", "templated", "vectors"]
    assert {m.object for m in models.data} == {"model"}
    assert client.models.retrieve("counter").id == "counter"


def test_completion_with_n_and_a_prompt_list(client: openai.OpenAI):
    answer = client.completions.create(
        model="counter", prompt=["one two", "three"], n=2, max_tokens=3
    )
    assert answer.object == "text_completion"
    assert [(c.index, c.text, c.finish_reason) for c in answer.choices] == [
        (0, " a1 a2 a3", "length"),
        (1, " b1 b2 b3", "length"),
        (2, " a1 a2 a3", "length"),
        (3, " b1 b2 b3", "length"),
    ]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 12)


def test_a_stop_sequence_ends_the_text_before_it(client: openai.OpenAI):
    answer = client.completions.create(model="counter", prompt="go", max_tokens=5, stop=[" a3"])
    assert answer.choices[0].text == " a1 a2"
    assert answer.choices[0].finish_reason == "stop"
    chat = client.chat.completions.create(
        model="counter", messages=[{"role": "user", "content": "hi"}], stop="2", max_tokens=4
    )
    assert chat.choices[0].message.content == " a1 a"
    assert chat.choices[0].finish_reason == "stop"


def test_chat_completion(client: openai.OpenAI):
    answer = client.chat.completions.create(
        model="counter",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_completion_tokens=2,
    )
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == " a1 a2"
    assert answer.usage is not None and answer.usage.total_tokens == 5


def test_streamed_completion_with_usage(client: openai.OpenAI):
    chunks = list(
        client.completions.create(
            model="counter", prompt="a b", max_tokens=3, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == " a1 a2 a3"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3 and chunks[-1].usage.prompt_tokens == 2


def test_streamed_chat_with_n(client: openai.OpenAI):
    stream = client.chat.completions.create(
        model="counter", messages=[{"role": "user", "content": "hi"}], n=2, max_tokens=2,
        stream=True,
    )  # fmt: skip
    texts: dict[int, str] = {}
    roles = set()
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.usage is None  # no include_usage: no usage chunk
        for choice in chunk.choices:
            roles.add(choice.delta.role)
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: " a1 a2", 1: " b1 b2"}
    assert "assistant" in roles


def test_a_chat_template_model_serves_chat_through_its_completions(client: openai.OpenAI):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    whole = client.chat.completions.create(model="templated", messages=messages, n=2, max_tokens=2)
    assert [(c.index, c.message.content) for c in whole.choices] == [(0, " a1 a2"), (1, " b1 b2")]
    assert whole.usage is not None and whole.usage.prompt_tokens == 6  # the template's words
    chunks = list(
        client.chat.completions.create(
            model="templated", messages=messages, max_tokens=2, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " a1 a2"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2


def test_sse_framing_is_data_lines_then_done(server: ServerProcess):
    body = {"model": "counter", "prompt": "x", "max_tokens": 2, "stream": True}
    with httpx.stream("POST", server.url + "/openai/v1/completions", json=body) as answer:
        assert answer.headers["content-type"] == "text/event-stream"
        raw = answer.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    assert all(event.startswith(b"data: {") for event in events[:-2])
    assert b'"usage"' not in raw


def test_embeddings_as_floats_and_base64(client: openai.OpenAI, server: ServerProcess):
    floats = client.embeddings.create(model="vectors", input=["ab c", "d"], encoding_format="float")
    assert [d.embedding for d in floats.data] == [[4.0, 2.0, 0.5, -1.0], [1.0, 1.0, 0.5, -1.0]]
    # The client asks for base64 by default and decodes it itself.
    default = client.embeddings.create(model="vectors", input="ab c")
    assert default.data[0].embedding == [4.0, 2.0, 0.5, -1.0]
    raw = httpx.post(
        server.url + "/openai/v1/embeddings",
        json={"model": "vectors", "input": "ab", "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert struct.unpack("<4f", packed) == (2.0, 1.0, 0.5, -1.0)


def test_rerank_orders_documents(server: ServerProcess):
    body = {"model": "vectors", "query": "red fox", "documents": ["a dog", "red fox", "a fox"]}
    answer = httpx.post(server.url + "/openai/v1/rerank", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [1, 2, 0]
    assert results[0]["document"] == {"text": "red fox"}


def test_unknown_model_is_404_in_openais_envelope(client: openai.OpenAI):
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="nope", prompt="x")
    error = raised.value.body
    assert error == {
        "message": "Model with name nope does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"n": 0}, "n"),
        ({"top_p": -1}, "top_p"),
        ({"messages": []}, "messages"),
        ({"top_logprobs": 2}, None),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(client: openai.OpenAI, extra: dict, param: str | None):
    messages = extra.pop("messages", [{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="counter", messages=messages, **extra)
    assert raised.value.status_code == 400
    assert raised.value.body["type"] == "invalid_request_error"
    assert raised.value.body["param"] == param
    assert (param or "top_logprobs") in raised.value.body["message"]
    if param in ("temperature", "n", "top_p", "stream_options"):  # completions check them too
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model="counter", prompt="x", **extra)


def test_a_missing_field_and_bad_json_are_400(server: ServerProcess):
    missing = httpx.post(server.url + "/openai/v1/completions", json={"model": "counter"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "prompt"
    assert missing.json()["error"]["code"] == "missing_required_parameter"
    broken = httpx.post(server.url + "/openai/v1/completions", content=b"{nope")
    assert broken.status_code == 400 and "error" in broken.json()


def test_a_too_long_prompt_is_400_with_openais_code(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model="counter", prompt="w " * 70, max_tokens=1, stream=True)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert raised.value.body["param"] == "prompt"


def test_an_endpoint_the_model_lacks_is_400(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="counter", input="x")
    assert "does not support the Embeddings API" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="vectors", prompt="x")


def test_a_client_that_disconnects_cancels_the_generation(server: ServerProcess):
    control = server.url + "/v1/models/counter:predict"
    body = {"model": "counter", "prompt": "x", "max_tokens": 5, "stream": True, "gate": "gone"}
    with httpx.stream("POST", server.url + "/openai/v1/completions", json=body) as answer:
        lines = answer.iter_lines()  # kept: a dropped iterator would close the stream
        first = next(lines)
        assert first.startswith("data: {") and " a1" in first
        assert httpx.post(control, json={"state": "gone"}).json()["state"] == "streaming"
    # The client hung up mid-stream: the model's generator is closed, not run to the end.
    wait_until(
        lambda: httpx.post(control, json={"state": "gone"}).json()["state"] == "closed",
        "the generation was cancelled",
    )


def test_a_client_that_disconnects_cancels_a_whole_answer_too(server: ServerProcess):
    """Not streamed: the call is cancelled inside the model when the client hangs up."""
    control = server.url + "/v1/models/counter:predict"
    body = json.dumps(
        {"model": "counter", "prompt": "x", "max_tokens": 5, "gate": "whole"}
    ).encode()
    head = f"POST /openai/v1/completions HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b"content-type: application/json\r\n\r\n" + body)
        wait_until(
            lambda: httpx.post(control, json={"state": "whole"}).json()["state"] == "streaming",
            "the generation started",
        )
    wait_until(
        lambda: httpx.post(control, json={"state": "whole"}).json()["state"] == "closed",
        "the generation was cancelled",
    )


def test_v2_generate_and_generate_stream(server: ServerProcess):
    url = server.url + "/v2/models/counter/generate"
    answer = httpx.post(url, json={"text_input": "hi", "parameters": {"max_tokens": 2}})
    assert answer.json() == {"model_name": "counter", "model_version": "", "text_output": " a1 a2"}
    body = {"text_input": "hi", "max_tokens": 3, "stop": "a3"}
    with httpx.stream("POST", url + "_stream", json=body) as streamed:
        assert streamed.headers["content-type"] == "text/event-stream"
        events = [line for line in streamed.iter_lines() if line]
    assert events == [
        'data: {"model_name":"counter","model_version":"","text_output":" a1"}',
        'data: {"model_name":"counter","model_version":"","text_output":" a2"}',
        'data: {"model_name":"counter","model_version":"","text_output":" "}',
        'data: {"model_name":"counter","model_version":"","text_output":""}',
    ]
    bad = httpx.post(url, json={"parameters": {}})
    assert bad.status_code == 400 and bad.json() == {"error": "text_input: expected a string"}


def test_an_empty_prefix_serves_v1_and_keeps_v1_models_routes():
    process = openai_script_server({"KSERVE_OPENAI_ROUTE_PREFIX": ""})
    try:
        with openai.OpenAI(base_url=process.url + "/v1", api_key="none", max_retries=0) as c:
            assert c.completions.create(model="counter", prompt="x", max_tokens=1).choices
        # As in KServe, V1's model routes come first.
        assert httpx.get(process.url + "/v1/models").json() == {
            "models": ["counter", "vectors", "templated"]
        }
        assert httpx.post(process.url + "/openai/v1/completions", json={}).status_code == 404
    finally:
        process.stop()


def test_ksrv_serve_with_a_custom_route_prefix(start_server):
    """`ksrv serve FILE.py:Class` (not a script) with `--openai-route-prefix`."""
    model = f"{TESTS_DIR / 'openai_models.py'}:Vectors"
    process = start_server([model, "--model-name", "emb", "--openai-route-prefix", "/llm/api"])
    with openai.OpenAI(base_url=process.url + "/llm/api/v1", api_key="x", max_retries=0) as c:
        assert [m.id for m in c.models.list()] == ["emb"]
        assert c.embeddings.create(model="emb", input="a").data[0].embedding[0] == 1.0
    assert httpx.get(process.url + "/openai/v1/models").status_code == 404


def test_tokens_time_to_first_token_and_requests_are_metrics(client, server: ServerProcess):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict:
        text = httpx.get(server.url + "/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    before = scrape()
    client.completions.create(model="counter", prompt="a b", max_tokens=3)
    stream = client.completions.create(
        model="counter", prompt="a b c", max_tokens=4, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert len(list(stream)) > 1
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({"model_name": "counter", **labels}.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("ksrv_llm_tokens_total", kind="prompt") == 2 + 3
    assert delta("ksrv_llm_tokens_total", kind="generation") == 3 + 4
    assert delta("ksrv_llm_time_to_first_token_seconds_count") == 1  # only the streamed one
    assert delta("ksrv_requests_total", protocol="openai", code="200") == 2
