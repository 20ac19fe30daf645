"""/v1/vector_stores: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.vector_stores import service
from tuneforge.errors import InvalidRequest
from tuneforge.projects import Principal
from tuneforge.retrieval.ingest import ingestor_for

router = APIRouter(tags=["vector_stores"])
Order = Literal["asc", "desc"]


async def json_object(request: Request) -> dict:
    """The request's JSON object body ({} when empty): services validate fields themselves, with
    OpenAI's messages, and unknown fields are ignored as OpenAI's SDK may send newer ones."""
    raw = await request.body()
    if not raw.strip():
        return {}
    import json

    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("We could not parse the JSON body of your request. (HINT: This likely means you "
                             "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                             code=None) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


@router.post("/vector_stores")
def create_vector_store(body: dict = Depends(json_object), state: AppState = Depends(get_state),
                        session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.create_store(session, ingestor_for(state), principal.project_id, body)


@router.get("/vector_stores")
def list_vector_stores(limit: int = Query(20), order: Order = "desc", after: str | None = None,
                       before: str | None = None, session: Session = Depends(get_session),
                       principal: Principal = Depends(get_principal)):
    return service.list_stores(session, principal.project_id, limit=limit, order=order, after=after, before=before)


@router.get("/vector_stores/{store_id}")
def retrieve_vector_store(store_id: str, session: Session = Depends(get_session),
                          principal: Principal = Depends(get_principal)):
    return service.retrieve_store(session, principal.project_id, store_id)


@router.post("/vector_stores/{store_id}")
def modify_vector_store(store_id: str, body: dict = Depends(json_object), session: Session = Depends(get_session),
                        principal: Principal = Depends(get_principal)):
    return service.modify_store(session, principal.project_id, store_id, body)


@router.delete("/vector_stores/{store_id}")
def delete_vector_store(store_id: str, session: Session = Depends(get_session),
                        principal: Principal = Depends(get_principal)):
    return service.delete_store(session, principal.project_id, store_id)


@router.post("/vector_stores/{store_id}/search")
def search_vector_store(store_id: str, body: dict = Depends(json_object), session: Session = Depends(get_session),
                        principal: Principal = Depends(get_principal)):
    return service.search(session, principal.project_id, store_id, body)


@router.post("/vector_stores/{store_id}/files")
def create_vector_store_file(store_id: str, body: dict = Depends(json_object), state: AppState = Depends(get_state),
                             session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.create_file(session, ingestor_for(state), principal.project_id, store_id, body)


@router.get("/vector_stores/{store_id}/files")
def list_vector_store_files(store_id: str, limit: int = Query(20), order: Order = "desc", after: str | None = None,
                            before: str | None = None, filter: str | None = None,
                            session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.list_files(session, principal.project_id, store_id, limit=limit, order=order, after=after,
                              before=before, status=filter)


@router.get("/vector_stores/{store_id}/files/{file_id}")
def retrieve_vector_store_file(store_id: str, file_id: str, session: Session = Depends(get_session),
                               principal: Principal = Depends(get_principal)):
    return service.file_object(service.get_file(session, principal.project_id, store_id, file_id))


@router.post("/vector_stores/{store_id}/files/{file_id}")
def update_vector_store_file(store_id: str, file_id: str, body: dict = Depends(json_object),
                             session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.update_file(session, principal.project_id, store_id, file_id, body)


@router.delete("/vector_stores/{store_id}/files/{file_id}")
def delete_vector_store_file(store_id: str, file_id: str, session: Session = Depends(get_session),
                             principal: Principal = Depends(get_principal)):
    return service.delete_file(session, principal.project_id, store_id, file_id)


@router.get("/vector_stores/{store_id}/files/{file_id}/content")
def vector_store_file_content(store_id: str, file_id: str, session: Session = Depends(get_session),
                              principal: Principal = Depends(get_principal)):
    return service.file_content(session, principal.project_id, store_id, file_id)


@router.post("/vector_stores/{store_id}/file_batches")
def create_file_batch(store_id: str, body: dict = Depends(json_object), state: AppState = Depends(get_state),
                      session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.create_batch(session, ingestor_for(state), principal.project_id, store_id, body)


@router.get("/vector_stores/{store_id}/file_batches/{batch_id}")
def retrieve_file_batch(store_id: str, batch_id: str, session: Session = Depends(get_session),
                        principal: Principal = Depends(get_principal)):
    return service.batch_object(session, service.get_batch(session, principal.project_id, store_id, batch_id))


@router.post("/vector_stores/{store_id}/file_batches/{batch_id}/cancel")
def cancel_file_batch(store_id: str, batch_id: str, session: Session = Depends(get_session),
                      principal: Principal = Depends(get_principal)):
    return service.cancel_batch(session, principal.project_id, store_id, batch_id)


@router.get("/vector_stores/{store_id}/file_batches/{batch_id}/files")
def list_file_batch_files(store_id: str, batch_id: str, limit: int = Query(20), order: Order = "desc",
                          after: str | None = None, before: str | None = None, filter: str | None = None,
                          session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    service.get_batch(session, principal.project_id, store_id, batch_id)
    return service.list_files(session, principal.project_id, store_id, limit=limit, order=order, after=after,
                              before=before, status=filter, batch_id=batch_id)
