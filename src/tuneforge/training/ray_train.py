"""A job's training on several workers: ``python -m tuneforge.training.ray_train JOB_ID OWNER``.

The Ray backend submits this instead of ``training.runner`` when a job asks for
``distributed.num_workers`` > 1. This process is the Ray job's driver: it checks the job is still
this run's, then runs a Ray Train ``TorchTrainer`` (``num_workers`` workers of ``cpus_per_worker``
CPUs, ``torch.distributed`` on gloo) whose per-worker loop is ``runner.run_job`` with its rank
(``training.distributed``): rank 0 writes events, metrics, checkpoints, the final model and the
job's state exactly as a single-worker run does; the other ranks only compute.

Stopping (cancel, pause: Ray's ``stop_job`` sends this driver SIGTERM): the workers are Ray actors,
not children that get the signal, so the driver leaves a stop file in the job's folder; rank 0 sees it
at the next step boundary, all ranks stop at that step, rank 0 saves the resume state, and this
process exits 3 as the runner does. Ray Train's own run folder is ``<job folder>/ray_train``.

Exit codes: 0 the job reached a final state (written by rank 0); 3 stopped on request; 1 a worker
was lost (Ray then reports the run FAILED and the backend requeues the job from its last checkpoint).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback

log = logging.getLogger("tuneforge.training")
STOP_SIGNALS = {signal.SIGTERM, signal.SIGUSR1}
# how long Ray Train waits for the workers' resources before the run fails (Ray's default is 60 s); the
# controller it starts inherits this process's value
START_TIMEOUT_ENV, START_TIMEOUT_S = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600"


def stop_file_path(data_dir, job_id: str, owner: str):
    from tuneforge.training import checkpoints as ck

    return ck.job_dir(data_dir, job_id) / f".stop-{owner.replace(':', '_')}"


def _train_worker(config: dict) -> None:
    """Ray Train's per-worker loop: one rank of the job."""
    import ray.train
    import torch
    import torch.distributed as dist

    from tuneforge.db.session import Database
    from tuneforge.settings import Settings
    from tuneforge.training import runner
    from tuneforge.training.distributed import Ranks, StopFile

    ctx = ray.train.get_context()
    threads = max(1, int(config["cpus_per_worker"]))
    torch.set_num_threads(threads)
    ranks = Ranks(rank=ctx.get_world_rank(), world_size=ctx.get_world_size(), backend=dist.get_backend(),
                  threads=threads)
    settings = Settings.model_validate_json(config["settings"])
    db = Database(settings.resolved_database_url)
    job_id, owner = config["job_id"], config["owner"]
    try:
        code = runner.run_job(settings, db, job_id, owner, StopFile(stop_file_path(settings.data_dir, job_id, owner)),
                              ranks=ranks)
    except Exception as exc:
        if ranks.is_main:  # the job fails with the reason, as a single-worker run's would
            runner.fail_with(db, job_id, owner, exc)
        raise
    finally:
        db.dispose()
    ray.train.report({"exit_code": code})  # a barrier: every rank reports


def run(settings, db, job_id: str, owner: str, spec: dict) -> int:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from tuneforge.db.models import FineTuningJobRow
    from tuneforge.training import checkpoints as ck
    from tuneforge.training import runner

    with db.session() as session:
        job = session.get(FineTuningJobRow, job_id)
        if job is None or job.status != "running" or job.worker_id != owner:
            return 0  # cancelled or taken over before we started
    workers, cpus = int(spec["num_workers"]), float(spec.get("cpus_per_worker") or 1)
    os.environ.setdefault(START_TIMEOUT_ENV, START_TIMEOUT_S)
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"job_id": job_id, "owner": owner, "settings": settings.model_dump_json(),
                           "cpus_per_worker": cpus},
        torch_config=TorchConfig(backend="gloo"),  # tuneforge's trainer computes on CPU
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=owner.replace(":", "_"), storage_path=str(ck.job_dir(settings.data_dir, job_id)
                                                                            / "ray_train"),
                             failure_config=FailureConfig(max_failures=0)))
    try:
        result = trainer.fit()
    except Exception as exc:
        traceback.print_exc()
        if "Insufficient cluster resources" in str(exc):  # can never fit this cluster: retrying will not help
            runner.fail(db, job_id, owner, "training_error", f"The Ray cluster cannot hold {workers} training "
                        f"workers of {cpus:g} CPUs: lower 'distributed.num_workers' or 'cpus_per_worker'.",
                        "distributed.num_workers")
            return 0
        return 1  # a lost worker (a training error was already recorded by rank 0): Ray reports the run FAILED
    return int((result.metrics or {}).get("exit_code", 0))


def _forward_stop_signals(stop) -> None:
    """SIGTERM/SIGUSR1 → the stop file. A thread waiting on them, not a handler: the main thread sits in
    Ray's blocking calls, where a Python signal handler would only run once ``fit`` returns."""
    while True:
        sig = signal.sigwait(STOP_SIGNALS)
        log.info("stop requested (signal %s): the workers stop at the next step boundary", sig)
        stop.set()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    job_id, owner = args[0], args[1]
    # blocked before any thread starts (Ray's included), so only the waiting thread below receives them
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tuneforge.db.models import FineTuningJobRow
    from tuneforge.db.session import Database
    from tuneforge.logging_setup import configure_logging
    from tuneforge.settings import Settings
    from tuneforge.training import runner, store
    from tuneforge.training.distributed import StopFile

    settings = Settings.model_validate_json(os.environ["TUNEFORGE_SETTINGS_JSON"])
    configure_logging(settings.log_level, settings.log_format)
    stop = StopFile(stop_file_path(settings.data_dir, job_id, owner))
    stop.clear()  # a new run; an earlier run's request is not this one's
    threading.Thread(target=runner._watch_parent, args=(os.getppid(),), daemon=True).start()
    threading.Thread(target=_forward_stop_signals, args=(stop,), daemon=True).start()
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            job = session.get(FineTuningJobRow, job_id)
            spec = store.loads(job.distributed if job else None) or {"num_workers": 1}
        return run(settings, db, job_id, owner, spec)
    except Exception as exc:  # the job fails with the reason; the process exits cleanly
        traceback.print_exc()
        runner.fail_with(db, job_id, owner, exc)
        return 0
    finally:
        stop.clear()
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
