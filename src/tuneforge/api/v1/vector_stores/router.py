"""/v1/vector_stores: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PageDep, PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.vector_stores.protocol import (
    CreateFileBatchRequest,
    CreateVectorStoreFileRequest,
    CreateVectorStoreRequest,
    SearchVectorStoreRequest,
    UpdateVectorStoreFileRequest,
    UpdateVectorStoreRequest,
)
from tuneforge.retrieval import stores as service

router = APIRouter(tags=["vector_stores"])


@router.post("/vector_stores")
def create_vector_store(
    state: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    body: CreateVectorStoreRequest | None = None,
):
    return service.create_store(session, state.ingestor, principal.project_id, sent(body))


@router.get("/vector_stores")
def list_vector_stores(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
):
    return service.list_stores(session, principal.project_id, **page)


@router.get("/vector_stores/{store_id}")
def retrieve_vector_store(session: SessionDep, principal: PrincipalDep, store_id: str):
    return service.retrieve_store(session, principal.project_id, store_id)


@router.post("/vector_stores/{store_id}")
def modify_vector_store(
    session: SessionDep, principal: PrincipalDep, store_id: str, body: UpdateVectorStoreRequest | None = None
):
    return service.modify_store(session, principal.project_id, store_id, sent(body))


@router.delete("/vector_stores/{store_id}")
def delete_vector_store(session: SessionDep, principal: PrincipalDep, store_id: str):
    return service.delete_store(session, principal.project_id, store_id)


@router.post("/vector_stores/{store_id}/search")
def search_vector_store(
    session: SessionDep, principal: PrincipalDep, body: SearchVectorStoreRequest, store_id: str
):
    return service.search(session, principal.project_id, store_id, sent(body))


@router.post("/vector_stores/{store_id}/files")
def create_vector_store_file(
    state: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    body: CreateVectorStoreFileRequest,
    store_id: str,
):
    return service.create_file(session, state.ingestor, principal.project_id, store_id, sent(body))


@router.get("/vector_stores/{store_id}/files")
def list_vector_store_files(
    session: SessionDep,
    principal: PrincipalDep,
    store_id: str,
    page: PageDep,
    filter: str | None = None,
):
    return service.list_files(
        session,
        principal.project_id,
        store_id,
        **page,
        status=filter,
    )


@router.get("/vector_stores/{store_id}/files/{file_id}")
def retrieve_vector_store_file(session: SessionDep, principal: PrincipalDep, store_id: str, file_id: str):
    return service.file_object(service.get_file(session, principal.project_id, store_id, file_id))


@router.post("/vector_stores/{store_id}/files/{file_id}")
def update_vector_store_file(
    session: SessionDep,
    principal: PrincipalDep,
    store_id: str,
    file_id: str,
    body: UpdateVectorStoreFileRequest | None = None,
):
    return service.update_file(session, principal.project_id, store_id, file_id, sent(body))


@router.delete("/vector_stores/{store_id}/files/{file_id}")
def delete_vector_store_file(session: SessionDep, principal: PrincipalDep, store_id: str, file_id: str):
    return service.delete_file(session, principal.project_id, store_id, file_id)


@router.get("/vector_stores/{store_id}/files/{file_id}/content")
def vector_store_file_content(session: SessionDep, principal: PrincipalDep, store_id: str, file_id: str):
    return service.file_content(session, principal.project_id, store_id, file_id)


@router.post("/vector_stores/{store_id}/file_batches")
def create_file_batch(
    state: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    store_id: str,
    body: CreateFileBatchRequest | None = None,
):
    return service.create_batch(session, state.ingestor, principal.project_id, store_id, sent(body))


@router.get("/vector_stores/{store_id}/file_batches/{batch_id}")
def retrieve_file_batch(session: SessionDep, principal: PrincipalDep, store_id: str, batch_id: str):
    return service.batch_object(session, service.get_batch(session, principal.project_id, store_id, batch_id))


@router.post("/vector_stores/{store_id}/file_batches/{batch_id}/cancel")
def cancel_file_batch(session: SessionDep, principal: PrincipalDep, store_id: str, batch_id: str):
    return service.cancel_batch(session, principal.project_id, store_id, batch_id)


@router.get("/vector_stores/{store_id}/file_batches/{batch_id}/files")
def list_file_batch_files(
    session: SessionDep,
    principal: PrincipalDep,
    store_id: str,
    batch_id: str,
    page: PageDep,
    filter: str | None = None,
):
    service.get_batch(session, principal.project_id, store_id, batch_id)
    return service.list_files(
        session,
        principal.project_id,
        store_id,
        **page,
        status=filter,
        batch_id=batch_id,
    )
