"""/v1/models: base models from the registry plus the project's fine-tuned models and checkpoints."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneforge import catalog
from tuneforge.registry import BaseModelInfo, ModelRegistry
from tuneforge.settings import Settings


def model_object(info: BaseModelInfo) -> dict:
    obj = info.to_model_object()
    # Extra fields are ours; the SDK keeps unknown fields, strict clients ignore them.
    obj["tuneforge"] = {"source": info.source, "format": info.format, "context_length": info.context_length}
    return obj


def list_models(session: Session, registry: ModelRegistry, settings: Settings, project_id: str) -> dict:
    data = [model_object(m) for m in registry.list_base_models()]
    data += [m.to_model_object() for m in catalog.list_fine_tuned(session, registry, settings, project_id)]
    data += _serving_models(settings, {m["id"] for m in data})
    return {"object": "list", "data": data}


def _serving_models(settings: Settings, seen: set[str]) -> list[dict]:
    """The embeddings model and, when reachable, the upstream providers' models (issue #5)."""
    from tuneforge.api.v1.embeddings.service import model_object as embedding_model
    from tuneforge.inference.upstream import get_router

    out = [embedding_model(settings.embedding_model)]
    out += [m for m in get_router(settings).list_models() if m["id"] not in seen]
    return out


def retrieve_model(session: Session, registry: ModelRegistry, settings: Settings, model_id: str,
                   project_id: str) -> dict:
    from tuneforge.inference.upstream import get_router

    if model_id == settings.embedding_model:
        from tuneforge.api.v1.embeddings.service import model_object as embedding_model

        return embedding_model(model_id)
    router = get_router(settings)
    if router.match(model_id) is not None:
        found = router.find_model(model_id)
        if found is None:
            raise catalog.model_not_found(model_id)
        return found
    if model_id.startswith("ft:"):
        return catalog.resolve(session, registry, settings, model_id, project_id).to_model_object()
    info = registry.find(model_id)
    if info is None or info.source == "hub":
        # Hub ids are loadable on demand but are not "served models" until someone uses them.
        raise catalog.model_not_found(model_id)
    return model_object(info)


def delete_model(session: Session, registry: ModelRegistry, settings: Settings, model_id: str,
                 project_id: str) -> dict:
    if model_id.startswith("ft:"):
        catalog.delete_fine_tuned(session, settings, model_id, project_id)
    else:
        registry.unregister(model_id, project_id)
    return {"id": model_id, "object": "model", "deleted": True}
