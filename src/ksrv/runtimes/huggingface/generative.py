"""Generative tasks (text_generation, text2text_generation): OpenAI completions and chat.

`create_completion` and `create_chat_completion` take an OpenAI request (a dict or an object
with its fields) and return the response as a dict, or with `stream` an async iterator of
chunk dicts (SSE framing is the server's job; the last chunk carries `usage` when
`stream_options.include_usage` asks). Every choice is one generation in the shared batch
(`engine.py`), so `n` and prompt lists cost no extra forward passes. Unlike KServe's transformers
backend, `n > 1` is served; V1/V2 predict generates one greedy completion per instance.
LoRA adapters (`--enable-lora --lora-modules`, lora.py) are `HuggingFaceAdapterModel`s: models of
their own name that generate through this one with their adapter (the request's `model` picks it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from ksrv.errors import InvalidInput, ModelNotReady
from ksrv.model.base import Headers
from ksrv.model.openai import EngineLoad, OpenAIGenerativeModel
from ksrv.protocol import v1, v2
from ksrv.protocol.openai.chat import ChatCompletion, ChatCompletionChunk
from ksrv.protocol.openai.completions import Completion, CompletionChunk
from ksrv.runtimes.huggingface import openai_shapes as shapes
from ksrv.runtimes.huggingface import settings as flags
from ksrv.runtimes.huggingface import task as tasks
from ksrv.runtimes.huggingface.base import HuggingFaceModel
from ksrv.runtimes.huggingface.decoding import TextStream
from ksrv.runtimes.huggingface.engine import GenerationEngine, SamplingParams, TokenGenerator
from ksrv.runtimes.huggingface.lora import AdapterSet

DEFAULT_PREDICT_TOKENS = 64
_UNSUPPORTED = ("frequency_penalty", "presence_penalty")


class HuggingFaceGenerativeModel(HuggingFaceModel, OpenAIGenerativeModel):
    """A causal or sequence-to-sequence LM behind OpenAI completions and chat."""

    generator: TokenGenerator | None = None
    lora: AdapterSet = AdapterSet({})

    def adapters(self) -> list[OpenAIGenerativeModel]:
        return [
            HuggingFaceAdapterModel(module.name, self, module.path, module.base_model_name)
            for module in self.settings.lora_modules
        ]

    def load(self) -> bool:
        auto = (
            "AutoModelForCausalLM"
            if self.task == tasks.TEXT_GENERATION
            else "AutoModelForSeq2SeqLM"
        )
        # Decoder-only models pad on the left, so a batch's last tokens line up (as KServe).
        side = "left" if self.task == tasks.TEXT_GENERATION else "right"
        self.load_pretrained(auto, padding_side=side)
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(self.tokenizer.eos_token_id)
        if self.settings.lora_modules:
            self.lora = AdapterSet.load(self.model, self.settings, self.name, self.fetch_uri)
        self.generator = GenerationEngine(
            self.model, eos_ids,
            self.settings.max_num_batched_tokens or flags.DEFAULT_MAX_NUM_BATCHED_TOKENS,
            self.settings.max_num_seqs or flags.DEFAULT_MAX_NUM_SEQS, self.max_length, self.lora,
        )  # fmt: skip
        self.ready = True
        return self.ready

    def engine_load(self) -> EngineLoad | None:
        """The engine's running and waiting generations and tokens in flight (its adapters'
        included: they generate through it)."""
        return self.generator.load() if isinstance(self.generator, GenerationEngine) else None

    def stop(self) -> None:
        if self.generator is not None:
            self.generator.stop()
        super().stop()

    # -- V1 / V2 predict ---------------------------------------------------------------------
    async def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        """One greedy completion per instance (`parameters.max_new_tokens`, default 64)."""
        return await self.predict_as(self.name, payload)

    async def predict_as(self, model: str, payload: Any) -> Any:
        """`predict` for the model (base or adapter) named `model`."""
        if isinstance(payload, v2.InferRequest):
            values = payload.inputs[0].as_numpy().reshape(-1).tolist() if payload.inputs else []
            limit = payload.parameters.get("max_new_tokens", DEFAULT_PREDICT_TOKENS)
        else:
            values = v1.instances(v1.check_request(payload))
            limit = (payload.get("parameters") or {}).get("max_new_tokens", DEFAULT_PREDICT_TOKENS)
        texts = [value.decode() if isinstance(value, bytes) else value for value in values]
        if not texts or not all(isinstance(text, str) for text in texts):
            raise InvalidInput("Expected the instances to be strings")
        prompts = [self._encode(text) for text in texts]
        request = {"model": model, "max_tokens": limit, "temperature": 0}
        results = await asyncio.gather(*(self._complete(ids, request, []) for ids in prompts))
        generated = [text for text, *_ in results]
        if isinstance(payload, v2.InferRequest):
            import numpy as np

            return v1.get_predict_response(payload, np.array(generated, dtype=object), model)
        return {"predictions": generated}

    # -- OpenAI ------------------------------------------------------------------------------
    async def create_completion(
        self, request: Any, raw_request: Any = None, context: Any = None
    ) -> Any:
        """An OpenAI text completion (or its chunks, with `stream`)."""
        prompts = self._prompts(shapes.field(request, "prompt"))
        if shapes.field(request, "echo"):
            raise shapes.bad("'echo' is not supported", "echo")
        answer = await self._respond(request, prompts, shapes.COMPLETION)
        return shapes.typed(answer, Completion, CompletionChunk)

    async def create_chat_completion(
        self, request: Any, raw_request: Any = None, context: Any = None
    ) -> Any:
        """An OpenAI chat completion, the prompt built by the tokenizer's chat template."""
        messages = shapes.field(request, "messages")
        if not isinstance(messages, list) or not messages:
            raise shapes.bad("'messages' must be a non-empty list", "messages")
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInput(f"Model '{self.name}' has no chat template: use completions")
        conversation = [shapes.chat_message(message) for message in messages]
        text = self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True
        )
        answer = await self._respond(request, [self._encode(text, special=False)], shapes.CHAT)
        return shapes.typed(answer, ChatCompletion, ChatCompletionChunk)

    async def _respond(
        self, request: Any, prompts: list[list[int]], kind: str
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        for name in _UNSUPPORTED:
            if shapes.field(request, name):
                raise shapes.bad(f"'{name}' is not supported", name)
        n = shapes.field(request, "n") or 1
        if not isinstance(n, int) or n < 1:
            raise shapes.bad("'n' must be a positive integer", "n")
        stop = shapes.stop_list(shapes.field(request, "stop"))
        for ids in prompts:
            self._check_length(ids, shapes.max_tokens(request))
        jobs = [(index * n + j, ids) for index, ids in enumerate(prompts) for j in range(n)]
        header = shapes.Header(kind, shapes.field(request, "model") or self.name)
        usage_prompt = sum(len(ids) for ids in prompts)
        if shapes.field(request, "stream"):
            return self._stream(request, jobs, stop, header, usage_prompt)
        results = await asyncio.gather(
            *(self._complete(ids, request, stop, index) for index, ids in jobs)
        )
        choices = [
            shapes.choice(kind, index, text, reason, self._logprobs(request, kind, progress))
            for (index, _), (text, reason, progress) in zip(jobs, results, strict=True)
        ]
        completion = sum(len(progress.token_ids) for _, _, progress in results)
        return header.response(choices, shapes.usage(usage_prompt, completion))

    async def _complete(
        self, ids: list[int], request: Any, stop: list[str], choice: int = 0
    ) -> tuple[str, str, Any]:
        text, last = "", ("", "length", None)  # type: tuple[str, tuple[str, str | None, Any]]
        # Without stop sequences nothing needs the text before the end.
        generation = self._generate(ids, request, stop, choice, is_streamed=bool(stop))
        async for last in generation:
            text += last[0]
        return text, last[1] or "length", last[2]

    async def _generate(
        self, ids: list[int], request: Any, stop: list[str], choice: int, is_streamed: bool = True
    ) -> AsyncIterator[tuple[str, str | None, Any]]:
        """(text delta, finish reason or None, progress) per new token."""
        params = dataclasses.replace(self._params(ids, request, choice), is_streamed=is_streamed)
        stream = TextStream(self.tokenizer, stop)
        generator = self._generator()
        generation = generator.generate(ids, params)
        try:
            async for progress in generation:
                delta = stream.update(progress.token_ids, progress.is_finished)
                if delta.is_stopped:
                    yield delta.text, "stop", progress
                    return
                if progress.is_finished:
                    last = progress.token_ids[-1] if progress.token_ids else None
                    is_eos = last in generator.eos_token_ids
                    reason = (
                        "stop"
                        if is_eos or len(progress.token_ids) < params.max_new_tokens
                        else "length"
                    )
                    yield delta.text, reason, progress
                    return
                if delta.text:
                    yield delta.text, None, progress
        finally:
            await generation.aclose()  # a stop sequence or a gone client frees the sequence

    async def _stream(
        self, request: Any, jobs: list[tuple[int, list[int]]], stop: list[str],
        header: shapes.Header, usage_prompt: int,
    ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
        """Chunks as tokens arrive, from all choices at once, then a usage-only chunk (the
        server sends it on as OpenAI's final chunk when `include_usage` asks)."""
        queue: asyncio.Queue[tuple[int, str, str | None, Any] | None] = asyncio.Queue()
        counts = dict.fromkeys(range(len(jobs)), 0)

        async def run(index: int, ids: list[int]) -> None:
            try:
                async for text, reason, progress in self._generate(ids, request, stop, index):
                    counts[index] = len(progress.token_ids)
                    await queue.put((index, text, reason, progress))
            finally:
                await queue.put(None)

        tasks_ = [asyncio.create_task(run(index, ids)) for index, ids in jobs]
        try:
            if header.kind == shapes.CHAT:
                for index, _ in jobs:
                    yield header.chunk([shapes.role_delta(index)])
            remaining = len(tasks_)
            while remaining:
                item = await queue.get()
                if item is None:
                    remaining -= 1
                    continue
                index, text, reason, progress = item
                logprobs = self._logprobs(request, header.kind, progress, last_only=True)
                # Sent at once: holding a chunk back for the usage would delay every token.
                choice = shapes.chunk_choice(header.kind, index, text, reason, logprobs)
                yield header.chunk([choice])
            for task in tasks_:
                task.result()  # a generation that failed fails the stream
            last = header.chunk([])  # usage only: the server sends it if `include_usage` asks
            last["usage"] = shapes.usage(usage_prompt, sum(counts.values()))
            yield last
        finally:
            for task in tasks_:
                task.cancel()

    def _generator(self) -> TokenGenerator:
        if self.generator is None:
            raise ModelNotReady(self.name, "not loaded")
        return self.generator

    # -- request -> engine -------------------------------------------------------------------
    def _prompts(self, prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str):
            return [self._encode(prompt)]
        if isinstance(prompt, list) and prompt:
            if all(isinstance(item, str) for item in prompt):
                return [self._encode(item) for item in prompt]
            if all(isinstance(item, int) for item in prompt):
                return [list(prompt)]
            if all(
                isinstance(item, list) and all(isinstance(t, int) for t in item) for item in prompt
            ):
                return [list(item) for item in prompt]
        raise shapes.bad("'prompt' must be a string, a list of strings, or token ids", "prompt")

    def _encode(self, text: str, special: bool = True) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        return [int(token) for token in ids]

    def _check_length(self, ids: list[int], max_tokens: int | None) -> None:
        wanted = len(ids) + (max_tokens or 0)
        if not ids or wanted > self.max_length or len(ids) >= self.max_length:
            raise shapes.too_long(
                f"This model's maximum context length is {self.max_length} tokens. However, you "
                f"requested {wanted} tokens ({len(ids)} in the messages, {max_tokens or 0} in the "
                "completion). Please reduce the length of the messages or completion.",
                "messages" if max_tokens is None else "max_tokens",
            )

    def _params(self, ids: list[int], request: Any, choice: int) -> SamplingParams:
        max_tokens = shapes.max_tokens(request)
        temperature = shapes.number(request, "temperature", 1.0, 0.0, 2.0)
        top_p = shapes.number(request, "top_p", 1.0, 0.0, 1.0)
        seed = shapes.field(request, "seed")
        if seed is not None and not isinstance(seed, int):
            raise shapes.bad("'seed' must be an integer", "seed")
        return SamplingParams(
            max_new_tokens=max_tokens if max_tokens is not None else self.max_length - len(ids),
            temperature=temperature,
            top_p=top_p if top_p > 0 else 1.0,
            # Each choice of a seeded request gets its own stream, reproducibly.
            seed=None if seed is None else seed + choice,
            logprobs=shapes.logprobs_wanted(request),
            adapter=self._adapter(request),
        )

    def _adapter(self, request: Any) -> str | None:
        """The LoRA adapter the request's `model` names (None: the base model)."""
        name = shapes.field(request, "model")
        return name if isinstance(name, str) and name in self.lora.adapters else None

    def _logprobs(self, request: Any, kind: str, progress: Any, last_only: bool = False) -> Any:
        if shapes.logprobs_wanted(request) is None or progress is None or not progress.logprobs:
            return None
        start = len(progress.token_ids) - 1 if last_only else 0
        return shapes.logprobs(kind, self.tokenizer, progress, start)


class HuggingFaceAdapterModel(OpenAIGenerativeModel):
    """A LoRA adapter served under its own name: generates through its base model."""

    def __init__(
        self, name: str, base: HuggingFaceGenerativeModel, root: str, parent: str | None
    ) -> None:
        super().__init__(name)
        self.base = base
        self.root = root
        self.parent = parent or base.name

    def load(self) -> bool:
        # The base loads the adapter with itself (it comes first in the server's list).
        self.ready = self.base.ready and self.name in self.base.lora.adapters
        return self.ready

    async def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        return await self.base.predict_as(self.name, payload)

    async def create_completion(
        self, request: Any, raw_request: Any = None, context: Any = None
    ) -> Any:
        return await self.base.create_completion(_named(request, self.name), raw_request, context)

    async def create_chat_completion(
        self, request: Any, raw_request: Any = None, context: Any = None
    ) -> Any:
        return await self.base.create_chat_completion(
            _named(request, self.name), raw_request, context
        )


def _named(request: Any, name: str) -> Any:
    """The request with `model` set to `name` (the base picks the adapter by it)."""
    if isinstance(request, dict):
        return {**request, "model": name}
    return request.model_copy(update={"model": name})
