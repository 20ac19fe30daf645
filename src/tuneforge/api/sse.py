"""The one server-sent-events writer.

Three streams use it: generation chunks (``data: {json}`` ... ``data: [DONE]``, as the OpenAI SDK parses
them), assistants run events (``event: thread.run.created`` + ``data:``, ending ``event: done``) and
fine-tuning job events (``id:`` cursors for Last-Event-ID, keep-alive comments while a job is quiet).
A source yields dicts (plain ``data:`` events), ``ServerEvent``s, or ``KEEPALIVE``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.responses import StreamingResponse

from tuneforge.errors import TuneforgeError

log = logging.getLogger("tuneforge.api")

HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy buffering of tokens
KEEPALIVE = object()


@dataclass(frozen=True)
class ServerEvent:
    data: Any  # a dict or list is sent as JSON, a string as it is
    name: str | None = None
    id: str | int | None = None

    def encode(self) -> bytes:
        data = (
            self.data
            if isinstance(self.data, str)
            else json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        )
        head = (f"id: {self.id}\n" if self.id is not None else "") + (
            f"event: {self.name}\n" if self.name else ""
        )
        return f"{head}data: {data}\n\n".encode()


DONE = ServerEvent("[DONE]")


def error_event(exc: Exception) -> ServerEvent:
    """An error after the 200 headers went out: the SDK raises ``APIError`` on this payload."""
    if isinstance(exc, TuneforgeError):
        body = exc.to_dict()
    else:
        body = {
            "message": "The server had an error while generating. Check the server log.",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    return ServerEvent({"error": body})


async def _write(source: AsyncIterator, done: ServerEvent | None) -> AsyncIterator[bytes]:
    try:
        async for item in source:
            if item is KEEPALIVE:
                yield b": keep-alive\n\n"
            else:
                yield (item if isinstance(item, ServerEvent) else ServerEvent(item)).encode()
    except TuneforgeError as exc:
        yield error_event(exc).encode()
        return
    except Exception as exc:  # noqa: BLE001 - reported in-band; the status line is already sent
        log.exception("stream failed")
        yield error_event(exc).encode()
        return
    finally:
        await source.aclose()  # client gone or done: stop the work behind it
    if done is not None:
        yield done.encode()


def sse_response(source: AsyncIterator, *, done: ServerEvent | None = DONE) -> StreamingResponse:
    return StreamingResponse(_write(source, done), media_type="text/event-stream", headers=HEADERS)
