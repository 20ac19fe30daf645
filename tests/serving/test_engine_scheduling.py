"""Scheduling and cache paths of the engine against the plain ones, greedy tokens compared exactly:

* prefill in groups (``Engine(prefill_tokens=...)``), shortest prompts first, against one pass for
  every newcomer and against decoding each request alone — rows of different lengths, mixed adapters,
  n > 1, a second wave joining a running batch — and the short prompts' first tokens really come out
  before the long prompts are prefilled;
* the KV cache with head-room (``Engine(kv_headroom=True)``, decode steps write in place) against the
  concatenating ``DynamicLayer``, through the engine and layer by layer."""

from __future__ import annotations

import pytest
from serving_support import TINY

TEXTS = ["Hi", "The quick brown fox jumps over the lazy dog. The quick brown fox", "0 1 2 3 4 5 6 7",
         "我们的产品支持中文和英文。", "Fine-tuning adapts a pretrained model", "Tell me a story about a cat",
         "ok", "Numbers: 3 1 4 1 5 9 2 6 5 3 5 8 9 7 9"]


@pytest.fixture(scope="module")
def registry(tiny_model_dir, tmp_path_factory):
    from tuneforge.settings import Settings
    from tuneforge.testing import migrated_registry

    root = tmp_path_factory.mktemp("scheduling")
    registry = migrated_registry(Settings(data_dir=root / "data", models_cache_dir=root / "cache"),
                                 {TINY: str(tiny_model_dir)})
    yield registry
    registry.db.dispose()


PREAMBLE = "You are a careful assistant. Answer briefly, in plain words, and never make anything up. "


def _requests(registry, adapters, texts=TEXTS):
    from tuneforge.inference.batch import GenerationRequest
    from tuneforge.inference.engine import Engine
    from tuneforge.inference.sampling import SamplingParams

    tokenizer = Engine(registry).info(TINY).tokenizer
    choices = [None, adapters["red"], adapters["blue"]]
    out = []
    for i, text in enumerate(texts):
        # rows finish at different steps; the longest outgrows the cache's first head-room (16 columns)
        params = SamplingParams(max_tokens=40 if i == 1 else 6 + 3 * (i % 4), temperature=0)
        out.append(GenerationRequest(TINY, choices[i % 3], tokenizer(text, add_special_tokens=False).input_ids,
                                     params, n=2 if i == 4 else 1))
    return out


def _run(registry, requests, model=TINY, **engine_options):
    """Wave one (six requests) arrives together; wave two joins after three decode steps. The engine's
    steps run here, on the test's thread (no engine thread), so arrivals are exactly where we put them.
    Returns each request's choice texts and the number of prefill passes done when its first token left."""
    from tuneforge.inference.batch import Delta, Finish, RequestHandle
    from tuneforge.inference.engine import Engine

    engine = Engine(registry, max_batch_size=16, max_adapters=4, **{"prefix_cache_mb": 0, **engine_options})
    texts = [dict() for _ in requests]
    first_at: list[int | None] = [None] * len(requests)

    def sink(i):
        def on_event(event):
            if isinstance(event, Delta) and first_at[i] is None:
                first_at[i] = engine.stats.prefills
            if isinstance(event, Finish):
                texts[i][event.index] = event.text
        return on_event

    for i in range(6):
        engine._accept(RequestHandle(requests[i], sink(i)))
    base = engine._bases[model]
    steps = 0
    while base.busy:
        engine._step_safely(base)
        steps += 1
        if steps == 3:
            for i in range(6, len(requests)):
                engine._accept(RequestHandle(requests[i], sink(i)))
    assert engine.stats.requests_failed == 0
    return [[t[k] for k in sorted(t)] for t in texts], first_at, engine.stats.snapshot()


def _solo(registry, requests, **engine_options) -> list[list[str]]:
    """Each request alone on a fresh engine's public API, one after the other (no batching at all)."""
    from tuneforge.inference.engine import Engine

    engine = Engine(registry, max_batch_size=16, max_adapters=4, **engine_options)
    try:
        solo = []
        for request in requests:
            choices = {}
            for event in engine.generate(request, timeout=120):
                if hasattr(event, "reason"):
                    choices[event.index] = event.text
            solo.append([choices[i] for i in sorted(choices)])
    finally:
        engine.shutdown()
    return solo


