"""/v1/models: base models from the registry plus the project's fine-tuned models and checkpoints."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneforge.gateway import Gateway
from tuneforge.models import catalog
from tuneforge.models.registry import BaseModelInfo, ModelRegistry
from tuneforge.serving.embeddings import model_object as embedding_model
from tuneforge.settings import Settings


def model_object(info: BaseModelInfo) -> dict:
    obj = info.to_model_object()
    # Extra fields are ours; the SDK keeps unknown fields, strict clients ignore them.
    obj["tuneforge"] = {"source": info.source, "format": info.format, "context_length": info.context_length}
    return obj


def mark_backend(obj: dict, gateway: Gateway) -> dict:
    """Say so in the ``tuneforge`` extension when a vLLM or llama.cpp server serves the model (its base)."""
    ext = obj.get("tuneforge")
    if isinstance(ext, dict) and gateway.serves_bases and ext.get("source") in ("bundled", "local", "fine-tuned"):
        backend = gateway.backend_of(ext.get("base_model") or obj["id"])
        if backend is not None:
            ext["backend"] = backend
    return obj


def list_models(session: Session, registry: ModelRegistry, settings: Settings, gateway: Gateway,
                project_id: str) -> dict:
    data = [model_object(m) for m in registry.list_base_models(project_id)]
    data += [m.to_model_object() for m in catalog.list_fine_tuned(session, registry, settings, project_id)]
    data = [mark_backend(m, gateway) for m in data]
    # the embeddings model and, when reachable, the upstream providers' models
    seen = {m["id"] for m in data}
    data += [embedding_model(settings.embedding_model)]
    data += [m for m in gateway.list_models() if m["id"] not in seen]
    return {"object": "list", "data": data}


def retrieve_model(session: Session, registry: ModelRegistry, settings: Settings, gateway: Gateway, model_id: str,
                   project_id: str) -> dict:
    if model_id == settings.embedding_model:
        return embedding_model(model_id)
    if gateway.resolve(model_id) is not None:
        found = gateway.find_model(model_id)
        if found is None:
            raise catalog.model_not_found(model_id)
        return found
    if model_id.startswith("ft:"):
        return mark_backend(catalog.resolve(session, registry, settings, model_id, project_id).to_model_object(),
                            gateway)
    info = registry.find(model_id, project_id)
    if info is None or info.source == "hub":
        # Hub ids are loadable on demand but are not "served models" until someone uses them.
        raise catalog.model_not_found(model_id)
    return mark_backend(model_object(info), gateway)


def delete_model(session: Session, registry: ModelRegistry, settings: Settings, model_id: str,
                 project_id: str, gateway: Gateway | None = None) -> dict:
    if model_id.startswith("ft:"):
        base_model = catalog.resolve(session, registry, settings, model_id, project_id).base_model
        catalog.delete_fine_tuned(session, settings, model_id, project_id)
        if gateway is not None:  # served on vLLM: unload it there too
            gateway.unload_adapter(base_model, model_id)
    else:
        registry.unregister(model_id, project_id)
    return {"id": model_id, "object": "model", "deleted": True}
