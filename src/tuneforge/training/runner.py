"""The training process: ``python -m tuneforge.training.runner JOB_ID WORKER_ID``.

The worker starts one per running job, so a crash, an out-of-memory kill or a cancel (SIGKILL)
never takes the server down, and the GIL-heavy parts of training never stall the API. Settings
arrive as JSON in ``TUNEFORGE_SETTINGS_JSON``.

Exit codes: 0 the job reached a final state (succeeded or failed, written here); 3 stopped on
request (SIGUSR1 = pause, SIGTERM = worker shutting down) after saving a resume state.
A watchdog exits at once when the parent worker dies, so a SIGKILLed worker leaves no orphan
training behind; the job's lease then expires and another worker resumes it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

EXIT_STOPPED = 3
log = logging.getLogger("tuneforge.training")


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(70)
        time.sleep(0.3)


def run_job(settings, db, job_id: str, worker_id: str, stop: threading.Event, ranks=None) -> int:
    """Train the job; ``ranks`` (``training.distributed.Ranks``): this process is one rank of several
    (``training.ray_train``), and only rank 0 writes to the database and the data folder."""
    from tuneforge.data import load_chat_examples
    from tuneforge.db.models import FineTuningJobRow, Project
    from tuneforge.files import service as files_service
    from tuneforge.models import catalog
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.storage import LocalBlobStore
    from tuneforge.training import checkpoints as ck
    from tuneforge.training import store
    from tuneforge.training.config import TrainingConfig, base_learning_rate, resolve_hyperparameters
    from tuneforge.training.data import ChatFormat
    from tuneforge.training.flops import cpu_count
    from tuneforge.training.reporter import DbReporter, model_name
    from tuneforge.training.trainer import Trainer, load_model

    main = ranks is None or ranks.is_main
    registry = ModelRegistry(settings, db)
    blobs = LocalBlobStore(settings.blobs_dir)
    with db.session() as session:
        job = session.get(FineTuningJobRow, job_id)
        # several ranks: the driver checked this once (ranks deciding apart could leave one waiting for the others)
        if job is None or (ranks is None and (job.status != "running" or job.worker_id != worker_id)):
            return 0  # cancelled or taken over before we started
        project = session.get(Project, job.project_id)
        project_name = project.name if project else job.project_id
        parent_dir = None
        if job.parent_model:
            parent_dir = str(catalog.resolve(session, registry, settings, job.parent_model, job.project_id).adapter_dir)
        train_path = files_service.file_path(blobs, files_service.get_file(session, job.project_id, job.training_file))
        valid_path = (files_service.file_path(blobs, files_service.get_file(session, job.project_id,
                                                                            job.validation_file))
                      if job.validation_file else None)
    out_root = ck.job_dir(settings.data_dir, job_id)
    out_root.mkdir(parents=True, exist_ok=True)
    if main:
        rep = DbReporter(db, settings, job, project_name, worker_id, out_root)
        rep.stop = stop
    else:
        from tuneforge.training.distributed import SilentReporter

        rep = SilentReporter()
    rep.event("Fine-tuning job started.", key="started")

    # Stored uploads have no extension; training files are JSONL whatever they were called.
    train_examples = load_chat_examples(train_path, method=job.method_type, assume_jsonl=True)
    valid_examples = (load_chat_examples(valid_path, method=job.method_type, assume_jsonl=True)
                      if valid_path else [])
    hp = resolve_hyperparameters(store.loads(job.hyperparameters, {}), job.method_type, len(train_examples))

    import torch

    threads = (ranks.threads if ranks is not None else None) or settings.train_threads or cpu_count()
    torch.set_num_threads(threads)
    model_path = registry.materialize(job.base_model)
    tiny = (Path(model_path) / "tuneforge-tiny.json").is_file()
    cfg = TrainingConfig(
        job_id=job_id, method=job.method_type, base_model=job.base_model, model_path=model_path,
        parent_adapter=parent_dir, seed=int(job.seed), n_epochs=hp["n_epochs"], batch_size=hp["batch_size"],
        learning_rate_multiplier=hp["learning_rate_multiplier"],
        learning_rate=base_learning_rate(job.method_type) * hp["learning_rate_multiplier"], beta=hp.get("beta"),
        max_seq_len=settings.train_max_seq_len, n_train_examples=len(train_examples),
        n_valid_examples=len(valid_examples), threads=threads, precision=settings.train_precision)
    started = time.perf_counter()
    # Random tiny models: LoRA alone plateaus (measured: the loss stalls), so their norm layers train too.
    cfg.extra["train_norms"] = tiny
    model, tokenizer = load_model(cfg, model_path)
    template = None
    if parent_dir and (Path(parent_dir) / "chat_template.jinja").is_file():
        template = (Path(parent_dir) / "chat_template.jinja").read_text(encoding="utf-8")
    fmt = ChatFormat.probe(tokenizer, template)
    cfg.chat_template, cfg.end_of_turn_token = fmt.template, fmt.eot_token
    context = getattr(model.config, "max_position_embeddings", None)
    if context:
        cfg.max_seq_len = min(cfg.max_seq_len, int(context))
    trainer = Trainer(cfg, model, fmt, train_examples, valid_examples, rep, out_root, cache_dir=settings.data_dir /
                      "cache", micro_batch_tokens=settings.train_micro_batch_tokens, ranks=ranks)
    for i, warning in enumerate(trainer.prepared.warnings + (trainer.valid_prepared.warnings
                                                             if trainer.valid_prepared else [])):
        rep.event(warning, level="warn", key=f"data-warning:{i}")
    trainable = sum(p.numel() for p in trainer.params)
    if main:
        with db.session() as session:
            session.get(FineTuningJobRow, job_id).resolved = store.dumps(cfg.hyperparameters())
    rep.event(f"Loaded {job.base_model} in {time.perf_counter() - started:.1f} s: {trainer.n_train} training "
              f"examples ({trainer.prepared.tokens} tokens), {trainer.n_valid} validation examples, "
              f"{trainer.total_steps} steps ({cfg.n_epochs} epochs x {trainer.steps_per_epoch}), batch size "
              f"{cfg.batch_size}, learning rate {cfg.learning_rate:.2e}, {trainable:,} trainable parameters, "
              f"{threads} threads.", key="loaded", data={"hyperparameters": cfg.hyperparameters(),
                                                            "total_steps": trainer.total_steps})
    if ranks is not None:
        rep.event(f"Training on {ranks.world_size} workers (Ray Train TorchTrainer, {ranks.backend}, {threads} "
                  f"threads each): each trains on its shard of every batch of {cfg.batch_size}; gradients are summed "
                  "across them.", key="distributed",
                  data={"world_size": ranks.world_size, "backend": ranks.backend, "threads_per_worker": threads})
    resume = ck.latest_resume_point(out_root)
    if resume is not None:
        rep.event(f"Resuming from step {resume.step} ({'checkpoint' if resume.is_checkpoint else 'paused state'}).")
        if resume.is_checkpoint and main:  # re-record it, in case the process died between writing it and its row
            import torch as _t

            epoch = int(_t.load(resume.folder / ck.STATE_FILE, weights_only=False)["epoch"])
            rep.checkpoint(resume.step, epoch, resume.folder, {"step": resume.step})
    result = trainer.run(resume)
    if result.status == "stopped":
        rep.event(f"Training stopped at step {result.step}/{result.total_steps}; state saved.")
        return EXIT_STOPPED
    if not main:
        return 0

    final = ck.copy_servable(result.last_checkpoint, out_root / "final")
    name = model_name(job.base_model, project_name, job.suffix, job_id)
    stats = result.stats
    with db.session() as session:
        catalog.register_fine_tuned(session, model_id=name, project_id=job.project_id, base_model=job.base_model,
                                    adapter_dir=final, settings=settings, job_id=job_id, step=None)
        csv = store.results_csv(store.metrics_rows(session, job_id))
        result_file = files_service.create_file_from_bytes(session, blobs, project_id=job.project_id,
                                                           data=csv.encode(), filename="step_metrics.csv",
                                                           purpose="fine-tune-results")
        owned = store.release(session, job_id, worker_id, status="succeeded", fine_tuned_model=name,
                              trained_tokens=result.trained_tokens, finished_at=int(time.time()),
                              estimated_finish=None, result_files=store.dumps([result_file.id]))
        if not owned:  # cancelled meanwhile: undo what this run added
            session.rollback()
            return 0
        store.add_event(session, job_id, f"New fine-tuned model created: {name}", key="model-created")
        mfu = stats.get("mfu")
        store.add_event(session, job_id,
                        f"Training completed: {result.trained_tokens} tokens trained; this run "
                        f"{stats.get('tokens_per_second')} tokens/s"
                        + (f", MFU {mfu * 100:.1f}% of this machine's measured matmul peak "
                           f"({stats['peak_flops'] / 1e9:.0f} GFLOP/s)" if mfu is not None else "") + ".",
                        key="training-stats", data={"trained_tokens": result.trained_tokens, **stats})
        if ranks is not None:
            store.add_event(session, job_id,
                            f"Trained on {ranks.world_size} workers: examples per worker "
                            f"{stats['examples_per_rank']}, tokens per worker {stats['tokens_per_rank']}.",
                            key="distributed-stats", data={k: stats[k] for k in (
                                "world_size", "backend", "examples_per_rank", "tokens_per_rank", "shard_overlap")})
        store.add_event(session, job_id, "The job has successfully completed.", key="succeeded")
    return 0


def fail(db, job_id: str, worker_id: str, code: str, message: str, param: str | None = None) -> None:
    from tuneforge.training import store

    with db.session() as session:
        if store.release(session, job_id, worker_id, status="failed", finished_at=int(time.time()),
                         estimated_finish=None,
                         error=store.dumps({"code": code, "message": message, "param": param})):
            store.add_event(session, job_id, message, level="error", key="failed")


def fail_with(db, job_id: str, worker_id: str, exc: Exception) -> None:
    from tuneforge.data import DataValidationError
    from tuneforge.training.data import TrainingDataError

    if isinstance(exc, DataValidationError | TrainingDataError):
        fail(db, job_id, worker_id, "invalid_training_file", str(exc), "training_file")
    else:
        fail(db, job_id, worker_id, "training_error", f"Training failed: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    job_id, worker_id = args[0], args[1]
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle

    from tuneforge.db.session import Database
    from tuneforge.logging_setup import configure_logging
    from tuneforge.settings import Settings

    settings = Settings.model_validate_json(os.environ["TUNEFORGE_SETTINGS_JSON"])
    configure_logging(settings.log_level, settings.log_format)
    db = Database(settings.resolved_database_url)
    try:
        return run_job(settings, db, job_id, worker_id, stop)
    except Exception as exc:  # the job fails with the reason; the process exits cleanly
        traceback.print_exc()
        fail_with(db, job_id, worker_id, exc)
        return 0
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
