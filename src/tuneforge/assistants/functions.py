"""Function tools in Assistants runs (``{"type": "function", ...}`` on the assistant or the run).

A run that offers functions generates through the constrained tool-calling path of the chat API
(:mod:`tuneforge.serving.tools`, Hermes-style calls, grammar-enforced ``tool_choice``), or forwards the
tools to an upstream model. An answer with calls becomes a ``tool_calls`` step of function calls and the
run waits in ``requires_action`` (no worker holds it; only ``submit_tool_outputs``, cancel or expiry
move it on). Submitting the outputs completes that step and queues the run again; its next model turn
sees the conversation, then each call of this run with its result (assistant ``tool_calls`` + role
``tool`` messages), and answers with text (a message, as without functions) or more calls.

``tool_choice`` ``required`` or a named function applies to the run's first model turn only: once
results came back the model may answer (else a required call would loop for ever), as on OpenAI.
``max_completion_tokens`` is a budget for the whole run, all turns together.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.assistants.generation import Outcome, UpstreamModel
from tuneforge.assistants.objects import run_object
from tuneforge.db.models import RunRow, RunStepRow, now_s
from tuneforge.errors import InvalidRequest
from tuneforge.retrieval.meta import loads
from tuneforge.serving.structured import ChoiceDone, TextDelta, ToolCall

FUNCTION_STEP = "function"  # the type of the calls in a function tool_calls step
MIN_TURN_TOKENS = 2  # the constrained decoder's minimum (the shortest JSON object is "{}")


@dataclass
class Calls:
    """What a run's function tools mean for its next model turn."""

    model_id: str
    tools: list[dict]  # the function tools offered ([] when none, or tool_choice excludes them)
    tool_choice: object  # chat-completions shape
    parallel: bool
    history: list[dict] = field(default_factory=list)  # this run's calls and results, as chat messages
    earlier_results: list = field(default_factory=list)  # file_search results of the run's first turn
    searched: bool = False  # a file_search step of this run completed (results reused, not searched again)
    usage: dict | None = None  # what earlier turns of this run used

    @property
    def active(self) -> bool:
        return bool(self.tools)

    @property
    def resumed(self) -> bool:
        return bool(self.history)

    def cost(self, count: Callable[[str], int]) -> int:
        """Tokens the call history takes in the prompt (roughly, with the template's markers)."""
        return sum(count(json.dumps(m.get("tool_calls")) if m.get("tool_calls") else m.get("content") or "") + 8
                   for m in self.history)


def load(session: Session, run: RunRow, tools: list[dict], choice) -> Calls:
    """Read the run's function tools, tool_choice and its earlier turns (after submit_tool_outputs)."""
    functions = [t for t in tools if t.get("type") == "function"]
    history: list[dict] = []
    earlier: list = []
    searched = False
    steps = session.scalars(select(RunStepRow).where(RunStepRow.run_id == run.id, RunStepRow.type == "tool_calls")
                            .order_by(RunStepRow.id)).all()
    for step in steps:
        calls = json.loads(step.step_details).get("tool_calls") or []
        fn_calls = [c for c in calls if c.get("type") == FUNCTION_STEP]
        if fn_calls and step.status == "completed":
            history.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                for c in fn_calls]})
            history += [{"role": "tool", "tool_call_id": c["id"], "content": c["function"].get("output") or ""}
                        for c in fn_calls]
        for c in calls:
            if c.get("type") == "file_search":
                searched = searched or step.status == "completed"
                earlier += [SimpleNamespace(file_id=r["file_id"], filename=r.get("file_name") or r["file_id"],
                                            text="".join(p.get("text", "") for p in r.get("content") or []),
                                            score=r.get("score", 0.0))
                            for r in c["file_search"].get("results") or []]
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") == "file_search"):
        functions = []
    tool_choice = choice if choice in ("auto", "required") or isinstance(choice, dict) else "auto"
    if history:  # results came back: the model may now answer
        tool_choice = "auto"
    return Calls(run.model, functions, tool_choice, bool(run.parallel_tool_calls), history,
                 earlier, loads(run.usage), searched)


