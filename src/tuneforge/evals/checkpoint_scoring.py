"""Scoring every checkpoint of a fine-tuning job with graders (the job's ``validation_eval`` extension).

At job creation the graders are checked (400 naming ``validation_eval.graders[i]...``) and become the
testing criteria of an ordinary eval owned by the job. Whenever a checkpoint row appears — whoever trained
it: the local worker's child process or any other backend, this module only reads the database — the
offline runner (``evals.runner``) calls ``schedule``: it creates an eval run of that eval whose model is the
checkpoint (``ft:...:ckpt-step-N``) and whose items are the first ``max_items`` usable lines of the
validation file, each ``{"messages": <the chat without its final assistant turn>, "reference": <that
turn's text>}``. The run is executed like any eval run (batched through the engine, one commit per
item, so a restart redoes nothing that finished); once it has finished, the mean score per grader is
written to the checkpoint's ``metrics.graders``. The checkpoint row carries the state (``scoring_status``
NULL -> running -> completed | failed) and guarded updates make each step happen once, even with
several servers.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from tuneforge.db.models import (
    EvalItemRow,
    EvalRow,
    EvalRunRow,
    FineTuningCheckpointRow,
    FineTuningJobRow,
)
from tuneforge.errors import InvalidRequest, TuneforgeError
from tuneforge.evals import evals, graders, runs
from tuneforge.training import service as training_service
from tuneforge.training import store

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

log = logging.getLogger("tuneforge.evals")

PARAM = "validation_eval"
DEFAULT_MAX_ITEMS = 32
MAX_ITEMS = 1000
DEFAULT_SAMPLING = {"temperature": 0, "max_completion_tokens": 256}  # greedy: scores comparable across steps
_SAMPLING_KEYS = ("temperature", "top_p", "seed", "max_completion_tokens")
_ROLES = ("system", "developer", "user", "assistant")
ITEM_SCHEMA = {"type": "object", "properties": {"messages": {"type": "array"}, "reference": {"type": "string"}},
               "required": ["messages", "reference"]}


# ------------------------------------------------------------------------------------------ the request


def _number(value: Any, key: str, lo: float, hi: float, *, integer: bool = False) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise InvalidRequest(f"Invalid '{PARAM}.sampling_params.{key}': expected {kind} from {lo:g} to {hi:g}.",
                             param=f"{PARAM}.sampling_params.{key}")


def check_request(body: dict) -> dict | None:
    """The job request's ``validation_eval``, checked and with defaults filled in (None when absent)."""
    value = body.get(PARAM)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{PARAM}' must be an object.", param=PARAM)
    unknown = set(value) - {"graders", "max_items", "sampling_params"}
    if unknown:
        raise InvalidRequest(f"Unknown field '{PARAM}.{sorted(unknown)[0]}'.", param=f"{PARAM}.{sorted(unknown)[0]}")
    if not body.get("validation_file"):
        raise InvalidRequest(f"'{PARAM}' scores checkpoints on the validation file: give a 'validation_file'.",
                             param=PARAM)
    given = value.get("graders")
    if not isinstance(given, list) or not given:
        raise InvalidRequest(f"'{PARAM}.graders' must be a non-empty list of graders.", param=f"{PARAM}.graders")
    names: set[str] = set()
    for i, grader in enumerate(given):
        graders.validate(grader, f"{PARAM}.graders[{i}]")
        if grader["name"] in names:
            raise InvalidRequest(f"Duplicate grader name {grader['name']!r}.", param=f"{PARAM}.graders[{i}].name")
        names.add(grader["name"])
    max_items = value.get("max_items")
    if max_items is None:
        max_items = DEFAULT_MAX_ITEMS
    elif isinstance(max_items, bool) or not isinstance(max_items, int) or not 1 <= max_items <= MAX_ITEMS:
        raise InvalidRequest(f"Invalid '{PARAM}.max_items': expected an integer from 1 to {MAX_ITEMS}.",
                             param=f"{PARAM}.max_items")
    params = value.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise InvalidRequest(f"'{PARAM}.sampling_params' must be an object.", param=f"{PARAM}.sampling_params")
    for key, v in params.items():
        if key not in _SAMPLING_KEYS:
            raise InvalidRequest(f"Unknown sampling parameter '{key}'; expected one of {list(_SAMPLING_KEYS)}.",
                                 param=f"{PARAM}.sampling_params.{key}")
        bounds = {"temperature": (0, 2), "top_p": (0, 1), "seed": (0, 2**63 - 1), "max_completion_tokens": (1, 32768)}
        _number(v, key, *bounds[key], integer=key in ("seed", "max_completion_tokens"))
    return {"graders": given, "max_items": max_items, "sampling_params": {**DEFAULT_SAMPLING, **params}}


