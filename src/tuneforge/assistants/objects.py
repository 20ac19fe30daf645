"""Validation of Assistants v2 request fields and serialization of rows to OpenAI's shapes.

Every non-optional field of the SDK's models is emitted (with ``null`` where empty): the SDK builds
models without validation and a missing field raises ``AttributeError`` on access.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tuneforge.db.models import AssistantRow, MessageRow, RunRow, RunStepRow, ThreadRow
from tuneforge.errors import InvalidRequest
from tuneforge.retrieval.meta import loads

TOOL_TYPES = ("file_search", "function", "code_interpreter")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # as chat completions (serving.structured)
DEFAULT_MAX_RESULTS = 5  # small local models have small contexts; OpenAI's default is 20 for gpt-4*


def check_tools(tools: Any, param: str = "tools") -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > 128:
        raise InvalidRequest(f"'{param}' must be a list of at most 128 tools.", param=param)
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in TOOL_TYPES:
            raise InvalidRequest(f"Invalid tool type at {param}[{i}]: expected one of {', '.join(TOOL_TYPES)}.",
                                 param=f"{param}[{i}].type")
        if kind == "code_interpreter":
            raise InvalidRequest("The code_interpreter tool is not supported by this server.",
                                 param=f"{param}[{i}].type")
        if kind == "file_search":
            fs = tool.get("file_search") or {}
            n = fs.get("max_num_results")
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 50):
                raise InvalidRequest("file_search.max_num_results must be between 1 and 50.",
                                     param=f"{param}[{i}].file_search.max_num_results")
            ranking = fs.get("ranking_options") or {}
            threshold = ranking.get("score_threshold", 0.0)
            if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
                raise InvalidRequest("ranking_options.score_threshold must be between 0 and 1.",
                                     param=f"{param}[{i}].file_search.ranking_options.score_threshold")
            entry: dict = {"type": "file_search"}
            if fs:
                entry["file_search"] = {k: v for k, v in fs.items() if k in ("max_num_results", "ranking_options")}
            out.append(entry)
        else:
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest("A function tool needs 'function': {name, description?, parameters?}.",
                                     param=f"{param}[{i}].function")
            if not _FUNCTION_NAME.match(fn["name"]):
                raise InvalidRequest("Function names are 1-64 letters, digits, '_' or '-'.",
                                     param=f"{param}[{i}].function.name")
            params = fn.get("parameters")
            if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
                raise InvalidRequest("'function.parameters' must be a JSON schema of an object.",
                                     param=f"{param}[{i}].function.parameters")
            out.append({"type": "function", "function": fn})
    return out


def check_tool_resources(value: Any, param: str = "tool_resources") -> dict | None:
    """Keeps ``file_search.vector_store_ids`` (at most one store per resource owner, as OpenAI);
    ``vector_stores`` (create a store inline) is turned into ids by the caller first."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param)
    out: dict = {}
    fs = value.get("file_search")
    if fs is not None:
        if not isinstance(fs, dict):
            raise InvalidRequest(f"'{param}.file_search' must be an object.", param=f"{param}.file_search")
        ids = fs.get("vector_store_ids") or []
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids) or len(ids) > 1:
            raise InvalidRequest("file_search.vector_store_ids is a list of at most one vector store id.",
                                 param=f"{param}.file_search.vector_store_ids")
        out["file_search"] = {"vector_store_ids": list(ids)}
    if value.get("code_interpreter"):
        out["code_interpreter"] = {"file_ids": list((value["code_interpreter"] or {}).get("file_ids") or [])}
    return out


def check_sampling(body: dict) -> tuple[float | None, float | None]:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        raise InvalidRequest("'temperature' must be between 0 and 2.", param="temperature")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 <= top_p <= 1):
        raise InvalidRequest("'top_p' must be between 0 and 1.", param="top_p")
    return temperature, top_p


