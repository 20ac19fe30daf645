"""The engine's oneDNN linears (inference/onednn.py): same results as ``F.linear`` to float32 rounding,
an ordinary ``nn.Linear`` whenever gradients are on, weights and ties untouched, LoRA wrapping intact,
and on the bundled SmolLM2 the same logits and greedy tokens as before."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from tuneforge.inference.onednn import OneDnnLinear, Switched, onednn_available, use_onednn_linears

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
def test_a_packed_weight_replaces_the_dense_one_and_gives_f_linears_results(shape):
    import copy

    torch.manual_seed(0)
    plain = nn.Linear(64, 96)
    fast = nn.Linear(64, 96)
    fast.load_state_dict(plain.state_dict())
    assert use_onednn_linears(fast, packed=True) == Switched(linears=1, packed=1)
    assert fast.packed and fast.weight.is_mkldnn and fast.weight.shape == (96, 64)  # no dense copy beside it
    x = torch.randn(*shape)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)  # gradients on: the dense form, slow
    with pytest.raises((RuntimeError, NotImplementedError)), torch.no_grad():
        fast.weight.add_(1)  # what a LoRA merge would do: fails loudly, never computes on the packed layout
    clone = copy.deepcopy(fast)  # what peft does to a module an adapter trains fully: a dense layer
    assert type(clone) is OneDnnLinear and not clone.packed and fast.packed
    torch.testing.assert_close(clone.weight, plain.weight, rtol=0, atol=0)
    clone.load_state_dict(plain.state_dict())
    assert fast.unpack() and not fast.packed and not fast.unpack()
    torch.testing.assert_close(fast.weight, plain.weight, rtol=0, atol=0)  # the same values back, exactly
    assert use_onednn_linears(nn.Sequential(nn.Linear(4, 4)), packed=False).packed == 0
    embedding, head = nn.Embedding(50, 16), nn.Linear(16, 50, bias=False)
    head.weight = nn.Parameter(embedding.weight.data)  # a tie by shared memory under two Parameters: stays dense
    tied = nn.ModuleDict({"embedding": embedding, "head": head, "other": nn.Linear(16, 16)})
    assert use_onednn_linears(tied, packed=True) == Switched(linears=2, packed=1) and not head.packed


def test_adapters_that_read_base_weights_load_on_a_packed_base(tmp_path):
    """DoRA (its magnitude starts from the base weight's norm) and an adapter that fully trains the untied
    ``lm_head`` (peft deep-copies it): the pool makes the packed base dense for the first, the copy of a
    packed layer is dense for the second, and both give peft's logits on a plain model."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.inference.adapters import AdapterPool
    from tuneforge.inference.engine import EngineStats

    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "base")
    kinds = {"dora": dict(use_dora=True), "head": dict(modules_to_save=["lm_head"])}
    for i, (kind, extra) in enumerate(kinds.items()):
        torch.manual_seed(i + 1)
        model = get_peft_model(LlamaForCausalLM.from_pretrained(tmp_path / "base"),
                               LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **extra))
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "modules_to_save" in name:
                    param.mul_(1.5)
        model.save_pretrained(tmp_path / kind)
    ids = torch.tensor([[5, 9, 13, 2, 70]])
    for kind in ("head", "dora"):  # the head adapter first: the base is still packed when it loads
        packed = LlamaForCausalLM.from_pretrained(tmp_path / "base").eval()
        assert use_onednn_linears(packed, packed=True).packed == 2 * 7 + 1
        pool = AdapterPool(packed, capacity=4, stats=EngineStats())
        pool.acquire(tmp_path / kind)
        still_packed = packed.model.layers[0].mlp.up_proj.packed
        assert still_packed is (kind == "head")
        reference = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tmp_path / "base"), tmp_path / kind).eval()
        with torch.inference_mode():
            want = reference(ids).logits
            with reference.disable_adapter():
                assert (want - reference(ids).logits).abs().max() > 1e-3  # the adapter really acts
            torch.testing.assert_close(pool.model(ids).logits, want, rtol=1e-5, atol=1e-5)


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
        assert not packed.lm_head.packed and packed.model.layers[0].mlp.up_proj.packed
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
        for options, switched, packs in (({}, 30 * 7 + 1, 30 * 7), ({"onednn_packed": False}, 30 * 7 + 1, 0),
                                         ({"onednn": False}, 0, 0)):  # by default: switched and packed
            engine = Engine(registry, prefix_cache_mb=0, **options)
            try:
                assert [e.reason for e in engine.generate(request, timeout=120) if isinstance(e, Finish)]
                assert (engine.stats.onednn_linears, engine.stats.onednn_packed_linears) == (switched, packs)
            finally:
                engine.shutdown()
    finally:
        registry.db.dispose()


def _resident_kb(path) -> int:
    """Resident kilobytes of this process's mappings of ``path`` (Linux ``/proc/self/smaps``)."""
    from pathlib import Path

    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
def test_packing_leaves_no_dense_copy_resident(tmp_path):
    """A float32 safetensors file is mapped and its weights are views of it: after packing, the pages of the
    dense weights are handed back (never read again), so packing costs no memory beside the packed weights;
    heap memory is never touched; the logits stay the same."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.inference.onednn import _release_file_pages, file_mappings

    config = LlamaConfig(vocab_size=97, hidden_size=256, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    ids = torch.tensor([[5, 9, 13, 2, 70]])
    plain = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.inference_mode():
        want = plain(ids).logits
    model = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    file = tmp_path / "model.safetensors"
    with torch.inference_mode():
        model(ids)  # every weight read once: the file's pages are resident
    before = _resident_kb(file)
    projections_kb = sum(m.weight.numel() * 4 for m in model.modules() if type(m) is nn.Linear
                         and m is not model.lm_head) // 1024
    assert before > projections_kb  # the weights really are views of the mapped file here
    assert use_onednn_linears(model, packed=True).packed == 2 * 7
    assert _resident_kb(file) < before - 0.9 * projections_kb
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, want, rtol=1e-5, atol=1e-5)
    heap = torch.randn(1024, 1024)
    assert _release_file_pages(heap, file_mappings()) == 0 and heap.abs().sum() > 0
