"""Batched LoRA (inference/lora_batch.py) against peft: the same logits as peft's ordinary forward with
each row's adapter active, for every mix of adapters, and the same greedy tokens through the engine as
peft's mixed-batch loop (``Engine(batched_lora=False)``).

The adapters have random (not zero) B matrices so each one really changes the output, different ranks,
different target modules, and one trains the norm layers (``modules_to_save``, routed row-wise)."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest
from serving_support import TINY

ADAPTERS = {  # name: (rank, alpha, target modules, modules_to_save)
    "r8-all": (8, 16, "all-linear", None),
    "r4-qv": (4, 8, ["q_proj", "v_proj"], None),
    "r16-mlp": (16, 8, ["gate_proj", "up_proj", "down_proj"], None),
    "r8-norms": (8, 16, "all-linear", ["input_layernorm", "post_attention_layernorm", "norm"]),
}


@pytest.fixture(scope="module")
def random_adapters(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("random-adapters")
    out = {}
    for i, (name, (rank, alpha, targets, to_save)) in enumerate(ADAPTERS.items()):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets,
                                                      modules_to_save=to_save, init_lora_weights=False,
                                                      task_type="CAUSAL_LM"))
        with torch.no_grad():
            for pname, param in peft_model.named_parameters():
                if "lora_" in pname:
                    param.normal_(0, 0.05)
                elif "modules_to_save" in pname:
                    param.mul_(1.5)
        peft_model.save_pretrained(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def pool(tiny_model_dir, random_adapters):
    import torch
    from transformers import AutoModelForCausalLM

    from tuneforge.inference.adapters import AdapterPool
    from tuneforge.inference.engine import EngineStats

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    pool = AdapterPool(model, capacity=8, stats=EngineStats())
    names = {key: pool.acquire(path) for key, path in random_adapters.items()}
    return pool, names


MIXES = [
    ["r8-all", "r4-qv", None, "r16-mlp", "r8-norms", "r8-all"],  # every kind, base rows, uneven groups
    ["r4-qv"] * 4,  # one adapter for every row (the no-gather path)
    [None, None, None],  # adapters loaded, but a base-only batch
    ["r8-norms", None, "r8-norms", "r16-mlp"],
    ["r16-mlp", "r8-all", "r4-qv", "r8-all", "r16-mlp"],  # several adapters, no base row (gather back)
]


def _batched_against_peft(pool, names, mix, shape, tokenizer):
    """(batched logits, peft's logits with each row's adapter active, base logits) for one pass."""
    import torch

    from tuneforge.inference.adapters import BASE
    from tuneforge.inference.batch import left_pad

    texts = ["hello there", "What is your favourite colour?", "a b c d e f g", "tell me a story",
             "one", "The quick brown fox jumps over the lazy dog"]
    prompts = [tokenizer(texts[i % len(texts)], add_special_tokens=False).input_ids for i in range(len(mix))]
    ids, mask, positions = left_pad(prompts, tokenizer.pad_token_id or 0, torch.device("cpu"))
    if shape == "decode":  # one token per row, as a decode step feeds (no KV cache needed to compare)
        ids, mask, positions = ids[:, -1:], mask[:, -1:], positions[:, -1:]
    rows = [names[m] if m else BASE for m in mix]
    model, inputs = pool.model, dict(input_ids=ids, attention_mask=mask, position_ids=positions)
    with torch.inference_mode():
        # The reference: peft's ordinary forward with one adapter active at a time, rows picked out.
        expected = torch.empty(len(mix), ids.shape[1], model.config.vocab_size)
        for name in set(rows):
            picked = [r for r, n in enumerate(rows) if n == name]
            if name == BASE:
                with model.disable_adapter():
                    expected[picked] = model(**inputs).logits[picked]
            else:
                model.set_adapter(name)
                expected[picked] = model(**inputs).logits[picked]
        with pool.router.routing(rows, ids.device):
            got = pool.model.get_base_model()(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        with pool.router.routing([BASE] * len(mix), ids.device):
            plain = pool.model.get_base_model()(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    return got, expected, plain


@pytest.fixture(params=["fused", "bmm"])
def kernel(request, pool):
    """Decode steps through the fused kernel (the default) or the batched matmuls (where numba is missing)."""
    router = pool[0].router
    assert router.kernel is not None, "the fused LoRA kernel did not load (numba is in the [serve] extra)"
    saved = router.kernel
    if request.param == "bmm":
        router.kernel = None
    try:
        yield request.param
    finally:
        router.kernel = saved


@pytest.mark.parametrize("shape", ["prefill", "decode"])  # many tokens per row, or one as in a decode step
@pytest.mark.parametrize("mix", MIXES, ids=["mixed", "single", "base-only", "norms", "no-base"])
def test_batched_lora_logits_match_peft(pool, mix, shape, kernel, tiny_model_dir):
    import torch
    from transformers import AutoTokenizer

    pool, names = pool
    calls = pool.router.fused_calls
    got, expected, plain = _batched_against_peft(pool, names, mix, shape, AutoTokenizer.from_pretrained(tiny_model_dir))
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
    # the kernel runs exactly where it should: decode steps mixing adapters, on its own side of the fixture
    mixing = len({m for m in mix if m}) > 1 or (None in mix and any(mix))
    assert (pool.router.fused_calls > calls) == (kernel == "fused" and shape == "decode" and mixing)
    for r, m in enumerate(mix):  # the adapters really act (else the comparison above proves little)
        if m is not None:
            assert (expected[r] - plain[r]).abs().max() > 1e-2


def test_fused_kernel_matches_the_arithmetic_it_replaces():
    """The kernel alone, on shapes the model tests do not reach: a rank that is no multiple of four, a stacked
    adapter no row uses (skipped), base rows (left alone), groups of one and of three rows."""
    import numpy as np
    import torch

    from tuneforge.inference.adapters import BASE
    from tuneforge.inference.lora_batch import make_plan
    from tuneforge.inference.lora_kernel import load

    fused = load()
    assert fused is not None
    gen = torch.Generator().manual_seed(0)
    names = ["b", BASE, "a", "b", "b", BASE, "a"]
    stacked = ("a", "unused", "b")
    plan = make_plan(names, "cpu")
    for rank in (5, 16):
        x = torch.randn(len(names), 40, generator=gen)
        a = torch.randn(len(stacked), 40, rank, generator=gen)
        b = torch.randn(len(stacked), rank, 24, generator=gen)
        base = torch.randn(len(names), 24, generator=gen)
        expected = base.clone()
        for row, name in enumerate(names):
            if name != BASE:
                u = stacked.index(name)
                expected[row] += x[row] @ a[u] @ b[u]
        b[1] = float("nan")  # were the unused adapter computed, its NaNs would show
        got = base.clone()
        starts, order = plan.grouping(stacked)
        assert list(starts) == [0, 2, 2, 5] and sorted(order) == [0, 2, 3, 4, 6]
        fused(x.numpy(), got.numpy(), a.numpy(), b.numpy(), starts, order)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
        assert np.array_equal(got[[1, 5]].numpy(), base[[1, 5]].numpy())


def test_decode_stacks_grow_with_the_batch_and_serve_its_changing_mixes(pool, tiny_model_dir):
    """As streams with other adapters join and leave a running batch, a layer's decode stack grows
    instead of being rebuilt for each mix (a prefill pass adds its newcomers), smaller mixes run on it
    (groups of absent adapters computed and dropped), prefill passes over some of its adapters take their
    slices, and every pass matches peft."""
    import torch
    from transformers import AutoTokenizer

    from tuneforge.inference.lora_batch import SHRINK_AFTER

    pool, names = pool
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    layer = pool.model.get_base_model().model.layers[0].self_attn.q_proj
    pool.router.drop_stacks(pool.model)
    pool.router.oversized_steps = 0
    steps = [  # (mix, shape, the layer's stack afterwards)
        (["r8-all", None, "r4-qv"], "decode", ("r8-all", "r4-qv")),
        (["r16-mlp", "r4-qv", "r8-norms"], "prefill", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),  # grown
        (["r8-all", "r16-mlp", "r4-qv", "r8-norms"], "decode", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),
        (["r4-qv", "r8-all", None], "decode", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),  # 2 of 4: kept
        (["r8-norms", "r4-qv", "r4-qv"], "prefill", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),  # slices
        (["r8-norms", "r8-norms"], "decode", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),  # one adapter: own weights
        (["r8-norms", "r16-mlp"], "decode", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),
        (["r16-mlp", "r8-norms", None], "decode", ("r8-all", "r4-qv", "r16-mlp", "r8-norms")),
    ]
    for mix, shape, stacked in steps:
        got, expected, plain = _batched_against_peft(pool, names, mix, shape, tokenizer)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
        assert layer._tf_stack[0] == tuple(names[n] for n in stacked), (mix, shape)
    # A mix needing fewer than half of the stacked adapters runs on the big stack for SHRINK_AFTER decode
    # steps (a ramp-up passes), then gets a stack of its own.
    for step in range(SHRINK_AFTER + 1):
        got, expected, _ = _batched_against_peft(pool, names, ["r4-qv", None, "r4-qv"], "decode", tokenizer)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)
        assert len(layer._tf_stack[0]) == (4 if step < SHRINK_AFTER else 1), step
    assert layer._tf_stack[0] == (names["r4-qv"],)


def test_engine_batched_lora_gives_peft_greedy_tokens(tiny_model_dir, random_adapters, tmp_path):
    """16 concurrent greedy requests over all adapters and the bare base: the engine's batched path and
    peft's per-adapter loop produce the same tokens."""
    from tuneforge.inference.batch import Delta, Finish, GenerationRequest
    from tuneforge.inference.engine import Engine
    from tuneforge.inference.sampling import SamplingParams
    from tuneforge.settings import Settings
    from tuneforge.testing import migrated_registry

    registry = migrated_registry(Settings(data_dir=tmp_path / "data", models_cache_dir=tmp_path / "cache"),
                                 {TINY: str(tiny_model_dir)})
    choices = [None, *random_adapters.values()]
    results = {}
    try:  # the fused kernel (default), the batched matmuls, peft's loop
        for batched, fused in ((True, True), (True, False), (False, False)):
            engine = Engine(registry, max_batch_size=16, max_adapters=8, batched_lora=batched, fused_lora=fused)
            tokenizer = engine.info(TINY).tokenizer
            outputs = []
            for i in range(16):  # submitted together: admitted into one batch, decoded side by side
                prompt = tokenizer(f"request {i}: tell me something {'long ' * (i % 5)}",
                                   add_special_tokens=False).input_ids
                request = GenerationRequest(TINY, choices[i % len(choices)], prompt,
                                            SamplingParams(max_tokens=12, temperature=0))
                events: queue.Queue = queue.Queue()
                engine.submit(request, events.put)
                outputs.append(events)
            texts = []
            for events in outputs:
                text = ""
                while not isinstance(event := events.get(timeout=120), Finish):
                    assert isinstance(event, Delta), event
                    text += event.text
                texts.append(text)
            assert engine.stats.max_batch > 1  # the requests really shared passes
            assert (engine._bases[TINY].pool.router.fused_calls > 0) == fused
            results[batched, fused] = texts
            engine.shutdown()
    finally:
        registry.db.dispose()
    assert results[True, True] == results[True, False] == results[False, False]
    assert len(set(results[True, True])) > 1


@pytest.mark.parametrize("shape", ["prefill", "decode"])
def test_batched_lora_on_packed_onednn_weights_matches_peft_on_dense_ones(pool, random_adapters, tiny_model_dir,
                                                                         shape):
    """The engine's oneDNN layers with packed weight copies under the adapters (peft wraps them as base
    layers): the batched logits of a mixed batch equal peft's on the plain model to float rounding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.inference.adapters import AdapterPool
    from tuneforge.inference.engine import EngineStats
    from tuneforge.inference.onednn import onednn_available, packing_available, use_onednn_linears

    if not (onednn_available() and packing_available()):
        pytest.skip("this torch build cannot pack oneDNN weights")
    dense_pool, dense_names = pool
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert use_onednn_linears(model, packed=True).packed > 0
    packed_pool = AdapterPool(model, capacity=8, stats=EngineStats())
    names = {key: packed_pool.acquire(path) for key, path in random_adapters.items()}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    mix = MIXES[0]
    got, _, plain = _batched_against_peft(packed_pool, names, mix, shape, tokenizer)
    _, expected, _ = _batched_against_peft(dense_pool, dense_names, mix, shape, tokenizer)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert (got - plain).abs().max() > 1e-2
