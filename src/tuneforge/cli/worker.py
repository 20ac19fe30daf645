"""`tuneforge worker`: a standalone training worker (the server runs one in-process by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def worker(concurrency: Annotated[int | None, typer.Option(help="Jobs at once [env: TUNEFORGE_WORKER_CONCURRENCY]")]
           = None,
           data_dir: Annotated[Path | None, typer.Option(help="Data folder [env: TUNEFORGE_DATA_DIR]")] = None,
           log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING")] = None) -> None:
    """Run queued fine-tuning jobs from the database until stopped (Ctrl-C saves and requeues them).

    Run any number of workers against the same database (`TUNEFORGE_DATABASE_URL` for PostgreSQL);
    start the server with `TUNEFORGE_WORKER_IN_PROCESS=false` to leave training to them.
    """
    from tuneforge.logging_setup import configure_logging
    from tuneforge.settings import Settings
    from tuneforge.training.worker import run_standalone

    overrides = {k: v for k, v in {"data_dir": data_dir, "log_level": log_level,
                                    "worker_concurrency": concurrency}.items() if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    run_standalone(settings)
