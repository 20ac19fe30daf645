"""Loss masks, refusals of silently broken data, batching and auto hyperparameters (no training)."""

from __future__ import annotations

import pytest
from helpers import chat_lines, dpo_lines

from tuneforge.training import store
from tuneforge.training.config import (
    BASE_LEARNING_RATE,
    auto_batch_size,
    auto_lr_multiplier,
    resolve_hyperparameters,
    small_set_boost,
)
from tuneforge.training.data import (
    IGNORE,
    ChatFormat,
    TrainingDataError,
    epoch_batches,
    micro_batches,
    prepare_dpo,
    prepare_sft,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def trained_text(tok, enc) -> str:
    return tok.decode([i for i, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE])


def test_mask_covers_assistant_answers_and_end_of_turn_only(tokenizer):
    fmt = ChatFormat.probe(tokenizer)
    assert fmt.eot_token == "<|im_end|>"
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Skipped answer", "weight": 0},
            {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Trained answer 你好"}]
    enc = fmt.encode(msgs, max_len=512)
    assert trained_text(tokenizer, enc) == "Trained answer 你好<|im_end|>"
    # labels are the input ids themselves where trained (the shift happens in the loss)
    assert all(lab in (IGNORE, tid) for tid, lab in zip(enc.input_ids, enc.labels, strict=True))
    assert enc.labels[-1] == IGNORE  # the newline after <|im_end|> is template glue
    both = fmt.encode([m | {"weight": 1} if m["role"] == "assistant" else m for m in msgs], max_len=512)
    assert trained_text(tokenizer, both) == "Skipped answer<|im_end|>Trained answer 你好<|im_end|>"
    assert both.turns == both.turns_with_eot == 2


def test_truncation_is_reported(tokenizer):
    fmt = ChatFormat.probe(tokenizer)
    long = [{"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}]
    prepared = prepare_sft(fmt, chat_lines() + long, max_len=8192)
    assert prepared.truncated == 0
    limit = max(len(e.input_ids) for e in prepare_sft(fmt, chat_lines(), max_len=8192).examples)
    prepared = prepare_sft(fmt, chat_lines() + long, max_len=limit)
    assert prepared.truncated == 1 and prepared.dropped == 1  # its answer was cut off entirely
    assert any("truncated" in w for w in prepared.warnings)
    assert all(len(e.input_ids) <= limit for e in prepared.examples)


def test_refuses_when_every_label_is_masked(tokenizer):
    fmt = ChatFormat.probe(tokenizer)
    rows = chat_lines()
    for r in rows:
        r["messages"][-1]["weight"] = 0
    with pytest.raises(TrainingDataError, match="Every label"):
        prepare_sft(fmt, rows, max_len=512)


def test_refuses_a_template_without_an_end_of_turn_token(tokenizer):
    plain = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}" \
            "{% if add_generation_prompt %}assistant: {% endif %}"
    fmt = ChatFormat.probe(tokenizer, plain)
    assert fmt.eot_id is None
    with pytest.raises(TrainingDataError, match="end-of-turn"):
        prepare_sft(fmt, chat_lines(), max_len=512)


def test_refuses_a_template_that_hides_the_end_of_turn_token(tokenizer):
    # The answer is followed by <|im_end|> only on the *last* turn (a common template bug): the
    # incremental render then disagrees with the whole conversation and the trainer says so.
    odd = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
           "{% if loop.last %}<|im_end|>{% endif %}\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fmt = ChatFormat.probe(tokenizer, odd)
    two_turns = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                               {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}] * 10
    with pytest.raises(TrainingDataError):
        prepare_sft(fmt, two_turns, max_len=512)


def test_dpo_pairs_train_only_the_final_answers(tokenizer):
    fmt = ChatFormat.probe(tokenizer)
    pairs, flat = prepare_dpo(fmt, dpo_lines(), max_len=512)
    assert len(pairs) == 12 and len(flat.examples) == 24
    assert trained_text(tokenizer, pairs[0].chosen) == "My name is Forge.<|im_end|>"
    assert trained_text(tokenizer, pairs[0].rejected) == "I do not know.<|im_end|>"


def test_epoch_batches_cover_every_example_once_and_are_seeded():
    lengths = [5, 50, 7, 300, 12, 80, 9, 30, 2, 44] * 7
    a = epoch_batches(lengths, 4, seed=3, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(len(lengths)))
    assert a == epoch_batches(lengths, 4, seed=3, epoch=0)
    assert a != epoch_batches(lengths, 4, seed=3, epoch=1)
    # length grouping: padding waste is far below random batching
    def waste(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste(a) < 0.5 * sum(lengths)
    assert micro_batches([0, 1, 3], lengths, 400) == [[3], [1, 0]]


def test_auto_hyperparameters():
    assert resolve_hyperparameters({}, "supervised", 100) == {
        "n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 3.1623}  # the small-set boost, below
    assert resolve_hyperparameters({}, "supervised", 20)["n_epochs"] == 5  # OpenAI: >= 100 example visits
    assert auto_batch_size(5000) == 32 and auto_batch_size(10) == 2
    assert auto_lr_multiplier(32) == 2.0
    hp = resolve_hyperparameters({"n_epochs": 2, "batch_size": 64, "beta": "auto"}, "dpo", 12)
    assert hp == {"n_epochs": 2, "batch_size": 12, "learning_rate_multiplier": 1.2247, "beta": 0.1}  # no boost


def test_small_sets_get_a_higher_rate_and_large_sets_keep_theirs():
    """The rule of training/config.py: x sqrt(1000 / n) within [1, 5], supervised only."""
    def lr(n: int, **requested) -> float:
        return BASE_LEARNING_RATE * resolve_hyperparameters(requested, "supervised", n)["learning_rate_multiplier"]

    # ~100 examples (the README's Ember set, the support-style benchmark): 3.2x the base rate
    assert lr(94) == pytest.approx(6.5e-4, rel=0.01) and lr(96) == pytest.approx(6.45e-4, rel=0.01)
    assert lr(10) == pytest.approx(1e-3) and small_set_boost(1) == 5.0  # capped at 1e-3
    rates = [lr(n) for n in (10, 50, 100, 200, 400, 800)]
    assert rates == sorted(rates, reverse=True)  # fewer examples, bigger steps
    # From 1,000 examples on, exactly what the batch-size rule alone gave before: large sets unchanged
    for n in (1000, 2000, 5000, 100_000):
        batch = auto_batch_size(n)
        assert small_set_boost(n) == 1.0
        assert resolve_hyperparameters({}, "supervised", n)["learning_rate_multiplier"] == \
            round(min(2.0, max(1.0, (batch / 8) ** 0.5)), 4)
    assert lr(5000) == pytest.approx(4e-4)  # batch 32: 2x
    # A rate the user gives is never touched, and the boost follows a batch size the user gives
    assert resolve_hyperparameters({"learning_rate_multiplier": 1}, "supervised", 96)["learning_rate_multiplier"] == 1
    assert resolve_hyperparameters({"batch_size": 8}, "supervised", 96)["learning_rate_multiplier"] == \
        pytest.approx(3.2275, abs=1e-4)


def test_results_csv():
    csv = store.results_csv([{"step": 1, "train_loss": 2.5, "train_mean_token_accuracy": 0.25, "valid_loss": None},
                             {"step": 2, "train_loss": 2.0, "train_mean_token_accuracy": 0.5, "valid_loss": 2.1,
                              "valid_mean_token_accuracy": 0.4}])
    assert csv.splitlines() == ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
                                "1,2.5,0.25,,", "2,2,0.5,2.1,0.4"]
