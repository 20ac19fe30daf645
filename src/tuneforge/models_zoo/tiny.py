"""Tiny random chat models for fast tests, demos and benchmarks (no download needed).

A Llama-architecture model with random weights and a small byte-level BPE tokenizer trained on the
fly, with a ChatML chat template (the same turn markers as SmolLM2). Training it for a few hundred
LoRA steps makes it reproduce its training answers, which is what the tests check.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_DEFAULT_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello! How can I help you today?",
    "What is the capital of France? The capital of France is Paris.",
    "You are a helpful assistant. Answer briefly and politely.",
    "我们的产品支持中文和英文。请问有什么可以帮您？",
    "Fine-tuning adapts a pretrained model to your own data with LoRA adapters.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 yes no maybe true false",
]


def build_tiny_model(out_dir: str | Path, *, hidden_size: int = 256, layers: int = 4, heads: int = 4,
                     vocab_size: int = 2048, max_positions: int = 1024, corpus: list[str] | None = None,
                     seed: int = 0) -> Path:
    """Write a random Llama model + trained BPE tokenizer with a ChatML template to ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = list(corpus or []) + _DEFAULT_CORPUS
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=None, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token=None)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(out)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    (out / "tuneforge-tiny.json").write_text(json.dumps({"hidden_size": hidden_size, "layers": layers,
                                                          "vocab_size": len(tokenizer), "seed": seed}))
    return out