def add_usage(before: dict | None, usage: dict) -> dict:
    if not before:
        return usage
    return {k: before.get(k, 0) + usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def remaining_budget(calls: Calls, max_completion: int | None) -> int | None:
    """The run's completion budget minus what its earlier turns used (0 when spent)."""
    if not max_completion:
        return None
    return max(0, max_completion - ((calls.usage or {}).get("completion_tokens") or 0))


# ---------------------------------------------------------------- generating


class _Tokens:
    prompt = 0


def _local_events(rt, project_id: str, calls: Calls, messages: list[dict], max_tokens: int | None,
                  sampling: dict, tokens: _Tokens) -> Iterator:
    """The typed events of ``serving.tools.stream``, read from a worker thread (its own event loop);
    closing the iterator closes the stream, which stops the generation."""
    from tuneforge.serving import tools
    from tuneforge.serving.requests import ChatCompletionRequest

    request = ChatCompletionRequest(model=calls.model_id, messages=messages, tools=calls.tools,
                                    tool_choice=calls.tool_choice, parallel_tool_calls=calls.parallel,
                                    max_completion_tokens=max_tokens, temperature=sampling["temperature"],
                                    top_p=sampling["top_p"])
    loop = asyncio.new_event_loop()
    stream = None
    try:
        stream = loop.run_until_complete(tools.stream(rt, project_id, request))
        tokens.prompt = stream.prompt_tokens
        events = stream.__aiter__()
        while True:
            try:
                yield loop.run_until_complete(events.__anext__())
            except StopAsyncIteration:
                return
    finally:
        if stream is not None:
            loop.run_until_complete(stream.aclose())
        loop.close()


def _upstream_events(rt, model: UpstreamModel, calls: Calls, messages: list[dict], max_tokens: int | None,
                     sampling: dict, tokens: _Tokens) -> Iterator:
    """The same events from an upstream model: the tools are forwarded in a streamed chat completion."""
    payload = {"model": model.id, "messages": messages, "tools": calls.tools, "tool_choice": calls.tool_choice,
               "parallel_tool_calls": calls.parallel, "stream": True, "stream_options": {"include_usage": True},
               **sampling}
    if max_tokens is not None:
        payload["max_completion_tokens"] = max_tokens
    parts: list[str] = []
    pending: dict[int, dict] = {}
    finish, usage = "stop", None
    chunks = rt.gateway.stream(model.upstream, "chat/completions", payload)
    try:
        for chunk in chunks:
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    parts.append(delta["content"])
                    yield TextDelta(0, delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = pending.setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": ""})
                    fn = call.get("function") or {}
                    slot["id"] = call.get("id") or slot["id"]
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
    finally:
        chunks.close()
    text = "".join(parts)
    tokens.prompt = usage.get("prompt_tokens", 0) if usage else model.count_messages(messages)
    made = [ToolCall(s["id"] or f"call_{i}", s["name"], s["arguments"]) for i, s in sorted(pending.items())]
    completion = usage.get("completion_tokens", 0) if usage else model.count(text + "".join(c.arguments for c in made))
    finish = "tool_calls" if made else ("length" if finish == "length" else "stop")
    yield ChoiceDone(0, finish, None if made else text, made, completion, [])


def answer(executor, ctx: dict, model, built, calls: Calls, max_completion: int | None, sampling: dict,
           old_summary) -> None:
    """The run's next model turn with its functions offered: a message (``executor._answer``, which then
    streams the rest of the text) or function calls (the run waits in ``requires_action``)."""
    messages = built.messages + calls.history
    budget = remaining_budget(calls, max_completion)
    ctx["usage_before"] = calls.usage
    if budget is not None and budget < MIN_TURN_TOKENS:  # earlier turns spent the run's budget: incomplete
        def spent(_model, _messages, **_ignored) -> Outcome:
            return Outcome("", "length", 0, 0)

        executor._answer(ctx, model, built, max_completion, sampling, old_summary, generate=spent)
        return
    tokens = _Tokens()
    if isinstance(model, UpstreamModel):
        events = _upstream_events(executor.state, model, calls, messages, budget, sampling, tokens)
    else:
        events = _local_events(executor.state, ctx["project_id"], calls, messages, budget, sampling, tokens)
    try:
        first = None
        for event in events:
            executor._check(ctx)
            if isinstance(event, TextDelta | ChoiceDone):
                first = event
                break
        if first is None:
            raise RuntimeError("The model stopped without an answer.")
        if isinstance(first, ChoiceDone) and first.tool_calls:
            if first.finish_reason == "length":  # a call cut by the budget cannot be run
                _replay_as_text(executor, ctx, model, built, max_completion, sampling, old_summary, first, tokens)
            else:
                _require_action(executor, ctx, first, tokens.prompt)
            return

        def generate(_model, _messages, *, on_delta, should_stop, **_ignored) -> Outcome:
            parts: list[str] = []
            pending = [first]
            while True:
                event = pending.pop() if pending else next(events, None)
                if event is None:
                    raise RuntimeError("The model stopped without finishing the answer.")
                if isinstance(event, TextDelta) and event.text:
                    parts.append(event.text)
                    on_delta(event.text)
                elif isinstance(event, ChoiceDone):
                    reason = "length" if event.finish_reason == "length" else "stop"
                    return Outcome(event.text if event.text is not None else "".join(parts), reason,
                                   tokens.prompt, event.completion_tokens)
                if should_stop():
                    return Outcome("".join(parts), "cancelled", tokens.prompt, len(parts))

        executor._answer(ctx, model, built, budget, sampling, old_summary, generate=generate)
    finally:
        events.close()


def _replay_as_text(executor, ctx, model, built, max_completion, sampling, old_summary, done: ChoiceDone,
                    tokens: _Tokens) -> None:
    """Calls cut off by the completion budget: the run ends ``incomplete`` with what was written."""
    text = "".join(f'<tool_call>{{"name": "{c.name}", "arguments": {c.arguments}' for c in done.tool_calls)

    def generate(_model, _messages, *, on_delta, **_ignored) -> Outcome:
        on_delta(text)
        return Outcome(text, "length", tokens.prompt, done.completion_tokens)

    executor._answer(ctx, model, built, max_completion, sampling, old_summary, generate=generate)


def _require_action(executor, ctx: dict, done: ChoiceDone, prompt_tokens: int) -> None:
    calls = [{"id": c.id, "type": FUNCTION_STEP,
              "function": {"name": c.name, "arguments": c.arguments, "output": None}} for c in done.tool_calls]
    executor._new_step(ctx, "tool_calls", {"type": "tool_calls", "tool_calls": calls})
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": done.completion_tokens,
             "total_tokens": prompt_tokens + done.completion_tokens}
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [c.to_dict() for c in
                                                                                    done.tool_calls]}}
    with executor.db.session() as session:
        step = session.get(RunStepRow, ctx.pop("step_id"))
        step.usage = json.dumps(usage)
        run = session.get(RunRow, ctx["run_id"])
        if run.worker_id != executor.id:  # taken over by another server meanwhile: not this server's to write
            from tuneforge.assistants.executor import _Lost

            raise _Lost
        if run.control == "cancel":  # a cancel that came while generating: honour it, not the calls
            from tuneforge.assistants.executor import _Cancelled

            ctx["step_id"] = step.id
            session.commit()
            raise _Cancelled
        run.status, run.required_action = "requires_action", json.dumps(action)
        executor.leases.drop(ctx["run_id"])  # no server holds a run waiting for outputs
        run.usage = json.dumps(add_usage(loads(run.usage), usage))
        run.worker_id, run.lease_expires_at = None, None
        session.commit()
        obj = run_object(run)
    executor._emit(ctx["run_id"], "thread.run.requires_action", obj)