def check_response_format(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    if isinstance(value, dict) and value.get("type") in ("text", "json_object"):
        return value
    raise InvalidRequest("response_format must be 'auto', {'type': 'text'} or {'type': 'json_object'} "
                         "(json_schema is not supported by this server).", param="response_format")


def content_blocks(content: Any, param: str = "content") -> list[dict]:
    """A message's content (a string or text parts) → stored text content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    if isinstance(content, list) and content:
        blocks = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest("Only text content parts are supported by this server.",
                                     param=f"{param}[{i}]")
            blocks.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        return blocks
    raise InvalidRequest("'content' must be a string or a non-empty list of text parts.", param=param)


def message_text(row: MessageRow) -> str:
    return "".join(b["text"]["value"] for b in json.loads(row.content) if b.get("type") == "text")


# ---------------------------------------------------------------- serializers

def assistant_object(row: AssistantRow) -> dict:
    return {"id": row.id, "object": "assistant", "created_at": row.created_at, "name": row.name,
            "description": row.description, "model": row.model, "instructions": row.instructions,
            "tools": json.loads(row.tools), "tool_resources": loads(row.tool_resources, {}),
            "metadata": loads(row.metadata_json, {}), "temperature": row.temperature, "top_p": row.top_p,
            "response_format": loads(row.response_format, "auto")}


def thread_object(row: ThreadRow) -> dict:
    return {"id": row.id, "object": "thread", "created_at": row.created_at,
            "metadata": loads(row.metadata_json, {}), "tool_resources": loads(row.tool_resources, {})}


def message_object(row: MessageRow) -> dict:
    return {"id": row.id, "object": "thread.message", "created_at": row.created_at, "thread_id": row.thread_id,
            "role": row.role, "content": json.loads(row.content), "assistant_id": row.assistant_id,
            "run_id": row.run_id, "attachments": loads(row.attachments, []), "status": row.status,
            "completed_at": row.completed_at, "incomplete_at": row.incomplete_at,
            "incomplete_details": loads(row.incomplete_details), "metadata": loads(row.metadata_json, {})}


def run_object(row: RunRow) -> dict:
    return {"id": row.id, "object": "thread.run", "created_at": row.created_at, "thread_id": row.thread_id,
            "assistant_id": row.assistant_id, "status": row.status,
            "required_action": loads(row.required_action) if row.status == "requires_action" else None,
            "last_error": loads(row.last_error), "expires_at": row.expires_at if row.status in
            ("queued", "in_progress", "cancelling", "requires_action") else None, "started_at": row.started_at,
            "cancelled_at": row.cancelled_at, "failed_at": row.failed_at, "completed_at": row.completed_at,
            "incomplete_details": loads(row.incomplete_details), "model": row.model,
            "instructions": row.instructions or "", "tools": json.loads(row.tools),
            "metadata": loads(row.metadata_json, {}), "usage": loads(row.usage), "temperature": row.temperature,
            "top_p": row.top_p, "max_prompt_tokens": row.max_prompt_tokens,
            "max_completion_tokens": row.max_completion_tokens,
            "truncation_strategy": loads(row.truncation_strategy, {"type": "auto", "last_messages": None}),
            "tool_choice": loads(row.tool_choice, "auto"), "parallel_tool_calls": row.parallel_tool_calls,
            "response_format": loads(row.response_format, "auto")}


def step_object(row: RunStepRow, *, include_content: bool = False) -> dict:
    details = json.loads(row.step_details)
    if details.get("type") == "tool_calls" and not include_content:
        # Result text is only returned when asked for with include[] (as OpenAI does).
        for call in details.get("tool_calls", []):
            for result in (call.get("file_search") or {}).get("results") or []:
                result.pop("content", None)
    return {"id": row.id, "object": "thread.run.step", "created_at": row.created_at, "run_id": row.run_id,
            "assistant_id": row.assistant_id, "thread_id": row.thread_id, "type": row.type, "status": row.status,
            "step_details": details, "cancelled_at": row.cancelled_at, "completed_at": row.completed_at,
            "expired_at": row.expired_at, "failed_at": row.failed_at, "last_error": loads(row.last_error),
            "usage": loads(row.usage), "metadata": {}}
