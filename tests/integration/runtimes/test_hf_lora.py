"""LoRA adapters on the huggingface runtime (peft), driven by the official openai client.

Two tiny adapters built in a fixture for the tiny Llama (one given as a path, one as a file://
storageUri fetched through ksrv.storage) are models of their own: listed with `parent` and
`root` as vLLM lists them, answering what peft answers directly (greedy), also while requests
for the base model and both adapters run at once; an unknown adapter is OpenAI's 404.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import hf_models
from tests.conftest import KSRV, ServerProcess, free_port

pytest.importorskip("transformers")
pytest.importorskip("peft")
openai = pytest.importorskip("openai")

PROMPT = "hello world"
TOKENS = 8


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = hf_models.tiny_llama(root / "base")
    return {
        "base": base,
        "sql": hf_models.tiny_lora(base, root / "sql", seed=1),
        "chat": hf_models.tiny_lora(base, root / "chat", seed=2),
    }


@pytest.fixture(scope="module")
def expected(models):
    """What transformers + peft answer directly, per served model name."""
    return {
        "llama": hf_models.peft_generate(models["base"], None, PROMPT, TOKENS),
        "sql": hf_models.peft_generate(models["base"], models["sql"], PROMPT, TOKENS),
        "chat": hf_models.peft_generate(models["base"], models["chat"], PROMPT, TOKENS),
    }


@pytest.fixture(scope="module")
def server(models):
    port = free_port()
    process = ServerProcess(
        [
            *KSRV,
            "serve",
            "--http-port",
            str(port),
            "--grpc-port",
            "0",
            "--model-format",
            "huggingface",
            "--model-dir",
            str(models["base"]),
            "--model-name",
            "llama",
            "--",
            "--max_model_len",
            "128",
            "--enable-lora",
            "--lora-modules",
            f"sql={models['sql']}",
            f'{{"name": "chat", "path": "{models["chat"].as_uri()}"}}',
        ],
        port,
    ).wait_ready(timeout_s=120)  # torch, transformers and peft load slowly on a busy machine
    yield process
    process.stop()


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key="unused", max_retries=0)


def complete(llm: openai.OpenAI, model: str, logprobs: int | None = None) -> str:
    answer = llm.completions.create(
        model=model, prompt=PROMPT, max_tokens=TOKENS, temperature=0, logprobs=logprobs
    )
    return answer.choices[0].text


def test_each_adapter_is_a_model_with_its_parent_and_root(server, models):
    cards = {card.id: card for card in client(server).models.list().data}
    assert sorted(cards) == ["chat", "llama", "sql"]
    assert cards["sql"].parent == "llama" and cards["sql"].root == str(models["sql"])
    assert cards["chat"].root == models["chat"].as_uri()
    assert cards["llama"].parent is None


def test_an_adapter_answers_what_peft_answers_and_the_base_is_unchanged(server, expected):
    llm = client(server)
    assert expected["sql"] != expected["llama"] != expected["chat"]
    assert {name: complete(llm, name) for name in expected} == expected


def test_concurrent_requests_for_base_and_adapters_each_get_their_own_model(server, expected):
    """Base requests share the continuous batch; adapter requests, and base requests asking for
    logprobs, run on `generate` beside it (each forward pass in turn)."""
    llm = client(server)
    jobs = [(name, None) for name in expected] * 4 + [("llama", 1)] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: complete(llm, *job), jobs))
    assert answers == [expected[name] for name, _ in jobs]


def test_a_seeded_sample_from_an_adapter_is_what_peft_samples(server, models):
    llm = client(server)
    answer = llm.completions.create(
        model="chat", prompt=PROMPT, max_tokens=TOKENS, temperature=1.0, seed=7
    )
    direct = hf_models.peft_generate(models["base"], models["chat"], PROMPT, TOKENS, seed=7)
    assert answer.choices[0].text == direct


def test_chat_through_an_adapter(server):
    answer = client(server).chat.completions.create(
        model="sql", messages=[{"role": "user", "content": "hello"}], max_tokens=4, temperature=0
    )
    assert answer.model == "sql" and answer.choices[0].message.role == "assistant"


def test_an_unknown_adapter_is_a_404_in_openai_envelope(server):
    with pytest.raises(openai.NotFoundError) as caught:
        complete(client(server), "nope")
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict) and "nope" in caught.value.body["message"]
