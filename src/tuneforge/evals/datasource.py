"""A run's ``data_source``: checked at creation, its items read (inline ``file_content`` or a ``file_id``
JSONL file) and checked against the eval's ``item_schema``, so a bad source is a 400, never a failed run.

Kinds: ``jsonl`` (items, optionally with the ``sample`` to grade) and ``completions`` (a model samples each
item from ``input_messages``: a template rendered per item, or an ``item_reference`` to messages in the
item). ``responses`` is refused until this server implements the Responses API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest
from tuneforge.evals import templates

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

MAX_ITEMS = 50_000
_ROLES = ("system", "developer", "user", "assistant")
_SAMPLING = ("max_completion_tokens", "temperature", "top_p", "seed", "response_format", "tools", "reasoning_effort",
             "text")


@dataclass
class Source:
    data_source: dict  # normalised, echoed on the run object
    model: str  # the sampling model ("" for jsonl without sampling)
    items: list[tuple[Any, dict | None]]  # (item, given sample)


def _read_jsonl(rt: Runtime, session: Session, project_id: str, file_id: str) -> list[dict]:
    from tuneforge.files import service as files

    row = files.get_file(session, project_id, file_id)
    rows = []
    with open(files.file_path(rt.store, row), encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise InvalidRequest(f"Line {number} of file '{file_id}' is not valid JSON.",
                                     param="data_source.source.id") from None
            if len(rows) > MAX_ITEMS:
                raise InvalidRequest(f"At most {MAX_ITEMS} items per run.", param="data_source.source")
    return rows


def _rows(rt: Runtime, session: Session, project_id: str, source: Any) -> list[tuple[Any, dict | None]]:
    if not isinstance(source, dict):
        raise InvalidRequest("'data_source.source' must be an object.", param="data_source.source")
    kind = source.get("type")
    if kind == "file_content":
        content = source.get("content")
        if not isinstance(content, list):
            raise InvalidRequest("'data_source.source.content' must be a list of {item, sample?}.",
                                 param="data_source.source.content")
        raw = content
    elif kind == "file_id":
        if not isinstance(source.get("id"), str):
            raise InvalidRequest("'data_source.source.id' must be a file id.", param="data_source.source.id")
        raw = _read_jsonl(rt, session, project_id, source["id"])
    elif kind in ("stored_completions", "responses"):
        raise InvalidRequest(f"Source '{kind}' needs stored completions or responses, which this server does not "
                             "keep; use 'file_content' or 'file_id'.", param="data_source.source.type",
                             code="unsupported_parameter")
    else:
        raise InvalidRequest(f"Invalid 'data_source.source.type': {kind!r}.", param="data_source.source.type")
    if not raw:
        raise InvalidRequest("The data source has no items.", param="data_source.source")
    out = []
    for i, row in enumerate(raw):
        # OpenAI's lines are {"item": {...}, "sample": {...}?}; a bare object is taken as the item itself
        if isinstance(row, dict) and "item" in row:
            sample = row.get("sample")
            if sample is not None and not isinstance(sample, dict):
                raise InvalidRequest(f"Item {i}: 'sample' must be an object.", param="data_source.source")
            out.append((row["item"], sample))
        else:
            out.append((row, None))
    return out


def _check_items(items: list[tuple[Any, dict | None]], config: dict) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(config.get("item_schema") or {})
    for i, (item, _) in enumerate(items):
        error = next(iter(validator.iter_errors(item)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise InvalidRequest(f"Item {i} does not match the eval's item_schema at {where}: {error.message}",
                                 param="data_source.source")


def _input_messages(value: Any) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest("'data_source.input_messages' is required for a completions data source.",
                             param="data_source.input_messages")
    kind = value.get("type")
    if kind == "template":
        template = value.get("template")
        if not isinstance(template, list) or not template:
            raise InvalidRequest("'data_source.input_messages.template' must be a non-empty list of messages.",
                                 param="data_source.input_messages.template")
        for i, message in enumerate(template):
            where = f"data_source.input_messages.template[{i}]"
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise InvalidRequest(f"'{where}' must be a message with a role in {list(_ROLES)}.", param=where)
            templates.check(message_text(message.get("content"), where), f"{where}.content")
        return value
    if kind == "item_reference":
        if not isinstance(value.get("item_reference"), str):
            raise InvalidRequest("'data_source.input_messages.item_reference' must be a string like 'item.messages'.",
                                 param="data_source.input_messages.item_reference")
        return value
    raise InvalidRequest(f"Invalid 'data_source.input_messages.type': {kind!r}.",
                         param="data_source.input_messages.type")


def message_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("type") in ("input_text", "output_text", "text"):
        return str(content.get("text", ""))
    raise InvalidRequest(f"'{where}.content': only text content is supported by this server.",
                         param=f"{where}.content", code="unsupported_parameter")


def _sampling_params(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'data_source.sampling_params' must be an object.", param="data_source.sampling_params")
    for key in value:
        if key not in _SAMPLING:
            raise InvalidRequest(f"Unknown sampling parameter '{key}'.", param=f"data_source.sampling_params.{key}")
    return value


def parse(rt: Runtime, session: Session, project_id: str, config: dict, data_source: Any) -> Source:
    if not isinstance(data_source, dict):
        raise InvalidRequest("'data_source' must be an object.", param="data_source")
    kind = data_source.get("type")
    if kind == "responses":
        raise InvalidRequest("Data source 'responses' is not supported by this server yet; use 'completions'.",
                             param="data_source.type", code="unsupported_parameter")
    if kind not in ("jsonl", "completions"):
        raise InvalidRequest(f"Invalid 'data_source.type': {kind!r}; expected 'jsonl' or 'completions'.",
                             param="data_source.type")
    items = _rows(rt, session, project_id, data_source.get("source"))
    if len(items) > MAX_ITEMS:
        raise InvalidRequest(f"At most {MAX_ITEMS} items per run.", param="data_source.source")
    _check_items(items, config)
    if kind == "jsonl":
        return Source(data_source, "", items)
    model = data_source.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'data_source.model' is required for a completions data source.",
                             param="data_source.model")
    _input_messages(data_source.get("input_messages"))
    params = _sampling_params(data_source.get("sampling_params"))
    if params.get("tools") and rt.gateway.resolve(model) is None:
        raise InvalidRequest("'sampling_params.tools' is not supported by local models on this server.",
                             param="data_source.sampling_params.tools", code="unsupported_parameter")
    if rt.gateway.resolve(model) is None:
        from tuneforge.models import catalog

        catalog.resolve(session, rt.registry, rt.settings, model, project_id)  # 404 model_not_found
    return Source(data_source, model, items)


def messages_for(data_source: dict, item: Any) -> list[dict]:
    """The chat messages that sample ``item`` (raises ``templates.TemplateFailure`` for a missing field)."""
    spec = data_source["input_messages"]
    ns = {"item": item}
    if spec["type"] == "item_reference":
        value = templates.lookup(spec["item_reference"], ns)
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
            raise templates.TemplateFailure(f"{spec['item_reference']!r} is not a list of messages")
        return [{"role": m["role"], "content": m.get("content", "")} for m in value]
    return [{"role": m["role"], "content": templates.render(message_text(m.get("content"), "template"), ns)}
            for m in spec["template"]]
