"""Masks: presets as in chat front ends — a system prompt, few-shot messages and model settings,
stored per project (``/v1/masks``, a tuneforge extension; ids ``mask_``). A mask is applied to a
run with ``mask`` in the run request (an extension field) or ``metadata.mask`` on the thread or
assistant, and to the chat CLI through :func:`load_mask` / :func:`apply_mask`."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import MaskRow
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import Conflict, InvalidRequest, NotFound
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps, loads

SETTINGS = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "max_tokens": (1, 32768)}


def _few_shot(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 64:
        raise InvalidRequest("'messages' is a list of at most 64 {role, content} few-shot messages.", param="messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
            raise InvalidRequest("Few-shot messages are {role: user|assistant, content: string}.",
                                 param=f"messages[{i}]")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _settings(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'settings' must be an object.", param="settings")
    out = {}
    for key, val in value.items():
        if key not in SETTINGS:
            raise InvalidRequest(f"Unknown mask setting '{key}': expected {', '.join(SETTINGS)}.",
                                 param=f"settings.{key}")
        lo, hi = SETTINGS[key]
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not lo <= val <= hi:
            raise InvalidRequest(f"settings.{key} must be between {lo} and {hi}.", param=f"settings.{key}")
        out[key] = int(val) if key == "max_tokens" else float(val)
    return out


def mask_object(row: MaskRow) -> dict:
    return {"id": row.id, "object": "mask", "created_at": row.created_at, "name": row.name,
            "description": row.description, "model": row.model, "system_prompt": row.system_prompt,
            "messages": json.loads(row.messages), "settings": json.loads(row.settings),
            "metadata": loads(row.metadata_json, {})}


def _name(value) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 128:
        raise InvalidRequest("A mask needs a 'name' of 1-128 characters.", param="name")
    return value.strip()


def create_mask(session: Session, project_id: str, body: dict) -> dict:
    name = _name(body.get("name"))
    if session.scalar(select(MaskRow.id).where(MaskRow.project_id == project_id, MaskRow.name == name)):
        raise Conflict(f"A mask named '{name}' already exists.", param="name")
    row = MaskRow(id=new_id("mask_"), project_id=project_id, name=name, description=body.get("description"),
                  model=body.get("model"), system_prompt=body.get("system_prompt"),
                  messages=json.dumps(_few_shot(body.get("messages")), ensure_ascii=False),
                  settings=json.dumps(_settings(body.get("settings"))),
                  metadata_json=dumps(check_metadata(body.get("metadata"))))
    session.add(row)
    session.flush()
    return mask_object(row)


def get_mask(session: Session, project_id: str, mask: str) -> MaskRow:
    """By id or by name."""
    row = session.get(MaskRow, mask) if mask.startswith("mask_") else None
    if row is None:
        row = session.scalar(select(MaskRow).where(MaskRow.project_id == project_id, MaskRow.name == mask))
    if row is None or row.project_id != project_id:
        raise NotFound(f"No mask found with id or name '{mask}'.", param="mask")
    return row


def list_masks(session: Session, project_id: str, **page) -> dict:
    check_limit(page["limit"], 100)
    return paginate(session, select(MaskRow).where(MaskRow.project_id == project_id), MaskRow.id,
                    serialize=mask_object, **page)


def modify_mask(session: Session, project_id: str, mask: str, body: dict) -> dict:
    row = get_mask(session, project_id, mask)
    if "name" in body:
        row.name = _name(body["name"])
    for field in ("description", "model", "system_prompt"):
        if field in body:
            setattr(row, field, body[field])
    if "messages" in body:
        row.messages = json.dumps(_few_shot(body["messages"]), ensure_ascii=False)
    if "settings" in body:
        row.settings = json.dumps(_settings(body["settings"]))
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    session.flush()
    return mask_object(row)


def delete_mask(session: Session, project_id: str, mask: str) -> dict:
    row = get_mask(session, project_id, mask)
    session.delete(row)
    return {"id": row.id, "object": "mask.deleted", "deleted": True}


# ---------------------------------------------------------------- for clients (the chat CLI)

def load_mask(client, name: str) -> dict:
    """Fetch a mask through the API with an ``openai.OpenAI`` client (``GET /v1/masks/{name}``)."""
    return client.get(f"/masks/{name}", cast_to=object)


def apply_mask(mask: dict, messages: list[dict], params: dict) -> tuple[list[dict], dict]:
    """Chat-completions messages and parameters with a mask applied: its system prompt and few-shot
    messages go first, its model and settings fill what the caller did not set."""
    head = [{"role": "system", "content": mask["system_prompt"]}] if mask.get("system_prompt") else []
    head += list(mask.get("messages") or [])
    merged = dict(params)
    if mask.get("model") and not merged.get("model"):
        merged["model"] = mask["model"]
    for key, value in (mask.get("settings") or {}).items():
        merged.setdefault(key, value)
    return head + [m for m in messages if m.get("role") != "system" or not head], merged