# ---------------------------------------------------------------- after requires_action


def _pending_step(session: Session, run: RunRow) -> RunStepRow | None:
    return session.scalar(select(RunStepRow).where(RunStepRow.run_id == run.id, RunStepRow.type == "tool_calls",
                                                   RunStepRow.status == "in_progress").order_by(RunStepRow.id.desc()))


def end_waiting(session: Session, run: RunRow, status: str) -> None:
    """Cancel (or expire) a run waiting in requires_action, with its pending calls step."""
    now = now_s()
    step = _pending_step(session, run)
    if step is not None:
        step.status = status
        if status == "cancelled":
            step.cancelled_at = now
        else:
            step.expired_at = now
    run.status, run.required_action, run.control = status, None, None
    if status == "cancelled":
        run.cancelled_at = now


def expire_if_due(session: Session, run: RunRow) -> bool:
    """A run left in requires_action past ``expires_at`` expires (checked when the thread is next used)."""
    if run.status == "requires_action" and run.expires_at and now_s() >= run.expires_at:
        end_waiting(session, run, "expired")
        session.flush()
        return True
    return False


def submit_outputs(session: Session, run: RunRow, tool_outputs: list) -> None:
    """Store the outputs on the pending step, complete it and queue the run again (the caller commits
    and submits it to the executor)."""
    if expire_if_due(session, run):
        session.commit()
        raise InvalidRequest(f"Run {run.id} expired before its tool outputs were submitted.", param="run_id")
    if run.status != "requires_action":
        raise InvalidRequest(f"Run {run.id} does not require tool outputs (status '{run.status}').",
                             param="run_id")
    required = [c["id"] for c in loads(run.required_action, {})["submit_tool_outputs"]["tool_calls"]]
    outputs: dict[str, str] = {}
    for i, item in enumerate(tool_outputs):
        call_id = item.get("tool_call_id") if isinstance(item, dict) else None
        output = item.get("output", "") if isinstance(item, dict) else None
        if not isinstance(call_id, str) or not isinstance(output, str):
            raise InvalidRequest("Each tool output needs a 'tool_call_id' and a string 'output'.",
                                 param=f"tool_outputs[{i}]")
        if call_id not in required:
            raise InvalidRequest(f"Unknown tool_call_id '{call_id}': the run requires outputs for "
                                 f"{', '.join(required)}.", param=f"tool_outputs[{i}].tool_call_id")
        if call_id in outputs:
            raise InvalidRequest(f"Duplicate output for tool_call_id '{call_id}'.",
                                 param=f"tool_outputs[{i}].tool_call_id")
        outputs[call_id] = output
    missing = [c for c in required if c not in outputs]
    if missing:
        raise InvalidRequest(f"Missing tool outputs for tool_call_ids: {', '.join(missing)}.",
                             param="tool_outputs")
    step = _pending_step(session, run)
    if step is not None:
        details = json.loads(step.step_details)
        for call in details.get("tool_calls") or []:
            if call.get("id") in outputs:
                call["function"]["output"] = outputs[call["id"]]
        step.step_details = json.dumps(details, ensure_ascii=False)
        step.status, step.completed_at = "completed", now_s()
    run.status, run.required_action = "queued", None
    session.flush()
