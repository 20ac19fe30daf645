"""Streaming multipart/form-data parser: file parts go straight to the blob store.

Starlette's form parser spools a whole upload to a temp file before the handler sees it, so a
size limit could only be checked after the fact. This parser enforces the limit while bytes
arrive (413 at the first byte past it) and aborts every partial blob on any error, so a failed
or oversized upload leaves nothing on disk.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tuneforge.errors import InvalidRequest, PayloadTooLarge
from tuneforge.storage import BlobStore, BlobWriter

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 1000


@dataclass
class StreamedFile:
    field: str
    filename: str
    content_type: str | None
    writer: BlobWriter


@dataclass
class ParsedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[StreamedFile] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def abort(self) -> None:
        for f in self.files:
            f.writer.abort()


def safe_filename(raw: str) -> str:
    """Display name only: the blob key never derives from it. Path parts are dropped."""
    # Control characters (and NUL) have no place in a name shown in listings and headers.
    name = "".join(c for c in raw if unicodedata.category(c) != "Cc")
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    return (name if name not in ("", ".", "..") else "upload")[:255]


def too_large_message(limit: int) -> str:
    return f"File is too large: the limit is {limit} bytes ({limit / 1024 / 1024:.0f} MB)."


async def parse_multipart(request: Request, store: BlobStore, *, max_file_bytes: int) -> ParsedForm:
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidRequest("Expected a multipart/form-data body (with a 'file' part).")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + 1024 * 1024:
        raise PayloadTooLarge(too_large_message(max_file_bytes))

    form = ParsedForm()
    state: dict = {"headers": {}, "header_field": b"", "header_value": b"", "current": None, "value": None}

    def on_part_begin() -> None:
        state["headers"] = {}
        state["current"] = None
        state["value"] = None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_field"].decode("latin-1").lower()] = state["header_value"]
        state["header_field"] = b""
        state["header_value"] = b""

    def on_headers_finished() -> None:
        if len(form.files) + sum(len(v) for v in form.fields.values()) >= MAX_PARTS:
            raise InvalidRequest("Too many parts in the multipart body.")
        _, disp = parse_options_header(state["headers"].get("content-disposition"))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disp:
            filename = safe_filename(disp[b"filename"].decode("utf-8", "replace"))
            ctype = state["headers"].get("content-type")
            streamed = StreamedFile(
                name, filename, ctype.decode("latin-1") if ctype else None, store.writer()
            )
            form.files.append(streamed)
            state["current"] = streamed
        else:
            state["value"] = (name, bytearray())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        current: StreamedFile | None = state["current"]
        if current is not None:
            if current.writer.size + len(chunk) > max_file_bytes:
                raise PayloadTooLarge(too_large_message(max_file_bytes))
            current.writer.write(chunk)
        elif state["value"] is not None:
            buf = state["value"][1]
            if len(buf) + len(chunk) > MAX_FIELD_BYTES:
                raise InvalidRequest(f"Form field '{state['value'][0]}' is too long.")
            buf.extend(chunk)

    def on_part_end() -> None:
        if state["value"] is not None:
            name, buf = state["value"]
            form.fields.setdefault(name, []).append(buf.decode("utf-8", "replace"))
        state["value"] = None
        state["current"] = None

    parser = MultipartParser(
        params[b"boundary"],
        callbacks={
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                # file writes block: keep them off the event loop
                await run_in_threadpool(parser.write, chunk)
        parser.finalize()
    except PayloadTooLarge:
        form.abort()
        raise
    except InvalidRequest:
        form.abort()
        raise
    except Exception as exc:  # malformed body, client went away, disk error
        form.abort()
        raise InvalidRequest(f"Could not read the multipart body: {exc}") from exc
    return form
