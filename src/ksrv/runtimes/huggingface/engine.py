"""Token generation for concurrent requests: transformers' continuous batching, plus a solo path.

Concurrent requests share one `ContinuousBatchingManager` (transformers 5): sequences join and
leave the running batch at token boundaries over a paged KV cache, bounded by a token budget per
forward pass (`max_batch_tokens`) and a number of sequences (`max_seqs`). Sampling parameters
are per request; greedy decoding is sampling at a vanishing temperature, which puts all the
probability on the argmax. A request that finds nothing running starts on plain `generate`
(cheaper per token than a batch step) and moves into the batch at its next token once another
request arrives, so a lone request is not slowed and concurrent ones still share passes.

The shared batch has one random stream and reports log-probabilities after temperature, so a
request with a `seed` or asking for `logprobs` runs `generate` on its own (serialised, as
KServe's transformers backend runs every request): reproducible, with the model's raw
log-probabilities. So does a generation for a LoRA adapter (lora.py says why adapters are not
batched). Closing a generation (a client that went away) frees its sequence.

Forward passes of the model are serialised (a lock taken around the top module's forward):
transformers sets `config.is_causal` for the length of a forward pass (the shared batch runs
with False, its own masks), so a `generate` running at the same moment would build a
non-causal mask and, when the two restores interleave, keep it.

`load()` counts what the engine holds as vLLM's scheduler does (docs/llm.md): running (solo
generations past the solo lock, and the batch up to `max_seqs`), waiting (the rest), and the
tokens in flight (prompt plus `max_new_tokens` of each), from the first token asked for to the
last one taken. Plain counters, read at a scrape.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ksrv.model.openai import EngineLoad
from ksrv.runtimes.huggingface.lora import AdapterSet

logger = logging.getLogger(__name__)

GREEDY_TEMPERATURE = 1e-6
PAGE_SIZE = 32
TOP_LOGPROBS_MAX = 20


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens: `temperature` 0 is greedy; `logprobs` None asks for none."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None
    adapter: str | None = None  # a LoRA adapter's name; None is the base model
    is_streamed: bool = True  # False: only the finished generation is reported


@dataclass(slots=True)
class Progress:
    """A generation so far: token ids, and per token its log-probability and top alternatives."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    is_finished: bool = False
    is_handed_over: bool = False  # stopped early to continue in the shared batch


class TokenGenerator(Protocol):
    """What the generative model needs of an engine: this module's, or vLLM's (vllm_backend)."""

    eos_token_ids: list[int]

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncGenerator[Progress]:
        """The generation after each new token (cumulative); closing the iterator cancels it."""
        ...

    def stop(self) -> None: ...


