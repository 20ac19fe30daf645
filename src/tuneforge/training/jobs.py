"""Fine-tuning jobs: create, list, inspect, cancel, pause, resume. No FastAPI here.

The API only writes rows and requests; the worker (``tuneforge.training.worker``) validates files,
trains and writes events. Cancel is immediate for the API (the job reads ``cancelled`` at once)
and the worker kills the training process on its next tick (≤ ``worker_poll_s``, woken at once
in-process). A pause is a request: the job reads ``paused`` once the training process has saved
its state at the next step boundary.
"""

from __future__ import annotations

import json
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import FineTuningCheckpointRow, FineTuningEventRow, FineTuningJobRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.files import service as files_service
from tuneforge.ids import new_id
from tuneforge.models import catalog
from tuneforge.models.registry import ModelRegistry
from tuneforge.settings import Settings
from tuneforge.training import store

SUFFIX_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HP_KEYS = ("batch_size", "learning_rate_multiplier", "n_epochs")
MAX_WORKERS = 64


# -- serialisation -------------------------------------------------------------------------------
def job_object(row: FineTuningJobRow) -> dict:
    requested = store.loads(row.hyperparameters, {})
    resolved = store.loads(row.resolved)
    hp = resolved or {k: requested.get(k, "auto") for k in (*HP_KEYS, *(("beta",) if row.method_type == "dpo" else ()))}
    error = store.loads(row.error)
    return {
        "id": row.id,
        "object": "fine_tuning.job",
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "model": row.model,
        "fine_tuned_model": row.fine_tuned_model,
        "organization_id": row.project_id,
        "status": row.status,
        "hyperparameters": {k: hp.get(k, "auto") for k in HP_KEYS},
        "method": {"type": row.method_type, row.method_type: {"hyperparameters": hp}},
        "training_file": row.training_file,
        "validation_file": row.validation_file,
        "result_files": store.loads(row.result_files, []),
        "trained_tokens": row.trained_tokens,
        "error": error or None,
        "seed": row.seed,
        "estimated_finish": row.estimated_finish if row.status == "running" else None,
        "integrations": store.loads(row.integrations),
        "metadata": store.loads(row.metadata_json),
        "user_provided_suffix": row.suffix,
        # tuneforge extension: progress for CLIs and consoles, and the checkpoint scoring asked for
        "tuneforge": {"base_model": row.base_model, "step": row.step, "total_steps": row.total_steps,
                      "pause_requested": row.control == "pause",
                      **({"validation_eval": store.loads(row.validation_eval)} if row.validation_eval else {}),
                      **({"distributed": store.loads(row.distributed)} if row.distributed else {})},
    }


def event_object(row: FineTuningEventRow) -> dict:
    return {"id": row.id, "object": "fine_tuning.job.event", "created_at": row.created_at, "level": row.level,
            "message": row.message, "type": row.type, "data": store.loads(row.data)}


def checkpoint_object(row: FineTuningCheckpointRow, eval_id: str | None = None) -> dict:
    """``metrics.graders`` ({grader name: mean score}) appears once a scored checkpoint's eval run finished;
    ``tuneforge.scoring`` says where that scoring stands (jobs with a ``validation_eval`` only)."""
    out = {"id": row.id, "object": "fine_tuning.job.checkpoint", "created_at": row.created_at,
           "fine_tuned_model_checkpoint": row.fine_tuned_model_checkpoint, "fine_tuning_job_id": row.job_id,
           "step_number": row.step_number, "metrics": store.loads(row.metrics, {})}
    if eval_id is not None:
        out["tuneforge"] = {"scoring": {"status": row.scoring_status or "queued", "eval_id": eval_id,
                                        "eval_run_id": row.eval_run_id}}
    return out


# -- validation of the request -------------------------------------------------------------------
def _check_hyperparameters(hp: dict, method: str) -> dict:
    out = {}
    for key, value in hp.items():
        if value is None:
            continue
        if key == "beta" and method != "dpo":
            raise InvalidRequest("'beta' is a DPO hyperparameter.", param=f"method.{method}.hyperparameters.beta")
        if value != "auto":
            ok = {"batch_size": lambda v: isinstance(v, int) and 1 <= v <= 256,
                  "n_epochs": lambda v: isinstance(v, int) and 1 <= v <= 50,
                  "learning_rate_multiplier": lambda v: 0 < v <= 100,
                  "beta": lambda v: 0 < v <= 2}[key](value)
            if not ok:
                limits = {"batch_size": "an integer from 1 to 256", "n_epochs": "an integer from 1 to 50",
                          "learning_rate_multiplier": "a number > 0", "beta": "a number in (0, 2]"}[key]
                raise InvalidRequest(f"Invalid value for '{key}': must be 'auto' or {limits}, got {value!r}.",
                                     param=f"hyperparameters.{key}")
        out[key] = value
    return out


