"""Evals fixtures: settings with the tiny random model registered as ``tiny-chat`` (a servable model
that judges, samples and answers batch lines fast)."""

from __future__ import annotations

import pytest
from evals_support import register_tiny


@pytest.fixture
def tiny_settings(make_settings, tiny_model_dir):
    settings = make_settings(serve_default_max_tokens=16)
    register_tiny(settings, tiny_model_dir)
    return settings