def create_job(rt: Runtime, session: Session, project_id: str, body: dict) -> dict:
    """``POST /v1/fine_tuning/jobs``: the training service's create, plus the eval that will score the
    checkpoints when the request has a ``validation_eval``."""
    spec = check_request(body)
    if spec is None:
        return training_service.create(rt, session, project_id, body)
    if rt.gateway.resolve(body.get("model")) is not None:
        raise InvalidRequest(f"'{PARAM}' is a tuneforge extension for jobs trained on this server, not for an "
                             "upstream provider's model.", param=PARAM, code="unsupported_parameter")
    ev = evals.create_eval(session, project_id, {
        "name": "checkpoint scores", "testing_criteria": spec["graders"],
        "data_source_config": {"type": "custom", "item_schema": ITEM_SCHEMA}})
    spec["eval_id"] = ev["id"]
    job = training_service.create(rt, session, project_id, {**body, PARAM: spec})  # commits eval and job
    row = session.get(EvalRow, ev["id"])
    row.name = f"Checkpoint scores of {job['id']}"
    row.metadata_json = json.dumps({"fine_tuning_job_id": job["id"]})
    session.commit()
    rt.offline.wake()  # starts the runner's polling, which notices the checkpoints as they appear
    return job


# ------------------------------------------------------------------------------------- validation items


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text parts
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if len(parts) == len(content) else None
    return None


def item_of(line: Any) -> dict | None:
    """``{"messages", "reference"}`` of one validation line (chat or DPO), or None if it has nothing to
    score (no final assistant text, tool turns this scoring does not replay)."""
    if not isinstance(line, dict):
        return None
    if isinstance(line.get("input"), dict):  # DPO: the preferred answer is the reference
        chat = line["input"].get("messages")
        preferred = line.get("preferred_output")
        answer = preferred[-1] if isinstance(preferred, list) and preferred else None
    else:
        chat = line.get("messages")
        last = next((i for i in range(len(chat) - 1, -1, -1) if isinstance(chat[i], dict)
                     and chat[i].get("role") == "assistant"), None) if isinstance(chat, list) else None
        answer = None if last is None else chat[last]
        chat = None if last is None else chat[:last]
    reference = _text(answer.get("content")) if isinstance(answer, dict) else None
    if not isinstance(chat, list) or not reference:
        return None
    messages = []
    for m in chat:
        text = _text(m.get("content")) if isinstance(m, dict) else None
        if text is None or m.get("role") not in _ROLES or m.get("tool_calls"):
            return None
        messages.append({"role": m["role"], "content": text})
    if not any(m["role"] == "user" for m in messages):
        return None
    return {"messages": messages, "reference": reference}


def validation_items(rt: Runtime, session: Session, project_id: str, file_id: str, limit: int) -> list[dict]:
    from tuneforge.files import service as files

    try:
        path = files.file_path(rt.store, files.get_file(session, project_id, file_id))
    except TuneforgeError:
        raise InvalidRequest(f"The validation file {file_id} no longer exists.", param="validation_file") from None
    items: list[dict] = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            try:
                item = item_of(json.loads(line)) if line.strip() else None
            except ValueError:
                item = None
            if item is not None:
                items.append(item)
                if len(items) >= limit:
                    break
    if not items:
        raise InvalidRequest(f"The validation file {file_id} has no line with a final assistant answer to score.",
                             param="validation_file")
    return items


# ------------------------------------------------------------------------------------------- scheduling


def _scored_jobs():
    return select(FineTuningJobRow.id).where(FineTuningJobRow.validation_eval.is_not(None))


def has_work(session: Session) -> bool:
    """A job that may still write checkpoints, or a checkpoint not scored yet (the runner must poll)."""
    live = select(FineTuningJobRow.id).where(FineTuningJobRow.validation_eval.is_not(None),
                                             FineTuningJobRow.status.not_in(store.TERMINAL))
    unscored = select(FineTuningCheckpointRow.id).where(
        FineTuningCheckpointRow.job_id.in_(_scored_jobs()),
        (FineTuningCheckpointRow.scoring_status.is_(None)) | (FineTuningCheckpointRow.scoring_status == "running"))
    return bool(session.scalar(select(exists(live))) or session.scalar(select(exists(unscored))))


def schedule(rt: Runtime) -> int:
    """Start scoring new checkpoints and summarize finished scoring runs; returns how many changed."""
    with rt.db.session() as session:
        rows = session.execute(select(FineTuningCheckpointRow.id, FineTuningCheckpointRow.scoring_status).where(
            FineTuningCheckpointRow.job_id.in_(_scored_jobs()),
            (FineTuningCheckpointRow.scoring_status.is_(None)) | (FineTuningCheckpointRow.scoring_status == "running"))
            .order_by(FineTuningCheckpointRow.created_at, FineTuningCheckpointRow.id)).all()
    changed = 0
    for checkpoint_id, status in rows:
        changed += _start(rt, checkpoint_id) if status is None else _summarize(rt, checkpoint_id)
    return changed


