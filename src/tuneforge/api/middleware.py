"""Request context as plain ASGI middleware: request ids, one access-log line, 500s in the envelope.

Plain ASGI (not ``@app.middleware("http")``): Starlette's BaseHTTPMiddleware wraps the receive
channel, which hides a client's disconnect from handlers, and the chat API relies on seeing it to
stop generating for a client that has gone away.
"""

from __future__ import annotations

import logging
import time
import uuid

from tuneforge.api.errors import error_response
from tuneforge.logging_setup import request_id_var

log = logging.getLogger("tuneforge.api")


class RequestContextMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied[:200] or f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state = {"status": None}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if state["status"] is not None:
                raise  # the response already started; nothing clean left to send
            response = error_response(
                500,
                "The server had an error while processing your request. "
                "Quote the x-request-id header when you report it.",
                code="server_error",
            )
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            log.info(
                "%s %s -> %s",
                scope.get("method"),
                scope.get("path"),
                state["status"],
                extra={
                    "fields": {
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "request_id": request_id,
                    }
                },
            )
