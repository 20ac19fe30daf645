"""``/v1/evals``: an eval says what its items look like and how each sample is graded.

``data_source_config`` ``custom`` (an ``item_schema``, JSON Schema, checked against every item of a run;
``include_sample_schema`` adds the ``sample`` namespace) is supported; ``logs`` and
``stored_completions`` need stored chat logs, which this server does not keep (400 saying so).
``testing_criteria`` are graders (``evals.graders``), each optionally with a ``pass_threshold``.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import EvalRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.evals import graders
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps, loads

_SAMPLE_SCHEMA = {"type": "object", "properties": {
    "model": {"type": "string"}, "choices": {"type": "array"}, "output_text": {"type": "string"},
    "output_json": {"type": "object"}}, "required": ["model", "choices"]}


def _data_source_config(value) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest("'data_source_config' must be an object.", param="data_source_config")
    kind = value.get("type")
    if kind in ("logs", "stored_completions"):
        raise InvalidRequest(f"data_source_config '{kind}' needs stored chat completions, which this server does "
                             "not keep; use 'custom' with an item_schema.", param="data_source_config.type",
                             code="unsupported_parameter")
    if kind != "custom":
        raise InvalidRequest(f"Invalid 'data_source_config.type': {kind!r}; expected 'custom'.",
                             param="data_source_config.type")
    schema = value.get("item_schema")
    if not isinstance(schema, dict):
        raise InvalidRequest("'data_source_config.item_schema' must be a JSON Schema object.",
                             param="data_source_config.item_schema")
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(f"Invalid 'data_source_config.item_schema': {exc.message}",
                             param="data_source_config.item_schema") from None
    include_sample = bool(value.get("include_sample_schema", False))
    properties = {"item": schema}
    if include_sample:
        properties["sample"] = _SAMPLE_SCHEMA
    return {"type": "custom", "schema": {"type": "object", "properties": properties,
                                         "required": ["item", "sample"] if include_sample else ["item"]},
            "item_schema": schema, "include_sample_schema": include_sample}


def _criteria(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'testing_criteria' must be a non-empty list of graders.", param="testing_criteria")
    names = set()
    out = []
    for i, grader in enumerate(value):
        graders.validate(grader, f"testing_criteria[{i}]")
        if grader["name"] in names:
            raise InvalidRequest(f"Duplicate testing criterion name {grader['name']!r}.",
                                 param=f"testing_criteria[{i}].name")
        names.add(grader["name"])
        out.append(grader)
    return out


def eval_object(row: EvalRow) -> dict:
    return {"id": row.id, "object": "eval", "name": row.name, "created_at": row.created_at,
            "data_source_config": json.loads(row.data_source_config),
            "testing_criteria": json.loads(row.testing_criteria), "metadata": loads(row.metadata_json, {})}


def create_eval(session: Session, project_id: str, body: dict) -> dict:
    config = _data_source_config(body.get("data_source_config"))
    criteria = _criteria(body.get("testing_criteria"))
    metadata = check_metadata(body.get("metadata"))
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'name' must be a string.", param="name")
    eval_id = new_id("eval_")
    row = EvalRow(id=eval_id, project_id=project_id, name=name or eval_id, data_source_config=json.dumps(config),
                  testing_criteria=json.dumps(criteria), metadata_json=dumps(metadata), created_at=now_s())
    session.add(row)
    session.flush()
    return eval_object(row)


def get_eval(session: Session, project_id: str, eval_id: str) -> EvalRow:
    row = session.get(EvalRow, eval_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No eval found with id '{eval_id}'.", param="eval_id")
    return row


def list_evals(session: Session, project_id: str, *, limit: int, order: str, after: str | None,
               before: str | None = None, order_by: str = "created_at") -> dict:
    if order_by not in ("created_at", "updated_at"):
        raise InvalidRequest("Invalid 'order_by': expected 'created_at' or 'updated_at'.", param="order_by")
    stmt = select(EvalRow).where(EvalRow.project_id == project_id)
    return paginate(session, stmt, EvalRow.id, limit=check_limit(limit, 100), order=order, after=after,
                    before=before, serialize=eval_object)


def update_eval(session: Session, project_id: str, eval_id: str, body: dict) -> dict:
    row = get_eval(session, project_id, eval_id)
    if "name" in body:
        if not isinstance(body["name"], str) or not body["name"]:
            raise InvalidRequest("'name' must be a non-empty string.", param="name")
        row.name = body["name"]
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    session.flush()
    return eval_object(row)


def delete_eval(session: Session, project_id: str, eval_id: str) -> dict:
    from tuneforge.db.models import EvalItemRow, EvalRunRow

    row = get_eval(session, project_id, eval_id)
    run_ids = list(session.scalars(select(EvalRunRow.id).where(EvalRunRow.eval_id == eval_id)))
    if run_ids:  # SQLite without PRAGMA foreign_keys does not cascade: delete children explicitly
        session.query(EvalItemRow).filter(EvalItemRow.run_id.in_(run_ids)).delete(synchronize_session=False)
        session.query(EvalRunRow).filter(EvalRunRow.id.in_(run_ids)).delete(synchronize_session=False)
    session.delete(row)
    session.flush()
    return {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}