def _check_metadata(metadata: dict | None) -> dict | None:
    if metadata is None:
        return None
    if len(metadata) > 16:
        raise InvalidRequest("'metadata' may hold at most 16 key-value pairs.", param="metadata")
    for k, v in metadata.items():
        if len(k) > 64 or len(v) > 512:
            raise InvalidRequest("metadata keys are at most 64 characters and values at most 512.", param="metadata")
    return metadata


def check_distributed(value: dict | None, settings: Settings) -> dict | None:
    """The ``distributed`` extension with its defaults: {num_workers, cpus_per_worker} (None when absent).

    Several workers train through Ray Train, so ``num_workers`` > 1 needs the Ray backend."""
    if value is None:
        return None
    workers, cpus = value.get("num_workers", 1), value.get("cpus_per_worker")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InvalidRequest(f"Invalid 'distributed.num_workers': expected an integer from 1 to {MAX_WORKERS}, "
                             f"got {workers!r}.", param="distributed.num_workers")
    if cpus is None:
        cpus = 1
    elif isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0 < cpus <= 256:
        raise InvalidRequest(f"Invalid 'distributed.cpus_per_worker': expected a number > 0 and <= 256, got "
                             f"{cpus!r}.", param="distributed.cpus_per_worker")
    if workers > 1 and settings.training_backend != "ray":
        raise InvalidRequest(f"'distributed.num_workers' = {workers} needs the Ray training backend "
                             "(TUNEFORGE_TRAINING_BACKEND=ray); this server trains each job in one local process.",
                             param="distributed.num_workers", code="unsupported_parameter")
    return {"num_workers": workers, "cpus_per_worker": cpus}


def _check_file(session: Session, project_id: str, file_id: str, param: str) -> None:
    try:
        row = files_service.get_file(session, project_id, file_id)
    except NotFound:
        raise NotFound(f"Invalid file ID: {file_id} (no such file).", param=param, code="file_not_found") from None
    if row.purpose != "fine-tune":
        raise InvalidRequest(f"File {file_id} has purpose '{row.purpose}'; fine-tuning needs purpose 'fine-tune'.",
                             param=param, code="invalid_file_purpose")


def create_job(session: Session, registry: ModelRegistry, settings: Settings, project_id: str, req: dict) -> dict:
    """``req`` is the request body as a dict (fields of ``CreateJobRequest``)."""
    model = req["model"]
    served = catalog.resolve(session, registry, settings, model, project_id)  # 404 model_not_found
    _check_file(session, project_id, req["training_file"], "training_file")
    if req.get("validation_file"):
        _check_file(session, project_id, req["validation_file"], "validation_file")
    suffix = req.get("suffix")
    if suffix is not None and not SUFFIX_RE.match(suffix):
        raise InvalidRequest("'suffix' must be 1-64 characters of letters, digits, '.', '_' or '-'.", param="suffix")
    method = req.get("method") or {"type": "supervised"}
    mtype = method["type"]
    if mtype == "reinforcement":
        raise InvalidRequest("Reinforcement fine-tuning is not supported; use 'supervised' or 'dpo'.",
                             param="method.type")
    hp = dict((method.get(mtype) or {}).get("hyperparameters") or {})
    legacy = req.get("hyperparameters") or {}
    if legacy and any(v is not None for v in hp.values()):
        raise InvalidRequest("Give hyperparameters either in 'method' or in the deprecated top-level "
                             "'hyperparameters', not both.", param="hyperparameters")
    hp = _check_hyperparameters(hp or legacy, mtype)
    distributed = check_distributed(req.get("distributed"), settings)
    seed = req.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif not 0 <= seed < 2**63:
        raise InvalidRequest("'seed' must be a non-negative integer.", param="seed")
    row = FineTuningJobRow(
        id=new_id("ftjob-"), project_id=project_id, model=model, base_model=served.base_model,
        parent_model=model if served.is_fine_tuned else None, status="validating_files", created_at=now_s(),
        training_file=req["training_file"], validation_file=req.get("validation_file"), suffix=suffix, seed=seed,
        method_type=mtype, hyperparameters=json.dumps(hp), metadata_json=store.dumps(_check_metadata(req.get("metadata"))),
        integrations=store.dumps(req.get("integrations")), result_files="[]",
        validation_eval=store.dumps(req.get("validation_eval")),  # checked by evals.checkpoint_scoring
        distributed=store.dumps(distributed))
    session.add(row)
    session.flush()
    store.add_event(session, row.id, f"Created fine-tuning job: {row.id}", key="created")
    if req.get("integrations"):
        store.add_event(session, row.id, "Integrations (e.g. wandb) are recorded but not run by tuneforge.",
                        level="warn", key="integrations")
    return job_object(row)


