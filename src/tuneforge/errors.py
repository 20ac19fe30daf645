"""Errors raised by services; the API layer turns them into OpenAI's error envelope.

Services never import FastAPI, so they raise these and the router-independent handler in
``tuneforge.api.errors`` maps them to HTTP.
"""

from __future__ import annotations


class TuneforgeError(Exception):
    status_code = 400
    type = "invalid_request_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def to_dict(self) -> dict:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


class InvalidRequest(TuneforgeError):
    status_code = 400


class AuthenticationFailed(TuneforgeError):
    status_code = 401
    default_code = "invalid_api_key"


class PermissionDenied(TuneforgeError):
    status_code = 403
    default_code = "permission_denied"


class NotFound(TuneforgeError):
    status_code = 404


class Conflict(TuneforgeError):
    status_code = 409
    default_code = "conflict"


class PayloadTooLarge(TuneforgeError):
    status_code = 413
    default_code = "file_too_large"


class RateLimited(TuneforgeError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ModelUnavailable(TuneforgeError):
    """A registered model whose weights cannot be loaded: the server is fine, this model is not."""

    status_code = 503
    type = "server_error"
    default_code = "model_unavailable"


class ServerError(TuneforgeError):
    status_code = 500
    type = "server_error"
    default_code = "server_error"
