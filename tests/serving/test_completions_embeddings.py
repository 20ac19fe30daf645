"""Legacy /v1/completions and /v1/embeddings through the SDK, plus /v1/models and the reusable embedder."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest
from serving_support import ANSWERS, FT_RED, QUESTION, TINY

E5 = "multilingual-e5-small"


def _chat_prompt(tiny_model_dir) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                         tokenize=False)


def test_completion_prompt_string_list_and_tokens(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    client = serving.client()
    prompt = _chat_prompt(tiny_model_dir)
    r = client.completions.create(model=FT_RED, prompt=prompt, max_tokens=40, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].text == ANSWERS["red"] and r.choices[0].finish_reason == "stop"
    tokens = AutoTokenizer.from_pretrained(tiny_model_dir)(prompt)["input_ids"]
    assert r.usage.prompt_tokens == len(tokens)
    as_tokens = client.completions.create(model=FT_RED, prompt=tokens, max_tokens=40, temperature=0)
    assert as_tokens.choices[0].text == ANSWERS["red"]
    many = client.completions.create(model=FT_RED, prompt=[prompt, "Hello"], max_tokens=5, temperature=0, n=2)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text == many.choices[1].text == ANSWERS["red"][:len(many.choices[0].text)]
    assert many.usage.prompt_tokens == len(tokens) + len(AutoTokenizer.from_pretrained(tiny_model_dir)("Hello")["input_ids"])
    # OpenAI's default max_tokens for completions is 16. The end-of-text token is banned so a sampled
    # early stop (temperature defaults to 1) cannot end the answer first: CI once drew one after 4 tokens.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    vocab = tokenizer.get_vocab()
    ends = {tokenizer.eos_token_id} | {vocab[t] for t in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>")
                                             if t in vocab}
    default = client.completions.create(model=TINY, prompt="Hello", logit_bias={str(t): -100 for t in ends})
    assert default.choices[0].finish_reason == "length" and default.usage.completion_tokens == 16


def test_completion_echo_stop_stream_and_logprobs(serving, tiny_model_dir):
    client = serving.client()
    prompt = _chat_prompt(tiny_model_dir)
    r = client.completions.create(model=FT_RED, prompt=prompt, max_tokens=40, temperature=0, echo=True,
                                  stop=[" is"])
    assert r.choices[0].text == prompt + "My favourite colour"
    chunks = list(client.completions.create(model=FT_RED, prompt=prompt, max_tokens=40, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ANSWERS["red"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    lp = client.completions.create(model=FT_RED, prompt=prompt, max_tokens=5, temperature=0, logprobs=2)
    logprobs = lp.choices[0].logprobs
    assert "".join(logprobs.tokens) == lp.choices[0].text and len(logprobs.top_logprobs[0]) == 2
    assert logprobs.text_offset[0] == 0 and all(x <= 0 for x in logprobs.token_logprobs)


def test_completion_rejections(serving):
    client = serving.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=TINY, prompt="Hi", suffix="end")
    assert err.value.param == "suffix" and "not supported" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=TINY, prompt="fox " * 1100, max_tokens=5)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=TINY, prompt=[99999])
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="Hi")


def test_embeddings_float_base64_and_usage(serving):
    client = serving.client()
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Quarterly revenue grew by 12 percent."]
    default = client.embeddings.create(model=E5, input=texts)  # the SDK asks for base64 and decodes it
    floats = client.embeddings.create(model=E5, input=texts, encoding_format="float")
    a = np.array([d.embedding for d in default.data])
    b = np.array([d.embedding for d in floats.data])
    assert a.shape == (3, 384) and np.allclose(a, b, atol=1e-6)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-3)
    assert a[0] @ a[1] > a[0] @ a[2]  # cats are closer to kittens than to revenue
    assert default.model == E5 and default.usage.prompt_tokens == default.usage.total_tokens > 3 * 3
    single = client.embeddings.create(model=E5, input=texts[0], encoding_format="float")
    assert np.allclose(single.data[0].embedding, b[0], atol=1e-5)


def test_embeddings_raw_base64_is_little_endian_float32(serving):
    import httpx

    body = httpx.post(serving.server.base_url + "/embeddings",
                      json={"model": E5, "input": "hello", "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-3


def test_embeddings_token_arrays_query_prefix_and_service_api(serving):
    from tuneforge.data.tokens import get_openai_encoding
    from tuneforge.inference.embeddings import embed_passages, embed_query

    client = serving.client()
    text = "Where is the library?"
    tokens = get_openai_encoding("cl100k_base").encode(text)
    by_tokens = client.embeddings.create(model=E5, input=[tokens], encoding_format="float").data[0].embedding
    by_text = client.embeddings.create(model=E5, input=text, encoding_format="float").data[0].embedding
    assert np.allclose(by_tokens, by_text, atol=1e-6)
    assert np.allclose(by_text, embed_passages([text])[0], atol=1e-5)
    query = client.embeddings.create(model=E5, input=text, encoding_format="float",
                                     extra_body={"input_type": "query"}).data[0].embedding
    assert np.allclose(query, embed_query(text), atol=1e-5)
    assert not np.allclose(query, by_text, atol=1e-3)
    prefixed = client.embeddings.create(model=E5, input="query: " + text, encoding_format="float").data[0].embedding
    assert np.allclose(prefixed, query, atol=1e-5)  # an explicit e5 prefix is honoured, not doubled


def test_embeddings_rejections(serving):
    client = serving.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=E5, input="x", dimensions=128)
    assert err.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=E5, input=["ok", ""])
    with pytest.raises(openai.NotFoundError) as err:
        client.embeddings.create(model=TINY, input="x")
    assert err.value.code == "model_not_found"


def test_models_list_includes_embeddings_and_async_embeddings(serving):
    client = serving.client()
    ids = [m.id for m in client.models.list()]
    assert E5 in ids and TINY in ids and FT_RED in ids
    assert client.models.retrieve(E5).model_extra["tuneforge"]["dimensions"] == 384

    async def main():
        return await serving.async_client().embeddings.create(model=E5, input=["a", "b"])

    assert len(asyncio.run(main()).data) == 2
