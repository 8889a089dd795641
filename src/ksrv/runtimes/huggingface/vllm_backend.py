"""The huggingface runtime's vLLM backend: text generation on vLLM's engine (`AsyncLLM`).

KServe's huggingfaceserver serves an LLM with vLLM when vLLM is installed and supports the
architecture; so does ksrv (base.py picks the backend). `VLLMGenerativeModel` is the
transformers backend's generative model with vLLM's engine in place of engine.py: requests are
parsed, tokenized (the tokenizer's chat template included), checked, streamed and shaped by
generative.py exactly as there, so the OpenAI routes, V1/V2 predict and `generate` answer and
fail alike on both backends. vLLM schedules and samples: every request joins vLLM's continuous
batch, `seed` and `logprobs` included. Closing a generation (a client that went away) aborts
its vLLM request.

Engine flags: KServe's flags that vLLM also has (`--dtype`, `--max_model_len`,
`--max_num_seqs`, the LoRA flags, ...) are read as KServe reads them and handed on; every other
flag is vLLM's own (`--kv-cache-memory-bytes`, `--kv-offloading-size`, `--enforce-eager`, ...)
and parsed by vLLM's `AsyncEngineArgs` parser, so vLLM names a wrong one. vLLM is imported only
here, and only when this backend is chosen.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, NoReturn

from ksrv.errors import InvalidInput, StorageError
from ksrv.runtimes.huggingface import lora
from ksrv.runtimes.huggingface.engine import Progress, SamplingParams
from ksrv.runtimes.huggingface.generative import HuggingFaceGenerativeModel
from ksrv.runtimes.huggingface.settings import HFSettings

logger = logging.getLogger(__name__)

GENERATION_CONFIG = "generation_config.json"


def supports(architectures: list[str]) -> bool:
    """Whether vLLM's model registry has one of the model's architectures."""
    from vllm.model_executor.models import ModelRegistry

    supported = ModelRegistry.get_supported_archs()
    return any(architecture in supported for architecture in architectures)


def engine_args(settings: HFSettings, source: str, name: str) -> Any:
    """vLLM's `AsyncEngineArgs`: vLLM's own flags parsed by vLLM, then KServe's flags that
    mean the same thing to vLLM."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    class _Parser(FlexibleArgumentParser):  # type: ignore[misc]
        def error(self, message: str) -> NoReturn:
            raise InvalidInput(f"huggingface runtime (vLLM engine flags): {message}")

    parser = AsyncEngineArgs.add_cli_args(_Parser(prog="huggingface", add_help=False))
    args = AsyncEngineArgs.from_cli_args(parser.parse_args(list(settings.engine_args)))
    args.model = args.tokenizer = source
    args.served_model_name = name
    args.revision = settings.model_revision
    args.tokenizer_revision = settings.tokenizer_revision
    args.dtype = settings.dtype
    args.trust_remote_code = settings.trust_remote_code
    if settings.max_model_len is not None:
        args.max_model_len = settings.max_model_len
    if settings.max_num_seqs is not None:
        args.max_num_seqs = settings.max_num_seqs
    if settings.max_num_batched_tokens is not None:
        args.max_num_batched_tokens = settings.max_num_batched_tokens
    if settings.enable_lora:
        args.enable_lora = True
        args.max_lora_rank = settings.max_lora_rank
        args.max_loras = settings.max_loras
        args.max_cpu_loras = settings.max_cpu_loras
    return args


