"""The huggingface runtime on vLLM's CPU engine, driven by the official openai client.

A tiny Llama (built in a fixture; hidden 128, since vLLM's CPU attention needs a head size of
at least 32) and a tiny LoRA adapter, served by `ksrv serve` with vLLM's own engine flags after
KServe's: models list, completions with `n` over a prompt list, chat streamed with
`include_usage`, stop sequences, OpenAI's errors, V2 generate, and a client that hangs up
aborting its vLLM request. Marked `vllm`: they run where vLLM is installed (`make test` runs
them in .venv-vllm) and skip elsewhere.
"""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from tests import hf_models
from tests.conftest import KSRV, ServerProcess, free_port, wait_until

STARTUP_S = 300.0  # vLLM imports in the server, its engine and worker processes: ~1 min here
pytestmark = [
    pytest.mark.vllm,
    # The first test waits for the server's start-up (pytest-timeout counts fixtures in).
    pytest.mark.timeout(STARTUP_S + 60),
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vLLM is not installed (the `vllm` extra; make test runs these in .venv-vllm)",
    ),
]
openai = pytest.importorskip("openai")

# vLLM's engine flags, passed through as KServe's container passes them: a small KV cache (the
# CPU default takes most of the machine's memory), no compilation, requests logged.
ENGINE_FLAGS = [
    "--kv-cache-memory-bytes", str(64 << 20), "--enforce-eager", "--enable-log-requests",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    base = hf_models.tiny_llama(root / "base", hidden=128)
    adapter = hf_models.tiny_lora(base, root / "sql")
    port = free_port()
    command = [
        *KSRV, "serve", "--http-port", str(port), "--grpc-port", "0",
        "--model-format", "huggingface", "--model-dir", str(base), "--model-name", "llama",
        "--", "--backend", "vllm", "--max_model_len", "128",
        "--enable-lora", "--lora-modules", f"sql={adapter}", *ENGINE_FLAGS,
    ]  # fmt: skip
    process = ServerProcess(command, port)
    try:
        process.wait_ready(STARTUP_S)
        yield process
    finally:
        process.stop()  # also when the start-up failed or timed out: vLLM's processes go too


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0)


def test_the_model_and_its_adapter_are_listed_and_served_by_vllm(server):
    models = client(server).models.list().data
    assert [(m.id, getattr(m, "parent", None)) for m in models] == [
        ("llama", None),
        ("sql", "llama"),
    ]
    assert "serving llama from" in server.log() and "on vLLM" in server.log()


def test_completions_with_n_over_a_prompt_list(server):
    answer = client(server).completions.create(
        model="llama", prompt=["hello", "the quick"], n=2, max_tokens=5, temperature=0
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.choices[0].text == answer.choices[1].text  # greedy: n copies agree
    assert answer.usage is not None and answer.usage.completion_tokens == 20
    assert {c.finish_reason for c in answer.choices} <= {"length", "stop"}


def test_chat_streams_with_the_usage_chunk_last(server):
    llm = client(server)
    whole = llm.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hello"}], max_tokens=6,
        temperature=0,
    )  # fmt: skip
    stream = llm.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hello"}], max_tokens=6,
        temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 6
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content


def test_a_stop_sequence_ends_the_text_before_it(server):
    llm = client(server)
    full = llm.completions.create(model="llama", prompt="hello", max_tokens=12, temperature=0)
    text = full.choices[0].text
    stop = text[len(text) // 2 :][:2]
    assert stop.strip(), f"greedy text too short to pick a stop sequence: {text!r}"
    cut = llm.completions.create(
        model="llama", prompt="hello", max_tokens=12, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_the_adapter_answers_differently_from_the_base(server):
    llm = client(server)
    base = llm.completions.create(model="llama", prompt="hello", max_tokens=8, temperature=0)
    tuned = llm.completions.create(model="sql", prompt="hello", max_tokens=8, temperature=0)
    assert tuned.model == "sql" and tuned.choices[0].text != base.choices[0].text


def test_errors_in_openais_envelope(server):
    llm = client(server)
    with pytest.raises(openai.NotFoundError) as missing:
        llm.completions.create(model="nope", prompt="hello")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        llm.completions.create(model="llama", prompt="hello", n=0)
    assert bad.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as too_long:
        llm.completions.create(model="llama", prompt="hello", max_tokens=500)
    assert too_long.value.body["code"] == "context_length_exceeded"


def test_v2_generate(server):
    url = f"{server.url}/v2/models/llama/generate"
    answer = httpx.post(url, json={"text_input": "hello", "parameters": {"max_tokens": 4}})
    assert answer.status_code == 200 and answer.json()["model_name"] == "llama"
    assert isinstance(answer.json()["text_output"], str)


def test_a_client_that_disconnects_aborts_the_vllm_request(server):
    body = {"model": "llama", "prompt": "hello", "max_tokens": 120, "stream": True,
            "temperature": 1.0, "seed": 7}  # fmt: skip
    before = server.log().count("Aborted request")
    with httpx.stream("POST", f"{server.url}/openai/v1/completions", json=body) as answer:
        lines = answer.iter_lines()  # kept: a dropped iterator would close the stream
        assert next(lines).startswith("data: {")
    wait_until(
        lambda: server.log().count("Aborted request") > before,
        "vLLM logged the request as aborted",
    )


def test_a_flag_vllm_does_not_know_is_refused_naming_it(tmp_path):
    base = hf_models.tiny_llama(tmp_path / "base", hidden=128)
    port = free_port()
    process = ServerProcess(
        [*KSRV, "serve", "--http-port", str(port), "--grpc-port", "0", "--model-format",
         "huggingface", "--model-dir", str(base), "--", "--backend", "vllm",
         "--no-such-engine-flag", "1"],
        port,
    )  # fmt: skip
    try:
        with pytest.raises(RuntimeError, match="server exited early"):
            process.wait_ready(STARTUP_S)
        assert "unrecognized arguments: --no-such-engine-flag" in process.log()
    finally:
        process.stop()
