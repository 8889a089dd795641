"""Token generation for concurrent requests: transformers' continuous batching, plus a solo path.

Most requests share one `ContinuousBatchingManager` (transformers 5): sequences join and leave
the running batch at token boundaries over a paged KV cache, bounded by a token budget per
forward pass (`max_batch_tokens`) and a number of sequences (`max_seqs`). Sampling parameters
are per request; greedy decoding is sampling at a vanishing temperature, which puts all the
probability on the argmax, so it matches `generate`'s greedy output.

The shared batch has one random stream and reports log-probabilities after temperature, so a
request with a `seed` or asking for `logprobs` runs `model.generate` on its own (serialised, as
KServe's transformers backend runs every request): reproducible, with the model's raw
log-probabilities. Cancelling a generation (a client that went away) frees its sequence.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

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
    is_streamed: bool = True  # False: only the finished generation is reported


@dataclass(slots=True)
class Progress:
    """A generation so far: token ids, and per token its log-probability and top alternatives."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    is_finished: bool = False


class GenerationEngine:
    """Runs generations for one causal LM; `generate` is safe to call from many coroutines."""

    def __init__(
        self, model: Any, eos_token_ids: list[int], max_batch_tokens: int, max_seqs: int,
        max_model_len: int,
    ) -> None:  # fmt: skip
        self.model = model
        self.eos_token_ids = eos_token_ids
        self._max_batch_tokens = max_batch_tokens
        self._max_seqs = max_seqs
        self._max_model_len = max_model_len
        self._manager: Any = None
        self._ids = itertools.count()
        self._solo_lock = threading.Lock()
        # Encoder-decoder models cannot join transformers' batch (a decoder-only cache).
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

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

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        """The generation after each new token (cumulative); closing the iterator cancels it."""
        if params.seed is not None or params.logprobs is not None or self.is_encoder_decoder:
            async for progress in self._solo(prompt_ids, params):
                yield progress
            return
        async for progress in self._batched(prompt_ids, params):
            yield progress

    async def _batched(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        if self._manager is None:
            self.start()
        manager = self._manager
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
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        cancelled = threading.Event()
        task = asyncio.get_running_loop().run_in_executor(
            None, self._generate_alone, prompt_ids, params, cancelled
        )
        try:
            progress = await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        for count in range(1, len(progress.token_ids) + 1):
            yield Progress(
                token_ids=progress.token_ids[:count],
                logprobs=progress.logprobs[:count],
                top_logprobs=progress.top_logprobs[:count],
                is_finished=count == len(progress.token_ids),
            )

    def _generate_alone(
        self, prompt_ids: list[int], params: SamplingParams, cancelled: threading.Event
    ) -> Progress:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        options: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            options.update(temperature=params.temperature, top_p=params.top_p)
        with self._solo_lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(
                torch.tensor([prompt_ids]),
                attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                max_new_tokens=params.max_new_tokens,
                eos_token_id=self.eos_token_ids or None,
                pad_token_id=(self.eos_token_ids or [0])[0],
                stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                output_logits=True,
                return_dict_in_generate=True,
                **options,
            )
        # A decoder's output starts with its start token, a causal LM's with the prompt.
        start = 1 if self.is_encoder_decoder else len(prompt_ids)
        tokens = [int(t) for t in output.sequences[0, start:]]
        progress = Progress(token_ids=tokens, is_finished=True)
        top = min(params.logprobs or 0, TOP_LOGPROBS_MAX)
        for token, logits in zip(tokens, output.logits, strict=False):
            logprobs = torch.log_softmax(logits[0].float(), dim=-1)
            progress.logprobs.append(float(logprobs[token]))
            if top:
                values, indices = logprobs.topk(top)
                progress.top_logprobs.append(
                    {int(i): float(v) for i, v in zip(indices, values, strict=True)}
                )
        return progress
