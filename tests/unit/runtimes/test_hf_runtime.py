"""The huggingface runtime in process: flags, task inference, encoder outputs, generation.

Models are the tiny ones of tests/hf_models.py (and the real MiniLM); exact checks use greedy
decoding, compared with transformers' own `generate` on the same weights.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel

from ksrv.errors import InvalidInput, Unsupported
from ksrv.runtimes.huggingface import settings as flags
from ksrv.runtimes.huggingface import task as tasks
from tests import hf_models

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return hf_models.tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def llama(llama_dir):
    from ksrv.runtimes.huggingface.base import HuggingFaceModel

    model = HuggingFaceModel("llama", llama_dir)
    model.load()
    yield model
    model.stop()


@pytest.fixture(scope="session")
def bert_classifier(tmp_path_factory):
    from ksrv.runtimes.huggingface.base import HuggingFaceModel

    directory = hf_models.tiny_bert(
        tmp_path_factory.mktemp("bert"), "BertForSequenceClassification"
    )
    model = HuggingFaceModel("bert", directory, ("--return_probabilities",))
    model.load()
    return model


@pytest.mark.parametrize(
    ("architecture", "task"),
    [
        ("LlamaForCausalLM", tasks.TEXT_GENERATION),
        ("T5ForConditionalGeneration", tasks.TEXT2TEXT_GENERATION),
        ("MarianMTModel", tasks.TEXT2TEXT_GENERATION),
        ("BertForSequenceClassification", tasks.SEQUENCE_CLASSIFICATION),
        ("BertForTokenClassification", tasks.TOKEN_CLASSIFICATION),
        ("BertForMaskedLM", tasks.FILL_MASK),
    ],
)
def test_task_is_inferred_from_the_first_architecture_suffix(architecture, task):
    assert tasks.infer_task([architecture, "Other"]) == task


@pytest.mark.parametrize(
    ("architectures", "message"),
    [
        (["BertForQuestionAnswering"], "question_answering is not supported"),
        (["BertModel"], "Please manually set `task`"),
        (None, "set --task"),
    ],
)
def test_tasks_kserve_does_not_serve_or_cannot_infer_are_refused(architectures, message):
    with pytest.raises(InvalidInput, match=message):
        tasks.infer_task(architectures)


@pytest.mark.parametrize(
    ("config", "requested", "length"),
    [
        ({"max_position_embeddings": 512, "n_positions": 256}, None, 256),
        ({}, None, tasks.DEFAULT_MAX_LEN),
        ({"max_position_embeddings": 512}, 128, 128),
    ],
)
def test_max_length_is_the_smallest_config_limit_or_the_flag(config, requested, length):
    assert tasks.max_length(config, requested) == length


def test_a_max_model_len_over_the_models_limit_is_refused():
    with pytest.raises(InvalidInput, match="greater than the model's maximum length 64"):
        tasks.max_length({"max_position_embeddings": 64}, 65)


def test_kserve_flags_parse_with_their_spellings():
    parsed = flags.parse(["--model_id=org/m", "--max_length", "128", "--trust_remote_code",
                          "--backend", "huggingface", "--dtype=bfloat16"])  # fmt: skip
    assert (parsed.model_id, parsed.max_model_len, parsed.trust_remote_code) == ("org/m", 128, True)
    assert (parsed.backend, parsed.dtype) == ("huggingface", "bfloat16")
    assert flags.parse([]).trust_remote_code is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--return_probabilities", "--return_raw_logits"], "not allowed with"),
        (["--backend", "tgi"], "invalid choice"),
        (["--no_such_flag"], "unknown argument"),
        (["--max_model_len", "0"], "must be positive"),
    ],
)
def test_bad_flags_name_what_is_wrong(args, message):
    with pytest.raises(InvalidInput, match=message):
        flags.parse(args)


def test_backend_vllm_is_refused_clearly_without_vllm(llama_dir):
    from ksrv.runtimes.huggingface.base import HuggingFaceModel

    with pytest.raises(Unsupported, match="vLLM is not installed"):
        HuggingFaceModel("llama", llama_dir, ("--backend", "vllm"))


def test_vllm_engine_flags_are_unknown_on_the_transformers_backend(llama_dir):
    from ksrv.runtimes.huggingface.base import HuggingFaceModel

    with pytest.raises(InvalidInput, match="unknown argument\\(s\\): --enforce-eager"):
        HuggingFaceModel("llama", llama_dir, ("--backend", "huggingface", "--enforce-eager"))


def test_sequence_classification_answers_probabilities_per_text(bert_classifier):
    texts = ["hello world", "the lazy dog"]
    rows = bert_classifier.predict({"instances": texts})["predictions"]
    inputs = bert_classifier.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = bert_classifier.model(**inputs).logits.softmax(-1)
    assert [sorted(row) for row in rows] == [["0", "1", "2"], ["0", "1", "2"]]
    for row, want in zip(rows, probabilities, strict=True):
        assert [row[str(i)] for i in range(3)] == pytest.approx(want.tolist(), abs=1e-4)


def test_embeddings_are_minilm_mean_pooled_unit_vectors():
    from ksrv.runtimes.huggingface.base import HuggingFaceModel

    model = HuggingFaceModel("minilm", hf_models.minilm_dir(), ("--task", "text_embedding"))
    model.load()
    response = run(
        model.create_embedding({"input": ["a cat", "a kitten", "stock prices"], "model": "minilm"})
    )
    vectors = [torch.tensor(item["embedding"]) for item in response["data"]]
    assert [len(v) for v in vectors] == [384] * 3
    assert all(abs(float(v.norm()) - 1) < 1e-4 for v in vectors)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    assert response["usage"]["prompt_tokens"] == response["usage"]["total_tokens"] > 0


def run(coroutine):
    """The answer of a create_* call as OpenAI's JSON (the runtime gives pydantic types)."""
    answer = asyncio.run(coroutine)
    return answer.model_dump() if isinstance(answer, BaseModel) else answer


