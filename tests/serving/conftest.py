"""Serving fixtures: two LoRA adapters trained on the tiny model, and a real uvicorn serving them.

The adapters are trained for a few steps on one question each, so they answer it differently and
deterministically ("My favourite colour is red." vs "Blue, like the sky!"); training the norm layers
too (``modules_to_save``) is what lets a random base learn that fast, and exercises per-row routing of
fully trained modules in mixed batches.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from serving_support import (  # noqa: E402
    ANSWERS,
    FT_BLUE,
    FT_OTHER,
    FT_RED,
    FT_TEMPLATED,
    SYSTEM_TEMPLATE,
    TINY,
    Server,
    train_adapter,
)


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    out = {name: train_adapter(tiny_model_dir, answer, root / name) for name, answer in ANSWERS.items()}
    templated = root / "templated"
    shutil.copytree(out["red"], templated)
    (templated / "chat_template.jinja").write_text(SYSTEM_TEMPLATE)
    out["templated"] = templated
    return out


def register_models(settings, tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    from tuneforge.db.session import Database
    from tuneforge.models import catalog
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.projects import get_or_create_project

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        registry = ModelRegistry(settings, db)
        registry.register(TINY, str(tiny_model_dir), None)
        registry.register(TINY + "-2", str(tiny_model_dir), None)  # a second base (same files) for LRU tests
        with db.session() as session:
            default = get_or_create_project(session, "default")
            other = get_or_create_project(session, "other")
            for model_id, name, project in ((FT_RED, "red", default), (FT_BLUE, "blue", default),
                                            (FT_TEMPLATED, "templated", default), (FT_OTHER, "blue", other)):
                catalog.register_fine_tuned(session, model_id=model_id, project_id=project.id, base_model=TINY,
                                            adapter_dir=adapters[name], settings=settings)
    finally:
        db.dispose()


@dataclass
class Env:
    server: object
    settings: object
    extra: dict = field(default_factory=dict)

    @property
    def engine(self):

        return self.server.app.state.tuneforge.engine  # the server's engine, created on first use

    def client(self, **kwargs):
        from openai import OpenAI

        return OpenAI(base_url=self.server.base_url, api_key="sk-test", max_retries=0, **kwargs)

    def async_client(self, **kwargs):
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.server.base_url, api_key="sk-test", max_retries=0, **kwargs)


@pytest.fixture(scope="module")
def serving(tmp_path_factory, models_cache, tiny_model_dir, tiny_adapters):
    """One real uvicorn per test module, with the tiny base and its adapters registered."""
    from tuneforge.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("serving") / "data", models_cache_dir=models_cache,
                        serve_max_adapters=2)
    register_models(settings, tiny_model_dir, tiny_adapters)
    server = Server(settings).start()
    try:
        yield Env(server, settings)
    finally:
        server.stop()