def _mark(session: Session, checkpoint_id: str, from_status: str | None, **values) -> bool:
    """A guarded update: only the one process that sees ``from_status`` moves the checkpoint on."""
    where = (FineTuningCheckpointRow.scoring_status.is_(None) if from_status is None
             else FineTuningCheckpointRow.scoring_status == from_status)
    return session.execute(update(FineTuningCheckpointRow).where(FineTuningCheckpointRow.id == checkpoint_id, where)
                           .values(**values)).rowcount == 1


def _start(rt: Runtime, checkpoint_id: str) -> int:
    with rt.db.session() as session:
        ckpt = session.get(FineTuningCheckpointRow, checkpoint_id)
        if ckpt is None or ckpt.scoring_status is not None:
            return 0
        job = session.get(FineTuningJobRow, ckpt.job_id)
        job_id, spec = job.id, store.loads(job.validation_eval, {})
        step, model = ckpt.step_number, ckpt.fine_tuned_model_checkpoint
        try:
            items = validation_items(rt, session, job.project_id, job.validation_file, spec["max_items"])
            run = runs.create_run(rt, session, job.project_id, spec["eval_id"], {
                "name": f"{model} on {job.validation_file}",
                "metadata": {"fine_tuning_job_id": job_id, "step_number": str(step)},
                "data_source": {"type": "completions", "model": model,
                                "source": {"type": "file_content", "content": [{"item": i} for i in items]},
                                "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
                                "sampling_params": spec["sampling_params"]}})
        except TuneforgeError as exc:  # the file or the checkpoint's model is gone, the eval was deleted
            session.rollback()
            if _mark(session, checkpoint_id, None, scoring_status="failed"):
                store.add_event(session, job_id, f"Scoring checkpoint step {step} failed: {exc.message}",
                                level="warn", key=f"scoring:{step}")
            return 1
        if not _mark(session, checkpoint_id, None, scoring_status="running", eval_run_id=run["id"]):
            session.rollback()  # another server started it first
            return 0
        names = ", ".join(g["name"] for g in spec["graders"])
        store.add_event(session, job_id, f"Scoring checkpoint step {step} on {len(items)} validation items "
                                         f"with {names} (eval run {run['id']}).", key=f"scoring:{step}",
                        data={"step": step, "eval_id": spec["eval_id"], "eval_run_id": run["id"]})
    rt.offline.wake()
    return 1


def mean_scores(session: Session, run_id: str) -> tuple[dict[str, float], int]:
    """({grader name: mean score over the items it graded}, how many items were graded)."""
    totals: dict[str, list[float]] = {}
    graded = 0
    for (results,) in session.execute(select(EvalItemRow.results).where(EvalItemRow.run_id == run_id,
                                                                         EvalItemRow.status != "pending")):
        results = json.loads(results or "[]")
        graded += bool(results)
        for result in results:
            totals.setdefault(result["name"], []).append(float(result.get("score") or 0.0))
    return {name: round(sum(v) / len(v), 6) for name, v in totals.items()}, graded


def _summarize(rt: Runtime, checkpoint_id: str) -> int:
    with rt.db.session() as session:
        ckpt = session.get(FineTuningCheckpointRow, checkpoint_id)
        if ckpt is None or ckpt.scoring_status != "running":
            return 0
        run = session.get(EvalRunRow, ckpt.eval_run_id) if ckpt.eval_run_id else None
        if run is not None and run.status not in runs.TERMINAL:
            return 0
        step = ckpt.step_number
        scores, graded = mean_scores(session, run.id) if run is not None else ({}, 0)
        if run is not None and run.status == "completed" and graded:
            metrics = {**store.loads(ckpt.metrics, {}), "graders": scores}
            if _mark(session, checkpoint_id, "running", scoring_status="completed", metrics=json.dumps(metrics)):
                shown = ", ".join(f"{name} {score:.4f}" for name, score in scores.items())
                store.add_event(session, ckpt.job_id, f"Checkpoint step {step} scored on {graded} validation "
                                                      f"items: {shown}.", key=f"scored:{step}",
                                data={"step": step, "graders": scores, "items": graded, "eval_run_id": run.id})
            return 1
        why = ("its eval run was deleted" if run is None else
               f"its eval run {run.id} {run.status}" + (": no item could be graded" if run.status == "completed"
                                                        else ""))
        if _mark(session, checkpoint_id, "running", scoring_status="failed"):
            store.add_event(session, ckpt.job_id, f"Scoring checkpoint step {step} failed: {why}.", level="warn",
                            key=f"scored:{step}")
        return 1