def test_grouped_prefill_gives_the_tokens_of_one_pass_and_of_solo_decoding(registry, tiny_adapters):

    requests = _requests(registry, tiny_adapters)
    one_pass, _, stats_one = _run(registry, requests, prefill_tokens=0)
    grouped, first_at, stats_grouped = _run(registry, requests, prefill_tokens=24)
    assert grouped == one_pass
    solo = _solo(registry, requests)
    assert grouped == solo
    assert len({t for choice in solo for t in choice}) > 3  # the prompts really give different answers
    assert grouped[4][0] == grouped[4][1]  # n=2 greedy: both choices alike
    # the budget really split the newcomers, and into more passes than the one-pass engine made
    assert stats_grouped["prefills"] > stats_one["prefills"]
    assert stats_grouped["merges"] > stats_one["merges"]
    # wave one: the shortest prompt ("Hi") streamed its first token before the longest one was prefilled
    assert first_at[0] < first_at[1]


def test_prefill_groups_respect_the_budget_keep_choices_together_and_put_short_prompts_first(registry):
    from tuneforge.inference.batch import GenerationRequest, RequestHandle, Row
    from tuneforge.inference.prefill import prefill_groups
    from tuneforge.inference.sampling import SamplingParams

    def rows(length, n=1, priority=0):
        handle = RequestHandle(GenerationRequest(TINY, None, [1] * length, SamplingParams(max_tokens=1), n=n,
                                                 priority=priority), lambda ev: None)
        return [Row(handle, i, "", None, None, None, pos=length) for i in range(n)]

    background = rows(3, priority=1)
    newcomers = [*rows(30), *rows(10, n=3), *rows(5), *background, *rows(50), *rows(12)]
    groups = prefill_groups(newcomers, 40)
    lengths = [[len(r.handle.request.prompt_ids) for r in group] for group in groups]
    assert lengths == [[5, 10, 10, 10], [12], [30], [50], [3]]  # 4 x 10 fits 40; 50 alone; background last
    for group in groups:
        assert len(group) == 1 or len(group) * max(len(r.handle.request.prompt_ids) for r in group) <= 40
    assert sorted(map(id, (r for g in groups for r in g))) == sorted(map(id, newcomers))
    assert prefill_groups(newcomers, 0) == [newcomers]


def test_kv_headroom_gives_the_tokens_of_the_concatenating_cache(registry, tiny_adapters):
    requests = _requests(registry, tiny_adapters)
    roomy, _, _ = _run(registry, requests, prefill_tokens=24, kv_headroom=True)
    plain, _, _ = _run(registry, requests, prefill_tokens=24, kv_headroom=False)
    assert roomy == plain


def test_roomy_layer_holds_what_concatenation_holds_across_growth_merges_and_drops():
    import torch
    from transformers.cache_utils import DynamicCache, DynamicLayer

    from tuneforge.inference.batch import Batch

    torch.manual_seed(0)
    cache = DynamicCache()
    cache.layers = [DynamicLayer()]
    Batch.give_room(cache)
    layer = cache.layers[0]
    assert type(layer) is not DynamicLayer and Batch.mergeable(cache)
    keys = values = None
    buffers = set()
    for step in range(60):
        if step == 20:  # Batch.keep: rows dropped, tensors replaced by indexing
            layer.keys, layer.values = layer.keys[[0, 2]], layer.values[[0, 2]]
            keys, values = keys[[0, 2]], values[[0, 2]]
        rows, width = (3 if step < 20 else 2), (7 if step == 0 else 1)
        k, v = torch.randn(rows, 2, width, 4), torch.randn(rows, 2, width, 4)
        got_k, got_v = layer.update(k, v)
        keys = k if keys is None else torch.cat([keys, k], dim=-2)
        values = v if values is None else torch.cat([values, v], dim=-2)
        assert torch.equal(got_k, keys) and torch.equal(got_v, values)
        assert layer.get_seq_length() == keys.shape[-2]
        buffers.add(layer._room[0].data_ptr())
    assert 2 < len(buffers) < 20  # it grew in chunks (and after the drop), not on every step