# -- reading ------------------------------------------------------------------------------------
def get_job_row(session: Session, project_id: str, job_id: str) -> FineTuningJobRow:
    row = session.get(FineTuningJobRow, job_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No fine-tuning job found with id {job_id}.", param="fine_tuning_job_id")
    return row


def get_job(session: Session, project_id: str, job_id: str) -> dict:
    return job_object(get_job_row(session, project_id, job_id))


def list_jobs(session: Session, project_id: str, *, after: str | None, limit: int,
              metadata: dict[str, str] | None = None) -> dict:
    check_limit(limit, 100)
    stmt = select(FineTuningJobRow).where(FineTuningJobRow.project_id == project_id)
    if metadata:
        rows = session.execute(select(FineTuningJobRow.id, FineTuningJobRow.metadata_json)
                               .where(FineTuningJobRow.project_id == project_id)).all()
        ids = [i for i, m in rows if all((store.loads(m) or {}).get(k) == v for k, v in metadata.items())]
        stmt = stmt.where(FineTuningJobRow.id.in_(ids))
    return paginate(session, stmt, FineTuningJobRow.id, limit=limit, after=after, serialize=job_object)


def list_events(session: Session, project_id: str, job_id: str, *, after: str | None, limit: int) -> dict:
    check_limit(limit, 1000)
    get_job_row(session, project_id, job_id)
    stmt = select(FineTuningEventRow).where(FineTuningEventRow.job_id == job_id)
    return paginate(session, stmt, FineTuningEventRow.id, limit=limit, after=after, serialize=event_object)


def events_since(session: Session, project_id: str, job_id: str, seq: int) -> tuple[list[tuple[int, dict]], str]:
    """Events after ``seq`` (oldest first) and the job's status, for the live stream."""
    job = get_job_row(session, project_id, job_id)
    status = job.status
    rows = session.scalars(select(FineTuningEventRow).where(FineTuningEventRow.job_id == job_id,
                                                            FineTuningEventRow.seq > seq)
                           .order_by(FineTuningEventRow.seq).limit(500)).all()
    return [(r.seq, event_object(r)) for r in rows], status


def list_checkpoints(session: Session, project_id: str, job_id: str, *, after: str | None, limit: int) -> dict:
    check_limit(limit, 100)
    job = get_job_row(session, project_id, job_id)
    eval_id = (store.loads(job.validation_eval) or {}).get("eval_id")
    stmt = select(FineTuningCheckpointRow).where(FineTuningCheckpointRow.job_id == job_id)
    return paginate(session, stmt, FineTuningCheckpointRow.id, limit=limit, after=after,
                    serialize=lambda row: checkpoint_object(row, eval_id))


# -- control ------------------------------------------------------------------------------------
def cancel_job(session: Session, project_id: str, job_id: str) -> dict:
    row = get_job_row(session, project_id, job_id)
    if row.status in store.TERMINAL:
        raise InvalidRequest(f"Job {job_id} has already {row.status}; it cannot be cancelled.",
                             param="fine_tuning_job_id", code="job_not_cancellable")
    if row.status == "running":
        row.control = "cancel"  # the owning worker kills the training process and clears its lease
    else:
        row.worker_id, row.lease_expires_at, row.control = None, None, None
    row.status, row.finished_at, row.estimated_finish, row.updated_at = "cancelled", now_s(), None, now_s()
    session.flush()
    store.add_event(session, job_id, "The job was cancelled.", key="cancelled")
    return job_object(row)


def pause_job(session: Session, project_id: str, job_id: str) -> dict:
    row = get_job_row(session, project_id, job_id)
    if row.status == "paused" or (row.status == "running" and row.control == "pause"):
        return job_object(row)
    if row.status == "queued":
        row.status = "paused"
        store.add_event(session, job_id, "The job was paused before it started.")
    elif row.status == "running":
        row.control = "pause"
        store.add_event(session, job_id, "Pause requested; the job pauses after the current step.")
    else:
        raise InvalidRequest(f"Job {job_id} is {row.status}; only queued or running jobs can be paused.",
                             param="fine_tuning_job_id", code="job_not_pausable")
    row.updated_at = now_s()
    session.flush()
    return job_object(row)


def resume_job(session: Session, project_id: str, job_id: str) -> dict:
    row = get_job_row(session, project_id, job_id)
    if row.status == "running" and row.control == "pause":
        row.control = None  # withdrawn before the worker acted, or requeued once it has
        store.add_event(session, job_id, "Pause request withdrawn.")
    elif row.status == "paused":
        row.status, row.control = "queued", None
        store.add_event(session, job_id, "The job was resumed and is queued; training continues from the "
                                         "last saved state.")
    else:
        raise InvalidRequest(f"Job {job_id} is {row.status}, not paused.", param="fine_tuning_job_id",
                             code="job_not_paused")
    row.updated_at = now_s()
    session.flush()
    return job_object(row)
