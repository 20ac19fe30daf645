"""What the request side knows of a base model before any weights load: its tokenizer, context size,
stop tokens and token table (read from the model folder's tokenizer and config files only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import ModelUnavailable
from tuneforge.inference.tokens import TokenTable, build_token_table

# End-of-turn markers of common chat templates: generation stops on them even when a model's
# generation_config only names <|endoftext|>.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")


@dataclass
class BaseInfo:
    """What the request side needs before any weights load: tokenizer, context size, stop tokens."""

    name: str
    path: str
    tokenizer: object
    context_length: int
    vocab_size: int
    eos_ids: frozenset[int]
    table: TokenTable


def load_base_info(name: str, path) -> BaseInfo:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    context = getattr(text_config, "max_position_embeddings", None) or getattr(text_config, "n_positions", None)
    vocab_size = int(getattr(text_config, "vocab_size", None) or len(tokenizer))
    eos: set[int] = set()
    for source in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id, _generation_eos(path)):
        eos.update(source if isinstance(source, list) else [source] if source is not None else [])
    vocab = tokenizer.get_vocab()
    eos.update(vocab[t] for t in END_OF_TURN if t in vocab and vocab[t] < vocab_size)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = min(eos) if eos else 0
    table = build_token_table(tokenizer, vocab_size)
    return BaseInfo(name, str(path), tokenizer, int(context or 2048), vocab_size, frozenset(eos), table)


def unloadable(name: str, exc: Exception) -> ModelUnavailable:
    """The client learns which model failed and the kind of failure; paths and details stay in the log."""
    return ModelUnavailable(f"The model '{name}' is registered but could not be loaded ({type(exc).__name__}); "
                            "check its files, or ask the operator to look at the server log.", param="model")


def _generation_eos(path) -> int | list[int] | None:
    try:
        return json.loads((Path(path) / "generation_config.json").read_text()).get("eos_token_id")
    except (OSError, ValueError):
        return None