def greedy(llama, prompt: str, tokens: int) -> str:
    ids = llama.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        output = llama.model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens,
                                      do_sample=False, pad_token_id=3)  # fmt: skip
    return llama.tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def test_greedy_completion_matches_transformers_generate(llama):
    response = run(llama.create_completion(
        {"model": "llama", "prompt": "the quick brown", "max_tokens": 12, "temperature": 0}
    ))  # fmt: skip
    [choice] = response["choices"]
    assert response["object"] == "text_completion"
    if choice["finish_reason"] == "length":
        assert choice["text"] == greedy(llama, "the quick brown", 12)
    assert response["usage"]["prompt_tokens"] == len(
        llama.tokenizer("the quick brown")["input_ids"]
    )


def test_n_and_a_prompt_list_give_one_choice_each_in_order(llama):
    response = run(llama.create_completion(
        {"prompt": ["hello", "the lazy"], "n": 2, "max_tokens": 4, "temperature": 0}
    ))  # fmt: skip
    texts = [choice["text"] for choice in response["choices"]]
    assert [choice["index"] for choice in response["choices"]] == [0, 1, 2, 3]
    assert texts[0] == texts[1] and texts[2] == texts[3]


def test_seeded_sampling_repeats_and_reports_logprobs(llama):
    request = {"prompt": "hello", "max_tokens": 6, "temperature": 1.0, "seed": 7, "logprobs": 2}
    first = run(llama.create_completion(request))
    second = run(llama.create_completion(request))
    assert first["choices"][0]["text"] == second["choices"][0]["text"]
    logprobs = first["choices"][0]["logprobs"]
    assert len(logprobs["token_logprobs"]) == len(logprobs["tokens"]) > 0
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"])


def test_a_stop_sequence_ends_the_text_before_it(llama):
    full = greedy(llama, "hello", 10)
    stop = full[3:5]
    response = run(llama.create_completion(
        {"prompt": "hello", "max_tokens": 10, "temperature": 0, "stop": stop}
    ))  # fmt: skip
    choice = response["choices"][0]
    assert choice["text"] == full[: full.find(stop)]
    assert choice["finish_reason"] == "stop"


def test_chat_streams_role_then_tokens_then_usage(llama):
    async def collect():
        stream = await llama.create_chat_completion({
            "model": "llama", "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 5, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
        })  # fmt: skip
        return [chunk.model_dump() async for chunk in stream]

    chunks = asyncio.run(collect())
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    # Each chunk goes out as its token arrives; the one before last finishes the choice, the
    # last carries only the totals (the server sends it as OpenAI's usage chunk when asked).
    assert chunks[-2]["choices"][0]["finish_reason"] in ("length", "stop")
    assert chunks[-1]["choices"] == [] and 0 < chunks[-1]["usage"]["completion_tokens"] <= 5
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_a_prompt_over_the_context_length_is_invalid(llama):
    with pytest.raises(InvalidInput, match="maximum context length is 256 tokens"):
        run(llama.create_completion({"prompt": "hello", "max_tokens": 300}))


