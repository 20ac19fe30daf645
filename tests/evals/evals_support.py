"""Helpers of the evals tests: the tiny random model registered as ``tiny-chat``."""

from __future__ import annotations

TINY = "tiny-chat"


def register_tiny(settings, tiny_model_dir) -> None:
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.projects import get_or_create_project

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        ModelRegistry(settings, db).register(TINY, str(tiny_model_dir), None)
        with db.session() as session:
            get_or_create_project(session, "default")
            get_or_create_project(session, "other")
    finally:
        db.dispose()