class VLLMEngine:
    """vLLM's `AsyncLLM` behind engine.py's `TokenGenerator` interface."""

    def __init__(
        self, engine: Any, eos_token_ids: list[int], adapters: dict[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self.eos_token_ids = eos_token_ids
        self.adapters = adapters or {}  # served name -> vLLM LoRARequest
        self._ids = itertools.count()

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[Progress]:
        """The generation after each new token (cumulative); closing the iterator aborts it."""
        from vllm.exceptions import VLLMClientError
        from vllm.inputs.engine import tokens_input

        progress = Progress()
        outputs = self.engine.generate(
            tokens_input(prompt_ids),  # tokenized here: what vLLM's renderer hands its engine
            _sampling_params(params),
            f"ksrv-{next(self._ids)}",
            lora_request=self.adapters.get(params.adapter) if params.adapter else None,
        )
        try:
            async for output in outputs:
                completion = output.outputs[0]
                progress = _advanced(progress, completion, params.logprobs)
                progress.is_finished = output.finished
                yield progress
        except VLLMClientError as exc:  # a request vLLM refuses (ksrv checks most first)
            raise InvalidInput(str(exc)) from None
        finally:
            await outputs.aclose()  # vLLM aborts a request whose generator closes early

    def stop(self) -> None:
        self.engine.shutdown()


def _sampling_params(params: SamplingParams) -> Any:
    from vllm import SamplingParams as VLLMSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VLLMSamplingParams(
        max_tokens=params.max_new_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
        logprobs=params.logprobs,
        # generative.py decodes (decoding.py) and applies stop sequences, as for transformers.
        detokenize=False,
        output_kind=RequestOutputKind.DELTA if params.is_streamed else RequestOutputKind.FINAL_ONLY,
    )


def _advanced(progress: Progress, completion: Any, top: int | None) -> Progress:
    """`progress` with the new tokens of one vLLM (delta) output, as a new object (a streamed
    chunk may be read after the next token arrived)."""
    new_ids = [int(token) for token in completion.token_ids]
    logprobs, top_logprobs = list(progress.logprobs), list(progress.top_logprobs)
    for token, candidates in zip(new_ids, completion.logprobs or (), strict=False):
        logprobs.append(float(candidates[token].logprob))
        if top:
            ranked = (
                (int(i), float(c.logprob)) for i, c in candidates.items() if c.rank is not None
            )
            top_logprobs.append(dict(sorted(ranked, key=lambda item: -item[1])[:top]))
    return Progress(progress.token_ids + new_ids, logprobs, top_logprobs)


class VLLMGenerativeModel(HuggingFaceGenerativeModel):
    """A causal LM served by vLLM behind the same OpenAI, V1/V2 and generate routes."""

    def load(self) -> bool:
        from vllm.lora.request import LoRARequest
        from vllm.v1.engine.async_llm import AsyncLLM

        self.load_tokenizer(padding_side="left")
        adapters: dict[str, Any] = {}
        found: dict[str, lora.Adapter] = {}
        for number, module in enumerate(self.settings.lora_modules, start=1):
            if module.name == self.name:
                raise InvalidInput(f"LoRA adapter {module.name} has the base model's name")
            directory = lora.adapter_dir(module, self.fetch_uri)
            lora.check_rank(module, directory, self.settings.max_lora_rank)
            parent = module.base_model_name or self.name
            adapters[module.name] = LoRARequest(module.name, number, str(directory), parent)
            found[module.name] = lora.Adapter(module.name, module.path, parent)
        args = engine_args(self.settings, self.source, self.name)
        try:
            engine = AsyncLLM.from_engine_args(args)
        except (OSError, ValueError, RuntimeError) as exc:
            raise StorageError(f"vLLM could not serve {self.source}: {exc}") from None
        # vLLM's context length (its own rules when --max_model_len is not given).
        self.max_length = int(engine.model_config.max_model_len)
        self.lora = lora.AdapterSet(found)
        self.generator = VLLMEngine(engine, self._eos_token_ids(), adapters)
        logger.info("serving %s from %s on vLLM", self.name, self.source)
        self.ready = True
        return self.ready

    def _eos_token_ids(self) -> list[int]:
        """The ids that end a generation: the config's, the generation config's, the
        tokenizer's (vLLM stops on the same ones)."""
        found: list[Any] = [self.config.get("eos_token_id"), self.tokenizer.eos_token_id]
        path = Path(self.source) / GENERATION_CONFIG
        if path.is_file():
            with contextlib.suppress(ValueError, AttributeError):
                found.append(json.loads(path.read_text()).get("eos_token_id"))
        ids: list[int] = []
        for value in found:
            for token in value if isinstance(value, list) else [value]:
                if isinstance(token, int) and token not in ids:
                    ids.append(token)
        return ids