def test_closing_streams_cancels_their_generations(llama):
    """The first stream runs alone (nothing else was running), the second in the batch."""

    async def open_read_and_close():
        request = {"prompt": "hello", "max_tokens": 200, "temperature": 0, "stream": True}
        streams = [await llama.create_completion(request) for _ in range(2)]
        for stream in streams:
            async for _chunk in stream:
                break
        for stream in streams:
            await stream.aclose()
        generator = llama.generator
        for _ in range(500):  # each stops at its next token
            batch = generator._manager.batch_processor
            if not generator._solo_lock.locked() and not batch.scheduler.active_requests:
                return generator._in_flight == generator._solo_running == 0
            await asyncio.sleep(0.01)
        return False

    assert asyncio.run(open_read_and_close())


def test_a_lone_generation_joins_the_batch_when_another_arrives_with_the_same_text(
    llama, monkeypatch
):
    """A starts alone; B's arrival moves A into the batch mid-way; greedy text is unchanged.

    A's generating thread is held after its second token until B is in the batch, and B's
    steps wait until A has joined, so the hand-over happens however the OS schedules the
    threads. (Paged attention rounds differently from `generate`'s cache, so after the join a
    near-tie can flip a token: only A's own text is compared with `generate`.)"""
    from ksrv.runtimes.huggingface import engine

    b_in_flight = threading.Event()
    feed_put = engine._TokenFeed.put
    in_batch = engine.GenerationEngine._in_batch
    puts = [0]
    batch_calls = [0]

    def put_held(feed, value):
        puts[0] += 1
        if puts[0] == 3:  # the prompt, then two tokens: A waits here until B is in flight
            assert b_in_flight.wait(30), "B never reached the batch"
        feed_put(feed, value)

    async def in_batch_after_a_joined(self, manager, prompt_ids, params):
        batch_calls[0] += 1
        if batch_calls[0] == 1:  # B: A may go on, and B's steps wait until A has joined
            joined = self.joined_count
            b_in_flight.set()
            for _ in range(3000):
                if self.joined_count > joined:
                    break
                await asyncio.sleep(0.01)
        async for progress in in_batch(self, manager, prompt_ids, params):
            yield progress

    monkeypatch.setattr(engine._TokenFeed, "put", put_held)
    monkeypatch.setattr(engine.GenerationEngine, "_in_batch", in_batch_after_a_joined)

    async def both():
        llama.generator.start()  # the batch is warm: B joins it at once
        request = {"prompt": "the quick brown", "max_tokens": 40, "temperature": 0,
                   "stream": True}  # fmt: skip
        first = await llama.create_completion(request)
        texts: list[str] = []

        async def read_a():
            last = None
            async for chunk in first:
                if chunk.choices:  # the last chunk carries only the usage
                    texts.append(chunk.choices[0].text)
                    last = chunk
            return last

        reading = asyncio.ensure_future(read_a())
        for _ in range(3000):  # A has started alone (and is held at its second token)
            if llama.generator._solo_running == 1:
                break
            await asyncio.sleep(0.01)
        second = await llama.create_completion({**request, "stream": False, "max_tokens": 8})
        return texts, await reading, second

    joined = llama.generator.joined_count
    texts, last, second = asyncio.run(both())
    assert llama.generator.joined_count == joined + 1
    assert last.choices[0].finish_reason == "length"  # no end-of-sequence in 40 tokens
    assert second.choices[0].finish_reason in ("length", "stop")
    # What A made alone is what `generate` makes; after the join the batch's paged attention
    # rounds differently, so a near-tie may flip a later token (see the docstring).
    reference = greedy(llama, "the quick brown", 40)
    assert texts and reference.startswith(texts[0])


def test_engine_load_counts_a_generation_until_it_is_closed(llama):
    """A generation paused after its first token is running, its prompt plus max_new_tokens
    in flight; closing it (a client gone) leaves nothing counted."""
    from ksrv.model.openai import EngineLoad
    from ksrv.runtimes.huggingface.engine import SamplingParams

    ids = llama.tokenizer("hello there")["input_ids"]

    async def held():
        before = llama.engine_load()
        generation = llama.generator.generate(ids, SamplingParams(20, temperature=0))
        await generation.__anext__()
        during = llama.engine_load()
        await generation.aclose()
        return before, during, llama.engine_load()

    before, during, after = asyncio.run(held())
    assert before == after == EngineLoad(running=0, waiting=0, tokens=0)
    assert during == EngineLoad(running=1, waiting=0, tokens=len(ids) + 20)
