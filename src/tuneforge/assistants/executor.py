"""The run executor: a small thread pool that takes queued runs to a terminal state.

A run: ``queued → in_progress`` → (file_search step: search the assistant's and the thread's
vector stores with the latest user message) → prompt within the model's context (see
:mod:`prompt`) → message_creation step streaming the answer → citations → ``completed``
(``incomplete`` when the completion budget ran out, ``failed`` on errors, ``cancelled`` when
asked, ``expired`` when it waited past ``expires_at``). Every transition is committed before its
event is published, so a client that polls never sees a state a stream has not announced.
Cancellation is checked between generated tokens (in memory, and in the database once a second,
for a cancel that reached another process). Runs with function tools answer through
:mod:`functions` (calls → ``requires_action``; after ``submit_tool_outputs`` the run is queued again and
``started_at`` restarts, so ``run_max_s`` bounds each stretch in progress, not the wait for outputs).

Several servers may share the database: runs are claimed with leases, and a run in progress whose server
died is taken over and run again by another (:mod:`run_leases`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update

from tuneforge.assistants import functions, run_leases
from tuneforge.assistants import prompt as prompt_mod
from tuneforge.assistants.events import DONE, EventBus
from tuneforge.assistants.generation import ANSWER_RESERVE, EngineBackend
from tuneforge.assistants.objects import (
    DEFAULT_MAX_RESULTS,
    message_object,
    message_text,
    run_object,
    step_object,
)
from tuneforge.db import leases
from tuneforge.db.models import AssistantRow, MaskRow, MessageRow, RunRow, RunStepRow, ThreadRow, now_s
from tuneforge.errors import TuneforgeError
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import loads
from tuneforge.retrieval.search import search_stores

log = logging.getLogger("tuneforge.assistants")


class _Cancelled(Exception):
    pass


class _Expired(Exception):
    """The run has been in progress longer than ``run_max_s``."""


class _Lost(Exception):
    """Another server took the run over (this one stalled past its lease): stop, and write nothing."""


class RunExecutor:
    def __init__(self, state, backend=None, workers: int = 2):
        self.state, self.db = state, state.db
        self.backend = backend or EngineBackend(state)
        self.bus = EventBus()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tuneforge-run")
        self._cancel: set[str] = set()
        self._expire: set[str] = set()
        self._queued: set[str] = set()  # submitted, not started yet: their reservation is renewed too
        self._lock = threading.Lock()
        # Like training workers: runs are claimed with a lease renewed by a heartbeat, so several servers can
        # share one database and none fails another's runs at start-up.
        self.id = leases.new_worker_id()
        settings = state.settings
        self.lease_s, self.max_s = settings.run_lease_s, settings.run_max_s
        self.max_takeovers = settings.max_takeovers
        self._stop = threading.Event()
        self.leases = leases.Heartbeat(self.db, self.id, self.lease_s, "runs", sweep=self.sweep)  # runs in progress

    # -- control --------------------------------------------------------------------------------
    def submit(self, run_id: str):
        with self._lock:
            self._queued.add(run_id)
        self.leases.start()
        return self._pool.submit(self._execute_safely, run_id)

    def submit_streaming(self, run_id: str, created: list[tuple[str, dict]]) -> AsyncIterator[tuple[str, dict]]:
        """Submit the run and return its events as ``(name, data)``: first ``created`` (the events the
        creating request already implies), then each one the run publishes, until it is terminal.
        Call on the event loop that will read them: the subscription is made before the run starts, so
        no event is missed."""
        queue = self.bus.subscribe(run_id)
        self.submit(run_id)

        async def events() -> AsyncIterator[tuple[str, dict]]:
            try:
                for item in created:
                    yield item
                while True:
                    item = await queue.get()
                    if item is DONE:
                        return
                    yield item
            finally:
                self.bus.unsubscribe(run_id, queue)

        return events()

    def cancel(self, run_id: str) -> None:
        with self._lock:
            self._cancel.add(run_id)

    def recover(self) -> None:
        """At start-up: queued runs whose server is gone are run here (the claim decides which server runs
        each); runs in progress are left to their servers, and taken over only once their lease lapsed. The
        heartbeat keeps doing both (see :meth:`sweep`)."""
        self.sweep()
        self.leases.start()

    def close(self) -> None:
        self._stop.set()
        self.leases.close()
        with self._lock:
            self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- leases ---------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Renew reservations, expire, take over (see :func:`run_leases.sweep`); the heartbeat runs it."""
        run_leases.sweep(self)

    def hand_over(self) -> None:
        """Shutting down: give this server's runs to the others (see :func:`run_leases.hand_over`)."""
        run_leases.hand_over(self)

    # -- one run --------------------------------------------------------------------------------
    def _emit(self, run_id: str, event: str, data: dict) -> None:
        self.bus.publish(run_id, event, data)

    def _execute_safely(self, run_id: str) -> Exception | None:
        """Run to a terminal state; the future's result is the exception that failed the run (if any), so a
        caller waiting on it (``/kb/ask``) answers with that error's own status, e.g. 502 for an upstream."""
        ctx: dict = {"run_id": run_id}
        try:
            self._execute(ctx)
        except _Cancelled:
            self._finish_cancelled(ctx)
        except _Expired:
            self._finish_cancelled(ctx, expired=True)
        except _Lost:
            log.warning("run %s: another server took it over; stopped here", run_id)
        except Exception as exc:  # noqa: BLE001 - any failure ends this run, never the executor
            if not isinstance(exc, TuneforgeError):
                log.exception("run %s failed", run_id)
            self._finish_failed(ctx, exc)
            return exc
        finally:
            with self._lock:
                self._cancel.discard(run_id)
                self._expire.discard(run_id)
                self._queued.discard(run_id)
            self.leases.drop(run_id)
            self.bus.publish(run_id, DONE)

    def _check(self, ctx: dict, *, force_db: bool = False) -> None:
        run_id = ctx["run_id"]
        if self.leases.lost(run_id):
            raise _Lost
        with self._lock:
            if run_id in self._cancel:
                raise _Cancelled
            if run_id in self._expire:
                raise _Expired
        now = time.monotonic()
        if force_db or now - ctx.get("checked", 0) > 1.0:
            ctx["checked"] = now
            with self.db.session() as session:
                control = session.scalar(select(RunRow.control).where(RunRow.id == run_id))
            if control == "cancel":
                raise _Cancelled

    def _execute(self, ctx: dict) -> None:
        run_id = ctx["run_id"]
        with self.db.session() as session:
            run = session.get(RunRow, run_id)
            if run is None or run.status != "queued" or self._stop.is_set():
                return  # (shutting down: another server runs it)
            if run.expires_at and now_s() >= run.expires_at:
                run.status = "expired"
                session.commit()
                self._emit(run_id, "thread.run.expired", run_object(run))
                return
            # The claim: one UPDATE guarded by the status, so of several servers exactly one runs it.
            # Queued runs are reserved by the server that created them: taken here if it is this one, or if that
            # server is gone.
            available = leases.available(RunRow, self.id)
            if leases.owner_gone(run.worker_id):
                available = available | (RunRow.worker_id == run.worker_id)
            claimed = session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "queued", available)
                                      .values(status="in_progress", started_at=now_s(), worker_id=self.id,
                                              lease_expires_at=time.time() + self.lease_s))
            session.commit()
            if not claimed.rowcount:
                return
            self.leases.hold(RunRow, run_id)
            session.refresh(run)
            self._emit(run_id, "thread.run.in_progress", run_object(run))
            ctx.update(thread_id=run.thread_id, assistant_id=run.assistant_id, project_id=run.project_id)
            thread = session.get(ThreadRow, run.thread_id)
            assistant = session.get(AssistantRow, run.assistant_id)
            mask = session.get(MaskRow, run.mask_id) if run.mask_id else None
            tools = json.loads(run.tools)
            fs_tool = next((t for t in tools if t["type"] == "file_search"), None)
            choice = loads(run.tool_choice, "auto")
            calls = functions.load(session, run, tools, choice)  # function tools; earlier turns when resumed
            store_ids = []
            for owner in (assistant, thread):
                res = loads(owner.tool_resources if owner else None, {}) or {}
                store_ids += (res.get("file_search") or {}).get("vector_store_ids") or []
            rows = session.scalars(select(MessageRow).where(MessageRow.thread_id == thread.id)
                                   .order_by(MessageRow.id)).all()
            turns = [prompt_mod.Turn(m.id, m.role, message_text(m)) for m in rows
                     if m.status == "completed" or m.role == "user"]
            truncation = loads(run.truncation_strategy) or {}
            if truncation.get("type") == "last_messages":
                turns = turns[-truncation["last_messages"]:]
            settings = json.loads(mask.settings) if mask else {}
            few_shot = json.loads(mask.messages) if mask else []
            system_parts = [run.instructions or "", run.additional_instructions or "",
                            mask.system_prompt if mask and mask.system_prompt else ""]
            summary, summary_upto = thread.summary, thread.summary_upto
            sampling = {"temperature": run.temperature if run.temperature is not None else settings.get("temperature", 1.0),
                        "top_p": run.top_p if run.top_p is not None else settings.get("top_p", 1.0)}
            max_prompt, max_completion = run.max_prompt_tokens, run.max_completion_tokens or settings.get("max_tokens")
            model = self.backend.model(session, run.model, run.project_id)
        self._check(ctx)
        results = []
        if calls.resumed or calls.searched:  # after submit_tool_outputs or a takeover: the results found before
            results = calls.earlier_results
        elif fs_tool is not None and choice != "none" and store_ids:
            results = self._file_search(ctx, fs_tool, list(dict.fromkeys(store_ids)), turns)
        self._check(ctx)
        # The prompt leaves room for the answer; the answer is capped only by a budget the client (or the
        # mask) set, else by the context limit.
        completion_budget = max_completion or None
        budget = model.context_length - (completion_budget or min(ANSWER_RESERVE, model.context_length // 4))
        if max_prompt:
            budget = min(budget, max_prompt)
        budget -= calls.cost(model.count)
        built = prompt_mod.build(system_parts=system_parts, few_shot=few_shot, turns=turns, results=results,
                                 summary=summary, summary_upto=summary_upto, budget=budget, count=model.count,
                                 count_messages=model.count_messages)
        if calls.active:
            functions.answer(self, ctx, model, built, calls, completion_budget, sampling, summary)
        else:
            self._answer(ctx, model, built, completion_budget, sampling, summary)

    def _new_step(self, ctx: dict, kind: str, details: dict) -> None:
        with self.db.session() as session:
            step = RunStepRow(id=new_id("step_"), run_id=ctx["run_id"], thread_id=ctx["thread_id"],
                              project_id=ctx["project_id"], assistant_id=ctx["assistant_id"], type=kind,
                              status="in_progress", step_details=json.dumps(details, ensure_ascii=False))
            session.add(step)
            session.commit()
            ctx["step_id"] = step.id
            obj = step_object(step)
        self._emit(ctx["run_id"], "thread.run.step.created", obj)
        self._emit(ctx["run_id"], "thread.run.step.in_progress", obj)

    def _file_search(self, ctx: dict, tool: dict, store_ids: list[str], turns) -> list:
        options = tool.get("file_search") or {}
        ranking = {"ranker": "default_2024_08_21",
                   "score_threshold": float((options.get("ranking_options") or {}).get("score_threshold", 0.0))}
        call = {"id": new_id("call_"), "type": "file_search", "file_search": {"ranking_options": ranking, "results": []}}
        self._new_step(ctx, "tool_calls", {"type": "tool_calls", "tool_calls": [call]})
        query = next((t.text for t in reversed(turns) if t.role == "user" and t.text.strip()), "")
        results = []
        if query:
            with self.db.session() as session:
                results = search_stores(session, ctx["project_id"], store_ids, [query],
                                        limit=options.get("max_num_results") or DEFAULT_MAX_RESULTS,
                                        score_threshold=ranking["score_threshold"])
        call["file_search"]["results"] = [
            {"file_id": r.file_id, "file_name": r.filename, "score": round(r.score, 6),
             "content": [{"type": "text", "text": r.text}]} for r in results]
        self._complete_step(ctx, {"type": "tool_calls", "tool_calls": [call]}, None)
        return results

    def _complete_step(self, ctx: dict, details: dict | None, usage: dict | None) -> None:
        with self.db.session() as session:
            step = session.get(RunStepRow, ctx.pop("step_id"))
            step.status, step.completed_at = "completed", now_s()
            if details is not None:
                step.step_details = json.dumps(details, ensure_ascii=False)
            step.usage = json.dumps(usage) if usage else None
            session.commit()
            obj = step_object(step)
        self._emit(ctx["run_id"], "thread.run.step.completed", obj)

    def _answer(self, ctx: dict, model, built, completion_budget: int | None, sampling: dict, old_summary,
                generate=None) -> None:
        """A message answer; ``generate`` (the backend's by default) is where its text comes from."""
        run_id = ctx["run_id"]
        with self.db.session() as session:
            if built.summary != old_summary or built.summary_upto:
                thread = session.get(ThreadRow, ctx["thread_id"])
                thread.summary, thread.summary_upto = built.summary, built.summary_upto
            message = MessageRow(id=new_id("msg_"), thread_id=ctx["thread_id"], project_id=ctx["project_id"],
                                 role="assistant", content="[]", assistant_id=ctx["assistant_id"], run_id=run_id,
                                 status="in_progress")
            session.add(message)
            session.commit()
            ctx["message_id"] = message.id
            msg_obj = message_object(message)
        self._new_step(ctx, "message_creation", {"type": "message_creation",
                                                 "message_creation": {"message_id": ctx["message_id"]}})
        self._emit(run_id, "thread.message.created", msg_obj)
        self._emit(run_id, "thread.message.in_progress", msg_obj)

        def on_delta(piece: str) -> None:
            self._emit(run_id, "thread.message.delta", {
                "id": ctx["message_id"], "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {"value": piece, "annotations": []}}]}})

        def should_stop() -> bool:
            try:
                self._check(ctx)
            except _Cancelled:
                return True
            return False

        outcome = (generate or self.backend.generate)(model, built.messages, max_tokens=completion_budget,
                                        on_delta=on_delta, should_stop=should_stop, **sampling)
        if outcome.finish_reason == "cancelled":
            ctx["partial"] = outcome.text
            raise _Cancelled
        text, marks = prompt_mod.citations(outcome.text, built.sources)
        annotations = [{"type": "file_citation", "text": text[s:e], "start_index": s, "end_index": e,
                        "file_citation": {"file_id": built.sources[i].file_id}} for s, e, i in marks]
        if len(text) > len(outcome.text):  # markers we appended: stream them too
            self._emit(run_id, "thread.message.delta", {
                "id": ctx["message_id"], "object": "thread.message.delta",
                "delta": {"content": [{"index": 0, "type": "text", "text": {
                    "value": text[len(outcome.text):],
                    "annotations": [dict(a, index=j) for j, a in enumerate(annotations)]}}]}})
        usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
                 "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}
        truncated = outcome.finish_reason == "length"
        with self.db.session() as session:
            if session.scalar(select(RunRow.worker_id).where(RunRow.id == run_id)) != self.id:
                raise _Lost  # taken over meanwhile: its answer is the other server's to write
            message = session.get(MessageRow, ctx["message_id"])
            message.content = json.dumps([{"type": "text", "text": {"value": text, "annotations": annotations}}],
                                         ensure_ascii=False)
            if truncated:
                message.status, message.incomplete_at = "incomplete", now_s()
                message.incomplete_details = json.dumps({"reason": "max_tokens"})
            else:
                message.status, message.completed_at = "completed", now_s()
            session.commit()
            msg_obj = message_object(message)
        self._emit(run_id, "thread.message.incomplete" if truncated else "thread.message.completed", msg_obj)
        self._complete_step(ctx, None, usage)
        with self.db.session() as session:
            run = session.get(RunRow, run_id)
            run.usage = json.dumps(functions.add_usage(ctx.get("usage_before"), usage))
            if truncated:
                run.status = "incomplete"
                reason = "max_completion_tokens" if completion_budget else "context_length"
                run.incomplete_details = json.dumps({"reason": reason})
            else:
                run.status = "completed"
            run.completed_at = now_s()
            run.control = None
            session.commit()
            obj = run_object(run)
        self._emit(run_id, f"thread.run.{obj['status']}", obj)

    # -- endings --------------------------------------------------------------------------------
    def _close_open_parts(self, session, ctx: dict, *, step_status: str, reason: str, error: dict | None) -> list:
        events = []
        now = now_s()
        if ctx.get("message_id"):
            message = session.get(MessageRow, ctx["message_id"])
            if message is not None and message.status == "in_progress":
                partial = ctx.get("partial", "")
                message.content = json.dumps([{"type": "text", "text": {"value": partial, "annotations": []}}],
                                             ensure_ascii=False)
                message.status, message.incomplete_at = "incomplete", now
                message.incomplete_details = json.dumps({"reason": reason})
                events.append(("thread.message.incomplete", message))
        if ctx.get("step_id"):
            step = session.get(RunStepRow, ctx["step_id"])
            if step is not None and step.status == "in_progress":
                step.status = step_status
                if step_status == "cancelled":
                    step.cancelled_at = now
                elif step_status == "expired":
                    step.expired_at = now
                else:
                    step.failed_at, step.last_error = now, json.dumps(error) if error else None
                events.append((f"thread.run.step.{step_status}", step))
        return events

    def _publish(self, ctx: dict, events: list) -> None:
        for name, row in events:
            self._emit(ctx["run_id"], name, message_object(row) if isinstance(row, MessageRow) else step_object(row))

    def _finish_cancelled(self, ctx: dict, *, expired: bool = False) -> None:
        status = "expired" if expired else "cancelled"
        with self.db.session() as session:
            run = session.get(RunRow, ctx["run_id"])
            if run is None or run.worker_id != self.id or self.leases.lost(ctx["run_id"]):
                return  # another server took it over (or it was handed over): not this server's to write
            events = self._close_open_parts(session, ctx, step_status=status,
                                            reason="run_expired" if expired else "run_cancelled", error=None)
            if expired:
                run.status, run.control = "expired", None
            else:
                run.status, run.cancelled_at, run.control = "cancelled", now_s(), None
            run.lease_expires_at = None
            session.commit()
            obj = run_object(run)
        self._publish(ctx, events)
        self._emit(ctx["run_id"], f"thread.run.{status}", obj)

    def _finish_failed(self, ctx: dict, exc: Exception) -> None:
        code = "invalid_prompt" if isinstance(exc, TuneforgeError) and exc.status_code < 500 else "server_error"
        message = exc.message if isinstance(exc, TuneforgeError) else f"{type(exc).__name__}: {exc}"
        # stored and shown to clients: no upstream key or bearer token, whatever raised
        message = self.state.gateway.redact(message)
        error = {"code": code, "message": message}
        with self.db.session() as session:
            run = session.get(RunRow, ctx["run_id"])
            if run is None or run.status in ("completed", "cancelled", "expired", "incomplete", "failed"):
                return
            if run.worker_id not in (self.id, None) or self.leases.lost(ctx["run_id"]):
                return  # another server took it over (or it was handed over at shutdown)
            events = self._close_open_parts(session, ctx, step_status="failed", reason="run_failed",
                                            error={"code": "server_error", "message": message})
            run.status, run.failed_at, run.last_error = "failed", now_s(), json.dumps(error)
            session.commit()
            obj = run_object(run)
        self._publish(ctx, events)
        self._emit(ctx["run_id"], "thread.run.failed", obj)


