"""/v1/models: base models from the registry; fine-tuned models join in with the training issue."""

from __future__ import annotations

from tuneforge.errors import NotFound
from tuneforge.registry import BaseModelInfo, ModelRegistry


def model_object(info: BaseModelInfo) -> dict:
    obj = info.to_model_object()
    # Extra fields are ours; the SDK keeps unknown fields, strict clients ignore them.
    obj["tuneforge"] = {"source": info.source, "format": info.format, "context_length": info.context_length}
    return obj


def list_models(registry: ModelRegistry) -> dict:
    return {"object": "list", "data": [model_object(m) for m in registry.list_base_models()]}


def retrieve_model(registry: ModelRegistry, model_id: str) -> dict:
    info = registry.find(model_id)
    if info is None or info.source == "hub":
        # Hub ids are loadable on demand but are not "served models" until someone uses them.
        raise NotFound(f"The model '{model_id}' does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    return model_object(info)


def delete_model(registry: ModelRegistry, model_id: str, project_id: str) -> dict:
    registry.unregister(model_id, project_id)
    return {"id": model_id, "object": "model", "deleted": True}