def test_prefix_cache_gives_the_tokens_of_full_prefills(registry, tiny_adapters):
    """Prompts sharing a long preamble: later passes take it from the cache (per adapter) and prefill only
    the rest; the tokens are those of engines without the cache, batched and one request at a time."""

    requests = _requests(registry, tiny_adapters, [PREAMBLE + t for t in TEXTS])
    cached, _, stats = _run(registry, requests, prefill_tokens=64, prefix_cache_mb=8)
    plain, _, plain_stats = _run(registry, requests, prefill_tokens=64)
    assert stats["prefix_tokens_reused"] > 0 and plain_stats["prefix_tokens_reused"] == 0
    assert cached == plain
    solo = _solo(registry, requests, prefix_cache_mb=0)
    assert cached == solo
    assert len({t for choice in solo for t in choice}) > 3


def test_prefix_cache_matches_per_adapter_within_its_budget():
    import torch
    from transformers.cache_utils import DynamicCache

    from tuneforge.inference.prefill import MIN_REUSE, PrefixCache

    def cache_of(rows, width):  # 2 layers, values = position, so the columns taken can be checked
        col = torch.arange(width, dtype=torch.float32).view(1, 1, width, 1).expand(rows, 2, width, 4).clone()
        return DynamicCache([(col, col + 100), (col, col + 100)])

    shared = list(range(1, 31))
    prompts = [shared + [40, 41], shared[:20] + [50] * 12]
    mask = torch.ones(2, 32, dtype=torch.long)
    prefixes = PrefixCache(budget_bytes=10**6)
    prefixes.store(["a", "a"], prompts, cache_of(2, 32), mask)
    assert len(prefixes) == 2
    reuse, entries = prefixes.plan(["a", "a"], [shared + [60], shared[:25] + [61, 62]])
    assert reuse == 25  # the common length of every row's best match
    past = PrefixCache.past(entries, reuse)
    assert past.layers[0].keys.shape == (2, 2, 25, 4)
    assert torch.equal(past.layers[1].values[1, 0, :, 0], torch.arange(25, dtype=torch.float32) + 100)
    assert prefixes.plan(["b"], [shared + [60]]) == (0, None)  # another adapter's KV is never used
    assert prefixes.plan(["a"], [shared[:MIN_REUSE - 1] + [70] * 20]) == (0, None)  # too short to bother
    assert prefixes.plan(["a"], [shared + [40, 41]])[0] == len(shared) + 1  # one token is always prefilled
    small = PrefixCache(budget_bytes=2 * 32 * 2 * 2 * 4 * 4 * 1.5)  # room for one prompt, not two
    small.store(["a", "a"], prompts, cache_of(2, 32), mask)
    assert len(small) == 1 and small.used <= small.budget


@pytest.mark.slow
def test_new_paths_give_smollm2_the_greedy_tokens_of_the_old_ones(make_settings, tmp_path):
    """The bundled real model (positions and context matter to it, unlike the random tiny model): chat
    prompts sharing the template's system prompt, one with a LoRA adapter, two waves, n=2 — grouped
    prefill, prefix cache and KV head-room together give the tokens of one pass with none of them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tuneforge.inference.batch import GenerationRequest
    from tuneforge.inference.sampling import SamplingParams
    from tuneforge.testing import migrated_registry

    model_name = "smollm2-135m-instruct"
    registry = migrated_registry(make_settings())
    try:
        path = registry.materialize(model_name)
        torch.manual_seed(0)
        peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(
            r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"))
        peft_model.save_pretrained(tmp_path / "lora")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        questions = ["What is the capital of France?", "Name three colours.", "Count to five.",
                     "What do bees make?", "Why is the sea salty? Explain it to a child.", "Say hello.",
                     "What is two plus two?", "Describe a cat in one sentence."]
        requests = []
        for i, question in enumerate(questions):
            text = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                 tokenize=False)
            ids = tokenizer(text, add_special_tokens=False).input_ids
            requests.append(GenerationRequest(model_name, tmp_path / "lora" if i % 3 == 1 else None, ids,
                                              SamplingParams(max_tokens=6 + 2 * (i % 3), temperature=0),
                                              n=2 if i == 4 else 1))
        old, _, _ = _run(registry, requests, model_name, prefill_tokens=0, kv_headroom=False)
        new, _, stats = _run(registry, requests, model_name, prefill_tokens=80, prefix_cache_mb=16)
        assert stats["prefix_tokens_reused"] > 0 and stats["prefills"] > 2
        assert new == old
        assert len({t for choice in old for t in choice}) > 4
    finally:
        registry.db.dispose()