class GenerationEngine:
    """Runs generations for one causal LM; `generate` is safe to call from many coroutines."""

    def __init__(
        self, model: Any, eos_token_ids: list[int], max_batch_tokens: int, max_seqs: int,
        max_model_len: int, adapters: AdapterSet | None = None,
    ) -> None:  # fmt: skip
        self.model = model
        self.adapters = adapters or AdapterSet({})
        self.eos_token_ids = eos_token_ids
        self._max_batch_tokens = max_batch_tokens
        self._max_seqs = max_seqs
        self._max_model_len = max_model_len
        self._manager: Any = None
        self._serialise_forward_passes()
        self._ids = itertools.count()
        self._solo_lock = threading.Lock()
        self._in_flight = 0  # batched generations; read and written on the event loop only
        self._solo_running = 0
        # Each solo generation's "holds the lock" event: set by its thread, the set is the loop's.
        self._solo_started: set[threading.Event] = set()
        self._tokens = 0  # prompt + max_new_tokens of every generation; on the event loop
        self.joined_count = 0  # lone generations that moved into the batch
        # Encoder-decoder models cannot join transformers' batch (a decoder-only cache).
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

    def _serialise_forward_passes(self) -> None:
        lock = threading.Lock()

        def enter(module: Any, args: Any) -> None:
            lock.acquire()

        def leave(module: Any, args: Any, output: Any) -> None:
            lock.release()

        self.model.register_forward_pre_hook(enter)
        self.model.register_forward_hook(leave, always_call=True)

    def start(self) -> None:
        """Start the batching thread (idempotent)."""
        if self._manager is not None:
            return
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        # Temperature and top-p must differ from their neutral values here for transformers to
        # create the per-request processors; each request then passes its own values.
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=True, temperature=0.5, top_p=0.9, max_new_tokens=16,
            eos_token_id=self.eos_token_ids or -1,
        )  # fmt: skip
        blocks = -(-self._max_model_len // PAGE_SIZE) * self._max_seqs
        batching = ContinuousBatchingConfig(
            page_size=PAGE_SIZE,
            num_blocks=blocks,
            max_batch_tokens=self._max_batch_tokens,
            max_requests_per_batch=self._max_seqs,
            per_request_processors=True,
            allow_block_sharing=False,
        )
        self._manager = self.model.init_continuous_batching(
            generation_config=config, continuous_batching_config=batching
        )
        # The batching thread inherits daemon-ness from the thread that starts it: a daemon,
        # so a server that stops without unloading its models still exits.
        starter = threading.Thread(target=self._manager.start, daemon=True)
        starter.start()
        starter.join()

    def stop(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.stop(block=True, timeout=10)

    def load(self) -> EngineLoad:
        """What the engine holds now: generations running and waiting, tokens in flight."""
        batched = min(self._in_flight, self._max_seqs)
        solo = sum(started.is_set() for started in self._solo_started)
        waiting = self._in_flight - batched + len(self._solo_started) - solo
        return EngineLoad(running=batched + solo, waiting=waiting, tokens=self._tokens)

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        """The generation after each new token (cumulative); closing the iterator cancels it."""
        tokens = len(prompt_ids) + params.max_new_tokens
        self._tokens += tokens
        generation = self._generate(prompt_ids, params)
        try:
            async for progress in generation:
                yield progress
        finally:
            await generation.aclose()
            self._tokens -= tokens

    async def _generate(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        is_own = (
            params.seed is not None or params.logprobs is not None or params.adapter is not None
        )
        if is_own or self.is_encoder_decoder:
            generation = self._solo(prompt_ids, params)
        elif self._in_flight == 0 and self._solo_running == 0:
            generation = self._alone_until_joined(prompt_ids, params)
        else:
            generation = self._batched(prompt_ids, params)
        try:
            async for progress in generation:
                yield progress
        finally:
            await generation.aclose()

    async def _alone_until_joined(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        """A request that finds nothing running starts alone: transformers' `generate` costs
        less per token than a batch step. When another request arrives (and starts the batch),
        it stops at the next token and joins the batch with what it has generated so far as
        part of its prompt, so the two share forward passes from then on."""
        last = Progress()
        alone = self._solo(prompt_ids, dataclasses.replace(params, is_streamed=True), True)
        try:
            async for last in alone:
                if last.is_finished or (params.is_streamed and not last.is_handed_over):
                    yield last
        finally:
            await alone.aclose()  # closed at once, not by the collector: it frees its count
        if last.is_finished:
            return
        done = last.token_ids
        self.joined_count += 1
        rest = dataclasses.replace(params, max_new_tokens=params.max_new_tokens - len(done))
        async for progress in self._batched(prompt_ids + done, rest):
            yield Progress(token_ids=done + progress.token_ids, is_finished=progress.is_finished)

    async def _batched(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        # Counted first, so a lone generation sees at its next token that a batch is forming.
        self._in_flight += 1
        try:
            if self._manager is None:
                self.start()
            async for progress in self._in_batch(self._manager, prompt_ids, params):
                yield progress
        finally:
            self._in_flight -= 1

    async def _in_batch(
        self, manager: Any, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        request_id = f"ksrv-{next(self._ids)}"
        queue: asyncio.Queue[Any] = asyncio.Queue()
        manager.register_result_handler(request_id, queue.put_nowait)
        manager.add_request(
            prompt_ids,
            request_id=request_id,
            max_new_tokens=params.max_new_tokens,
            # Per-token reports cost a cross-thread hop each; a caller that needs only the
            # result gets one.
            streaming=params.is_streamed,
            eos_token_id=self.eos_token_ids or -1,
            temperature=max(params.temperature, GREEDY_TEMPERATURE),
            top_p=float(params.top_p),
        )
        finished = False
        try:
            while not finished:
                output = await queue.get()
                if output.error:
                    raise RuntimeError(output.error)
                finished = output.is_finished()
                yield Progress(token_ids=list(output.generated_tokens), is_finished=finished)
        finally:
            if not finished:
                manager.cancel_request(request_id)
                with manager.output_router._lock:
                    manager.output_router.result_handlers.pop(request_id, None)

    async def _solo(
        self, prompt_ids: list[int], params: SamplingParams, hand_over: bool = False
    ) -> AsyncGenerator[Progress]:
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        tokens: asyncio.Queue[int] = asyncio.Queue()
        # Log-probabilities come with the finished generation, so such requests wait for it.
        feed = _TokenFeed(loop, tokens) if params.is_streamed and params.logprobs is None else None
        self._solo_running += 1
        started = threading.Event()
        self._solo_started.add(started)
        task = loop.run_in_executor(
            None, self._generate_alone, prompt_ids, params, cancelled, feed, started
        )
        try:
            so_far: list[int] = []
            while feed is not None and not task.done():
                next_token = asyncio.ensure_future(tokens.get())
                waiting: set[asyncio.Future[Any]] = {next_token, task}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not next_token.done():
                    next_token.cancel()
                    break
                so_far.append(next_token.result())
                if hand_over and self._in_flight > 0:
                    cancelled.set()  # others are batching: continue among them
                    break
                yield Progress(token_ids=list(so_far))
            progress = await asyncio.shield(task)
            progress.is_handed_over = not progress.is_finished
            if feed is None and params.is_streamed:
                # Log-probabilities arrive with the whole generation: report it token by token.
                for count in range(1, len(progress.token_ids)):
                    yield Progress(
                        token_ids=progress.token_ids[:count],
                        logprobs=progress.logprobs[:count],
                        top_logprobs=progress.top_logprobs[:count],
                    )
            yield progress
        finally:
            self._solo_running -= 1
            self._solo_started.discard(started)
            if not task.done():
                cancelled.set()  # a gone client: generate stops at its next token

    def _generate_alone(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        cancelled: threading.Event,
        feed: Any = None,
        started: threading.Event | None = None,
    ) -> Progress:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        options: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            options.update(temperature=params.temperature, top_p=params.top_p)
        with self._solo_lock, torch.inference_mode(), self.adapters.active(params.adapter):
            if started is not None:
                started.set()
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(
                torch.tensor([prompt_ids]),
                attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                max_new_tokens=params.max_new_tokens,
                eos_token_id=self.eos_token_ids or None,
                pad_token_id=(self.eos_token_ids or [0])[0],
                stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                output_logits=params.logprobs is not None,
                return_dict_in_generate=True,
                streamer=feed,
                **options,
            )
        # A decoder's output starts with its start token, a causal LM's with the prompt.
        start = 1 if self.is_encoder_decoder else len(prompt_ids)
        tokens = [int(t) for t in output.sequences[0, start:]]
        is_cut_short = cancelled.is_set() and len(tokens) < params.max_new_tokens
        is_eos = bool(tokens) and tokens[-1] in self.eos_token_ids
        progress = Progress(token_ids=tokens, is_finished=is_eos or not is_cut_short)
        if params.logprobs is None:
            return progress
        top = min(params.logprobs or 0, TOP_LOGPROBS_MAX)
        for token, logits in zip(tokens, output.logits or (), strict=False):
            logprobs = torch.log_softmax(logits[0].float(), dim=-1)
            progress.logprobs.append(float(logprobs[token]))
            if top:
                values, indices = logprobs.topk(top)
                progress.top_logprobs.append(
                    {int(i): float(v) for i, v in zip(indices, values, strict=True)}
                )
        return progress


class _TokenFeed:
    """A transformers streamer handing each new token id to the event loop (the first call
    carries the prompt, or a decoder's start token, and is skipped)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tokens: asyncio.Queue[int]) -> None:
        self._loop = loop
        self._tokens = tokens
        self._is_first = True

    def put(self, value: Any) -> None:
        if self._is_first:
            self._is_first = False
            return
        for token in value.reshape(-1).tolist():
            self._loop.call_soon_threadsafe(self._tokens.put_nowait, int(token))

    def end(self) -> None:
        pass
