"""Convert an uploaded file to chat JSONL — the server twin of ``tuneforge data convert`` (an extension).

The web console uploads any supported format (CSV, XLSX, Alpaca/ShareGPT JSON, markdown, ...), asks
what shape was detected, previews the conversion (with the CLI's ``--map`` spec when the shape is
custom) and saves the result as a new ``fine-tune`` file. Nothing here imports FastAPI.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.errors import InvalidRequest
from tuneforge.files import service as files_service


class ConvertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    map: list[str] | None = Field(None, description="The CLI's --map specs, e.g. ['user=问题', 'assistant=答案']")
    shape: Literal["chat", "dpo", "preference_pairs", "prompt_completion", "alpaca", "sharegpt", "qa_table"] | None = \
        Field(None, description="Force an input shape instead of detecting it")
    system: str | None = Field(None, description="A system message added to every example")
    preview: int = Field(3, ge=0, le=20, description="How many converted examples to return")
    save: bool = Field(False, description="Store the converted JSONL as a new fine-tune file")
    filename: str | None = Field(None, max_length=255, description="Name of the saved file")


class DroppedLine(BaseModel):
    line: int
    reason: str


class ConvertResult(BaseModel):
    object: Literal["tuneforge.file_conversion"] = "tuneforge.file_conversion"
    file_id: str
    shape: str
    detected: str
    keys: list[str] = Field(description="Field names of the first input record (for a mapping form)")
    sample: Any = Field(None, description="The first input record as read")
    preview: list[dict]
    written: int | None = None
    dropped_count: int = 0
    dropped: list[DroppedLine] = []
    file: dict | None = Field(None, description="The saved file object when save=true")


def _clean(message: str, folder: Path) -> str:
    """Error messages of the toolkit name paths; the caller must not see the server's folders."""
    return message.replace(str(folder) + "/", "").replace(str(folder), "")


def _keys(record: Any) -> list[str]:
    return [str(k) for k in record] if isinstance(record, dict) else []


def convert_uploaded_file(state, project_id: str, file_id: str, request: ConvertRequest) -> dict:
    from tuneforge.data import MapError, ReadError, ShapeError, convert_file, plan_conversion
    from tuneforge.data.readers import file_kind, iter_records

    with state.db.session() as session:
        row = files_service.get_file(session, project_id, file_id)
        blob = files_service.file_path(state.store, row)
        filename = row.filename
    # The readers choose by extension; stored blobs have none, so link the blob under its upload name.
    safe = re.sub(r"[^\w.\-]+", "_", Path(filename).name) or "upload.jsonl"
    with tempfile.TemporaryDirectory(prefix="tf-convert-") as tmp:
        folder = Path(tmp)
        link = folder / safe
        link.symlink_to(blob)
        try:
            conv = plan_conversion(link, shape=request.shape, mapping=request.map, system=request.system)
            sample = None
            if file_kind(link) == "records":
                sample = next((r.data for r in itertools.islice(iter_records(link), 200) if r.ok), None)
            preview = [ex for _, ex, err in itertools.islice(conv.items(), 200) if err is None]
            result = ConvertResult(file_id=file_id, shape=conv.shape, detected=conv.message, keys=_keys(sample),
                                   sample=sample, preview=preview[:request.preview])
            if request.save:
                out = folder / "converted.jsonl"
                fixed = convert_file(link, out, shape=request.shape, mapping=request.map, system=request.system)
                if not fixed.written:
                    reasons = "; ".join(f"line {ln}: {_clean(r, folder)}" for ln, r in fixed.dropped[:3])
                    raise InvalidRequest(f"No record could be converted ({reasons or 'the file is empty'}).",
                                         param="map")
                result.written = fixed.written
                result.dropped_count = fixed.dropped_count
                result.dropped = [DroppedLine(line=ln, reason=_clean(r, folder)) for ln, r in fixed.dropped[:50]]
                name = request.filename or (Path(filename).stem + ".jsonl")
                result.file = _store(state, project_id, out, name)
        except (ReadError, MapError, ShapeError) as e:
            raise InvalidRequest(_clean(str(e), folder), param="map" if isinstance(e, MapError) else "file") from e
    return result.model_dump()


def _store(state, project_id: str, path: Path, filename: str) -> dict:
    writer = state.store.writer()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    with state.db.session() as session:
        row = files_service.create_file(session, state.store, project_id=project_id, writer=writer,
                                        filename=filename, purpose="fine-tune")
        return files_service.file_object(row)
