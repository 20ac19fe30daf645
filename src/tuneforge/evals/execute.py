"""Executing an eval run: for each pending item, sample (``completions``) or take the given sample
(``jsonl``), grade it with every testing criterion, and store the output item — one commit per item, so
a restart redoes nothing that finished. Items run concurrently (``evals_concurrency`` at a time) so the
engine batches them; the run's status is re-read between items, so a cancel stops it promptly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from tuneforge.db.models import EvalItemRow, EvalRow, EvalRunRow, now_s
from tuneforge.errors import TuneforgeError
from tuneforge.evals import datasource, graders, offline, templates

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

log = logging.getLogger("tuneforge.evals")


def given_sample(sample: dict | None) -> tuple[str, dict]:
    """(output_text, the sample namespace's extra fields) of a sample that came with a jsonl item."""
    if not sample:
        return "", {}
    if isinstance(sample.get("output_text"), str):
        return sample["output_text"], sample
    choices = sample.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return str((choices[0].get("message") or {}).get("content") or ""), sample
    output = sample.get("output")
    if isinstance(output, list) and output and isinstance(output[0], dict):
        return str(output[0].get("content") or ""), sample
    return "", sample


def _sampling_body(data_source: dict, messages: list[dict]) -> dict:
    params = data_source.get("sampling_params") or {}
    body: dict[str, Any] = {"model": data_source["model"], "messages": messages}
    for key in ("temperature", "top_p", "seed", "max_completion_tokens", "response_format", "tools"):
        if params.get(key) is not None:
            body[key] = params[key]
    return body


async def _sample(rt: Runtime, run: EvalRunRow, data_source: dict, item: Any, given: dict | None
                  ) -> tuple[dict, dict, dict]:
    """(sample namespace for graders, the output item's sample, usage by model)."""
    if data_source["type"] == "jsonl":
        text, extra = given_sample(given)
        return templates.sample_namespace(text, extra), given or {}, {}
    messages = datasource.messages_for(data_source, item)
    body = _sampling_body(data_source, messages)
    answer = await offline.chat(rt, run.project_id, body)
    choice = (answer.get("choices") or [{}])[0]
    text = (choice.get("message") or {}).get("content") or ""
    usage = answer.get("usage") or {}
    params = data_source.get("sampling_params") or {}
    sample = {"model": run.model, "input": messages, "output": [{"role": "assistant", "content": text}],
              "finish_reason": choice.get("finish_reason"), "error": None,
              "usage": {"prompt_tokens": usage.get("prompt_tokens", 0),
                        "completion_tokens": usage.get("completion_tokens", 0),
                        "total_tokens": usage.get("total_tokens", 0), "cached_tokens": 0},
              "temperature": params.get("temperature", 1.0), "top_p": params.get("top_p", 1.0),
              "seed": params.get("seed"), "max_completion_tokens": params.get("max_completion_tokens")}
    counts = {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    counts["invocation_count"] = 1
    return templates.sample_namespace(text, {"model": run.model, "choices": answer.get("choices")}), sample, \
        {run.model: counts}


async def _grade_item(rt: Runtime, run: EvalRunRow, criteria: list[dict], data_source: dict,
                      row: EvalItemRow) -> tuple[str, dict, list, dict]:
    item, given = json.loads(row.item), json.loads(row.given_sample) if row.given_sample else None
    try:
        namespace, sample, usage = await _sample(rt, run, data_source, item, given)
    except (TuneforgeError, templates.TemplateFailure) as exc:
        message = exc.message if isinstance(exc, TuneforgeError) else str(exc)
        code = getattr(exc, "code", None) or "sample_error"
        return "error", {"model": run.model, "error": {"code": code, "message": message}}, [], {}
    results = []
    errored = False
    for criterion in criteria:
        grade = await graders.grade(rt, run.project_id, criterion, item, namespace)
        errored = errored or grade.errored
        result = {"name": criterion["name"], "type": criterion["type"], "score": grade.score,
                  "passed": grade.passed}
        if grade.errored:
            result["errors"] = {k: v for k, v in grade.errors.items() if v}
        if grade.detail:
            result["sample"] = grade.detail  # what the judge said, the error text
        results.append(result)
        for model, counts in grade.usage.items():
            merged = usage.setdefault(model, {})
            for key, value in counts.items():
                merged[key] = merged.get(key, 0) + value
    status = "error" if errored else "pass" if all(r["passed"] for r in results) else "fail"
    return status, sample, results, usage


def _load(rt: Runtime, run_id: str):
    with rt.db.session() as session:
        run = session.get(EvalRunRow, run_id)
        if run is None or run.status not in ("queued", "in_progress"):
            return None
        ev = session.get(EvalRow, run.eval_id)
        # conditional updates: a cancel committed meanwhile must not be overwritten
        session.execute(update(EvalRunRow).where(EvalRunRow.id == run_id, EvalRunRow.status == "queued")
                        .values(status="in_progress", started_at=now_s()))
        pending = [(r.id, r) for r in session.query(EvalItemRow).filter(
            EvalItemRow.run_id == run_id, EvalItemRow.status == "pending").order_by(EvalItemRow.item_index)]
        session.expunge_all()
        return run, json.loads(ev.testing_criteria), json.loads(run.data_source), [r for _, r in pending]


def _status(rt: Runtime, run_id: str) -> str | None:
    with rt.db.session() as session:
        run = session.get(EvalRunRow, run_id)
        return None if run is None else run.status


def _save(rt: Runtime, item_id: str, status: str, sample: dict, results: list, usage: dict) -> None:
    # conditional: an item graded already (by a server that held the run before) stays as it is, and a
    # deleted run's items are gone
    with rt.db.session() as session:
        session.execute(update(EvalItemRow).where(EvalItemRow.id == item_id, EvalItemRow.status == "pending")
                        .values(status=status, sample=json.dumps(sample), results=json.dumps(results),
                                usage=json.dumps(usage)))


def _finish(rt: Runtime, run_id: str, first_error: dict | None) -> None:
    with rt.db.session() as session:
        run = session.get(EvalRunRow, run_id)
        if run is None or run.status != "in_progress":
            return  # canceled or deleted meanwhile
        sampled = session.query(EvalItemRow.id).filter(EvalItemRow.run_id == run_id,
                                                        EvalItemRow.results != "[]").first()
        values: dict = {"status": "completed", "finished_at": now_s()}
        if sampled is None and first_error is not None:
            # every item failed to sample (an unknown model, an upstream that refuses): the run failed
            values.update(status="failed", error=json.dumps(first_error))
        session.execute(update(EvalRunRow).where(EvalRunRow.id == run_id, EvalRunRow.status == "in_progress")
                        .values(**values))


async def process_run(rt: Runtime, run_id: str, stopping: Callable[[], bool]) -> None:
    loaded = await asyncio.to_thread(_load, rt, run_id)
    if loaded is None:
        return
    run, criteria, data_source, pending = loaded
    semaphore = asyncio.Semaphore(rt.settings.evals_concurrency)
    state = {"stopped": False, "first_error": None}

    async def one(row: EvalItemRow) -> None:
        async with semaphore:
            if state["stopped"] or stopping():
                state["stopped"] = True
                return
            if await asyncio.to_thread(_status, rt, run_id) != "in_progress":
                state["stopped"] = True
                return
            status, sample, results, usage = await _grade_item(rt, run, criteria, data_source, row)
            if status == "error" and not results:
                state["first_error"] = state["first_error"] or sample.get("error")
            await asyncio.to_thread(_save, rt, row.id, status, sample, results, usage)

    await asyncio.gather(*(one(row) for row in pending))
    if state["stopped"]:
        return  # canceled (terminal already) or the runner is shutting down (resumes on restart)
    await asyncio.to_thread(_finish, rt, run_id, state["first_error"])
