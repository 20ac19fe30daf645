"""The engine's oneDNN linears (inference/onednn.py): same results as ``F.linear`` to float32 rounding,
an ordinary ``nn.Linear`` whenever gradients are on, weights and ties untouched, LoRA wrapping intact,
and on the bundled SmolLM2 the same logits and greedy tokens as before."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.inference.onednn import OneDnnLinear, onednn_available, use_onednn_linears

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear")


def _switched(linear: nn.Linear) -> nn.Linear:
    copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    copy.load_state_dict(linear.state_dict())
    use_onednn_linears(copy)
    return copy


@pytest.mark.parametrize("shape", [(1, 64), (16, 64), (2, 1, 64), (3, 17, 64)])
@pytest.mark.parametrize("bias", [True, False])
def test_inference_matches_f_linear(shape, bias):
    torch.manual_seed(0)
    plain = nn.Linear(64, 96, bias=bias)
    fast = _switched(plain)
    assert type(fast) is OneDnnLinear
    x = torch.randn(*shape)
    with torch.inference_mode():
        got, want = fast(x), plain(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_the_oneDNN_op_runs_under_inference_and_never_with_gradients(monkeypatch):
    import tuneforge.inference.onednn as onednn

    torch.manual_seed(0)
    fast = _switched(nn.Linear(8, 4))
    calls = []
    real = onednn._LINEAR
    monkeypatch.setattr(onednn, "_LINEAR", lambda *args: calls.append(1) or real(*args))
    x = torch.randn(2, 8, requires_grad=True)
    fast(x).sum().backward()  # gradients on: F.linear, so training through the layer works as before
    assert calls == [] and fast.weight.grad is not None
    torch.testing.assert_close(x.grad, fast.weight.sum(0).expand(2, 8))
    with torch.no_grad():
        fast(x)
    with torch.inference_mode():
        fast(x.detach())
    assert calls == [1, 1]


@pytest.mark.parametrize("shape", [(1, 64), (16, 64), (3, 17, 64), (2, 64, 64)])
def test_a_packed_weight_gives_f_linears_results_until_the_weight_changes(shape):
    torch.manual_seed(0)
    plain = nn.Linear(64, 96)
    fast = nn.Linear(64, 96)
    fast.load_state_dict(plain.state_dict())
    switched = use_onednn_linears(fast, packed=True)
    assert (switched.linears, switched.packed, switched.packed_bytes) == (1, 1, 96 * 64 * 4)
    assert fast._tf_packed is not None and fast._tf_packed.is_mkldnn
    x = torch.randn(*shape)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # changed in place (a merged adapter would): the stale packed copy is not used
        fast.weight.mul_(2)
        plain.weight.mul_(2)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    assert fast._tf_packed is None
    fast.pack()  # a new weight assigned, at the same version count: the copy of the old one is not used
    replacement = nn.Parameter(plain.weight.detach() * 3)
    with torch.no_grad():
        while replacement._version < fast._tf_packed_version:
            replacement.add_(0)
    fast.weight = replacement
    assert fast.weight._version == fast._tf_packed_version
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), F.linear(x, plain.weight * 3, plain.bias), rtol=1e-5, atol=1e-5)
    assert fast._tf_packed is None


def test_switching_keeps_weights_ties_and_lets_peft_wrap_the_layers():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    plain = LlamaForCausalLM(config).eval()
    fast = LlamaForCausalLM(config).eval()
    fast.load_state_dict(plain.state_dict())
    linears = sum(type(m) is nn.Linear for m in fast.modules())
    assert use_onednn_linears(fast).linears == linears == 2 * 7 + 1
    assert fast.lm_head.weight is fast.model.embed_tokens.weight
    ids = torch.tensor([[5, 9, 13, 2, 70]])
    with torch.inference_mode():
        torch.testing.assert_close(fast(ids).logits, plain(ids).logits, rtol=1e-5, atol=1e-5)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    plain_lora = get_peft_model(plain, lora).eval()
    torch.manual_seed(1)
    fast_lora = get_peft_model(fast, lora).eval()
    wrapped = fast_lora.base_model.model.model.layers[0].self_attn.q_proj
    assert type(wrapped.base_layer) is OneDnnLinear
    with torch.inference_mode():
        torch.testing.assert_close(fast_lora(ids).logits, plain_lora(ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_smollm2_gives_the_logits_and_greedy_tokens_of_f_linear(make_settings):
    """The real model, 3 chat prompts, 16 greedy steps each, dense and packed weights: logits within float32
    rounding at every step and the same tokens wherever the old path's choice was not a near tie; the engine
    switches (and with the option packs) its bases' linears (the counts are in its stats)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.inference.batch import Finish, GenerationRequest
    from tuneforge.inference.engine import Engine
    from tuneforge.inference.sampling import SamplingParams
    from tuneforge.testing import migrated_registry

    registry = migrated_registry(make_settings())
    try:
        path = registry.materialize("smollm2-135m-instruct")
        tokenizer = AutoTokenizer.from_pretrained(path)
        plain = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        fast = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        assert use_onednn_linears(fast).linears == 30 * 7 + 1
        packed = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        switched = use_onednn_linears(packed, packed=True)
        assert (switched.linears, switched.packed) == (30 * 7 + 1, 30 * 7)  # the tied lm_head stays dense
        assert packed.lm_head._tf_packed is None and packed.model.layers[0].mlp.up_proj._tf_packed is not None
        compared = {"dense": 0, "packed": 0}
        for (kind, model), question in itertools.product((("dense", fast), ("packed", packed)), [
                "What is the capital of France?", "Write a haiku about rain.", "用一句话介绍你自己。"]):
            text = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                                 add_generation_prompt=True, tokenize=False)
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
            with torch.inference_mode():
                runs = [m.generate(ids, max_new_tokens=16, do_sample=False, output_logits=True,
                                   return_dict_in_generate=True) for m in (plain, model)]
            want_tokens, got_tokens = (r.sequences[0, ids.shape[1]:].tolist() for r in runs)
            for step, (want, got) in enumerate(zip(runs[0].logits, runs[1].logits, strict=True)):
                torch.testing.assert_close(got, want, rtol=0, atol=2e-3)
                top2 = want[0].topk(2).values
                if want_tokens[step] != got_tokens[step]:
                    assert top2[0] - top2[1] < 1e-2, f"{kind}, step {step}: a clear choice changed"
                    break
                compared[kind] += 1
        # 40 steps each here (the first answer ends after 8 tokens), all equal
        assert compared["dense"] >= 30 and compared["packed"] >= 30

        prompt = tokenizer("Hello", add_special_tokens=False).input_ids
        request = GenerationRequest("smollm2-135m-instruct", None, prompt, SamplingParams(max_tokens=2, temperature=0))
        for onednn, pack, switched, packs in ((True, False, 30 * 7 + 1, 0), (True, True, 30 * 7 + 1, 30 * 7),
                                              (False, True, 0, 0)):
            engine = Engine(registry, prefix_cache_mb=0, onednn=onednn, onednn_packed=pack)
            try:
                assert [e.reason for e in engine.generate(request, timeout=120) if isinstance(e, Finish)]
                assert (engine.stats.onednn_linears, engine.stats.onednn_packed_linears) == (switched, packs)
                assert (engine.stats.onednn_packed_mb > 300) is bool(packs)  # 210 projections, ~405 MB
            finally:
                engine.shutdown()
    finally:
        registry.db.dispose()
