"""``/openapi.json`` as a true contract: every operation documents the error statuses the server answers,
with the error envelope's schema, and none it never sends.

FastAPI documents 422 for any route with parameters; this server answers 400 for invalid requests
(OpenAI's convention), so 422 is replaced. POST operations that take no parameters (cancel, and the like)
state that their body is optional and ignored, so clients and fuzzers see what is really accepted.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tuneforge.api.schemas import ErrorEnvelope

ERROR_STATUSES = {
    "400": "Invalid request: a parameter is missing, malformed or not supported",
    "401": "Missing or invalid API key",
    "403": "The key may not do this",
    "404": "No such object (or it belongs to another project), or no such model",
    "409": "The object is not in a state that allows this",
    "413": "The request or upload is too large",
    "500": "Server error (the response carries the request id)",
    "502": "An upstream provider failed or could not be reached",
    "503": "The model's weights could not be loaded",
}
_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_IGNORED_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "This operation takes no parameters; a body, if sent, is ignored.",
            }
        }
    },
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas.update(schemas["ErrorEnvelope"].pop("$defs", {}))
            for path, item in spec.get("paths", {}).items():
                for method, operation in item.items():
                    _document(path, method, operation)
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi


def _document(path: str, method: str, operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    if path in ("/health",):
        return
    for status, description in ERROR_STATUSES.items():
        responses.setdefault(
            status, {"description": description, "content": {"application/json": {"schema": _ENVELOPE_REF}}}
        )
    if method == "post" and "requestBody" not in operation:
        operation["requestBody"] = _IGNORED_BODY
