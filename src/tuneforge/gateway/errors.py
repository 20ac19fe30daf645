"""The gateway's one error type, and key redaction.

Every upstream failure, whether the provider answered 4xx/5xx or could not be reached, becomes an
``UpstreamError``: a ``TuneforgeError`` carrying the provider's status, type, code and message, so the API
maps it to OpenAI's envelope in one place. Messages pass through ``redact`` first: some providers and
proxies echo the request's Authorization header in their error text, and the upstream key must never
reach a client, a log line or the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from tuneforge.errors import TuneforgeError

# Bearer tokens and OpenAI-style secret keys (sk-..., sk-proj-...), whatever the provider.
_TOKEN_PATTERNS = (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
                   re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"))
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every configured secret and anything shaped like a bearer token or API key removed."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _TOKEN_PATTERNS[0].sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN_PATTERNS[1].sub(REDACTED, text)


class UpstreamError(TuneforgeError):
    """An upstream's error, passed on with its own status, type, code and (redacted) message."""

    def __init__(self, message: str, *, status: int = 502, type: str | None = None, param: str | None = None,
                 code: str | None = None):
        super().__init__(message, param=param, code=code or "upstream_error")
        self.status_code = status
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")

    @classmethod
    def unreachable(cls, name: str, exc: Exception) -> UpstreamError:
        return cls(f"The upstream provider '{name}' for this model could not be reached ({type(exc).__name__}).",
                   status=502, type="server_error", code="upstream_unavailable")

    @classmethod
    def backend_unavailable(cls, name: str, exc: Exception) -> UpstreamError:
        """A serving backend of this server (a vLLM server) is down: 503, the client may retry later."""
        return cls(f"The {name} for this model could not be reached ({type(exc).__name__}); it may be down or "
                   "still starting. Try again later.", status=503, type="server_error", code="backend_unavailable")

    @classmethod
    def from_response(cls, name: str, status: int, content: bytes, secrets: Iterable[str] = ()) -> UpstreamError:
        secrets = tuple(secrets)
        error: dict = {}
        try:
            body = json.loads(content)
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                error = body["error"]
        except ValueError:
            pass
        if error:
            message = str(error.get("message") or f"The upstream '{name}' answered HTTP {status}.")
        else:
            text = content.decode("utf-8", "replace")[:2000] or f"HTTP {status}"
            message = f"Upstream '{name}' answered {status}: {text}"

        def clean(value):
            return redact(str(value), secrets) if value is not None else None

        return cls(redact(message, secrets), status=status, type=clean(error.get("type")),
                   param=clean(error.get("param")), code=clean(error.get("code")))
