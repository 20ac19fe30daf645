"""Server-sent events as the OpenAI SDK parses them: ``data: <json>\\n\\n`` ... ``data: [DONE]\\n\\n``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from tuneforge.errors import TuneforgeError

log = logging.getLogger("tuneforge.api")

DONE = b"data: [DONE]\n\n"
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # no proxy buffering of tokens


def event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def error_event(exc: Exception) -> bytes:
    """An error after the 200 headers went out: the SDK raises ``APIError`` on this payload."""
    if isinstance(exc, TuneforgeError):
        body = exc.to_dict()
    else:
        body = {"message": "The server had an error while generating. Check the server log.",
                "type": "server_error", "param": None, "code": "server_error"}
    return event({"error": body})


async def _encode(chunks: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield event(chunk)
    except TuneforgeError as exc:
        yield error_event(exc)
        return
    except Exception as exc:  # noqa: BLE001 - reported in-band; the status line is already sent
        log.exception("stream failed")
        yield error_event(exc)
        return
    finally:
        await chunks.aclose()  # client gone or done: stop the generation behind it
    yield DONE


def sse_response(chunks: AsyncIterator[dict]) -> StreamingResponse:
    return StreamingResponse(_encode(chunks), media_type="text/event-stream", headers=HEADERS)
