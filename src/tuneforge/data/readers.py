"""Record readers: JSONL (streamed), JSON, CSV/TSV and XLSX.

Every reader yields :class:`Record` objects carrying the 1-based line number (JSONL, CSV/TSV), the
spreadsheet row (XLSX) or the record number (JSON array) so that checks and conversions can point
at the exact place in the user's file. JSONL is never loaded whole: lines are read one at a time
and memory stays flat however big the file is.

Document-like formats (txt, md, folders of markdown posts, docx, html, pdf) are read by
:mod:`tuneforge.data.documents`.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .encoding import SNIFF_BYTES, sniff_bytes, sniff_encoding

try:  # ~3x faster than json on chat lines; json stays the reference (errors, NaN, huge ints, ...)
    import orjson
except ImportError:  # pragma: no cover - a dependency, but reading must not depend on it
    orjson = None
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _may_hold_huge_int(raw: bytes) -> bool:
    """orjson turns integers beyond 64 bits into floats (json keeps them exact): lines with a run of
    19+ digits go to json. Counting digits first (C speed) spares the regex scan on almost every line."""
    return len(raw) - len(raw.translate(None, b"0123456789")) >= 19 and _LONG_DIGITS.search(raw) is not None

RECORD_EXTS = {".jsonl", ".json", ".csv", ".tsv", ".xlsx"}
DOCUMENT_EXTS = {".txt", ".md", ".markdown", ".docx", ".html", ".htm", ".pdf"}
ProgressFn = Callable[[int], None]


class ReadError(Exception):
    """The input cannot be read at all (missing, unknown extension, not the claimed format)."""


@dataclass(slots=True)
class Record:
    """One input record. ``data`` is None when the line could not be parsed (``error`` says why)."""

    line: int
    data: Any = None
    error: str | None = None
    column: int | None = None
    code: str = "invalid_json"  # the report's issue code when ``error`` is set

    @property
    def ok(self) -> bool:
        return self.error is None


def file_kind(path: str | os.PathLike[str]) -> str:
    """'records' for jsonl/json/csv/tsv/xlsx, 'documents' for text-like files and folders."""
    p = Path(path)
    if p.is_dir():
        return "documents"
    ext = p.suffix.lower()
    if ext in RECORD_EXTS:
        return "records"
    if ext in DOCUMENT_EXTS:
        return "documents"
    raise ReadError(
        f"{p.name}: unsupported extension {ext or '(none)'!r}; expected one of "
        + ", ".join(sorted(RECORD_EXTS | DOCUMENT_EXTS))
        + " or a folder of markdown files"
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ReadError(f"{path}: no such file")
    if path.is_dir():
        raise ReadError(f"{path}: is a folder, expected a file")


# Real examples nest a handful of levels (tool schemas a few dozen); deeper values only serve to blow the
# stack of whatever walks them next (json.loads itself raises RecursionError near 1,000 levels).
MAX_JSON_DEPTH = 128


def _may_be_too_deep(raw: bytes | str) -> bool:
    """False when the text cannot nest deeper than MAX_JSON_DEPTH (a C-speed count decides most lines)."""
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    return raw.count("[") + raw.count("{") > MAX_JSON_DEPTH


def _too_deep(obj: Any) -> bool:
    stack = [(obj, 1)]
    while stack:  # iterative, so it cannot overflow the stack it protects
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def _deep_record(lineno: int) -> Record:
    return Record(lineno, None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep (line {lineno})", 1,
                  code="json_too_deep")


def iter_jsonl(path: str | os.PathLike[str], *, progress: ProgressFn | None = None, start: int = 0,
               end: int | None = None, first_line: int = 1) -> Iterator[Record]:
    """Stream a JSONL file line by line. Blank lines are skipped; bad lines yield an error record
    with the JSON error's line-local column. ``start``/``end`` (byte offsets at line starts) and
    ``first_line`` (the line number at ``start``) read one slice of a UTF-8 file (parallel checks)."""
    p = Path(path)
    _check_exists(p)
    with open(p, "rb", buffering=1 << 20) as f:  # a large buffer: iterating lines gets ~3x faster
        head = f.read(SNIFF_BYTES)
        encoding = sniff_bytes(head)
        f.seek(start)
        fast = encoding in ("utf-8", "utf-8-sig", "ascii")
        loads = json.loads
        quick = orjson.loads if fast and orjson is not None else None
        quick_error = orjson.JSONDecodeError if quick is not None else ()
        done = start
        for lineno, raw in enumerate(f, first_line):
            if end is not None and done >= end:
                break
            done += len(raw)
            if progress is not None and lineno % 2048 == 0:
                progress(done)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            raw = raw.rstrip(b"\r\n")
            if not raw or raw.isspace():  # what strip() would empty, without the copy
                continue
            try:
                if quick is None:
                    obj = loads(raw) if fast else loads(raw.decode(encoding))
                else:
                    try:
                        obj = loads(raw) if _may_hold_huge_int(raw) else quick(raw)
                    except quick_error:  # anything orjson refuses gets json's verdict and message
                        obj = loads(raw)
            except json.JSONDecodeError as e:
                yield Record(lineno, None, f"invalid JSON: {e.msg} (line {lineno}, column {e.colno})", e.colno)
                continue
            except UnicodeDecodeError as e:
                yield Record(lineno, None, f"invalid text encoding: {e.reason} at byte {e.start}", e.start + 1)
                continue
            except RecursionError:
                yield _deep_record(lineno)
                continue
            if _may_be_too_deep(raw) and _too_deep(obj):
                yield _deep_record(lineno)
                continue
            yield Record(lineno, obj)
        if progress is not None:
            progress(done)


_LIST_KEYS = ("data", "examples", "records", "items", "rows", "train", "conversations", "dataset")


def iter_json(path: str | os.PathLike[str]) -> Iterator[Record]:
    """A JSON array, or an object holding a list of records (``data``/``examples``/... or the only
    list-of-objects value). A file that is really JSONL is streamed as JSONL."""
    p = Path(path)
    _check_exists(p)
    enc = sniff_encoding(p)
    with open(p, encoding=enc) as f:
        text = f.read()
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ReadError(f"{p.name}: JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    except json.JSONDecodeError as e:
        # JSON Lines saved with a .json extension (prepare_data does the same fallback)
        first = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first)
        except json.JSONDecodeError:
            raise ReadError(f"{p.name}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
        yield from iter_jsonl(p)
        return
    records: Any
    if isinstance(obj, list):
        records = obj
    elif isinstance(obj, dict):
        if any(k in obj for k in ("messages", "conversations", "instruction", "prompt", "input")):
            records = [obj]
        else:
            records = None
            for k in _LIST_KEYS:
                if isinstance(obj.get(k), list):
                    records = obj[k]
                    break
            if records is None:
                lists = [v for v in obj.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
                if len(lists) != 1:
                    raise ReadError(f"{p.name}: a JSON object without one list of records in it")
                records = lists[0]
    else:
        raise ReadError(f"{p.name}: top-level JSON is a {type(obj).__name__}, expected an array or object")
    deep = _may_be_too_deep(text)
    for i, rec in enumerate(records, 1):
        yield _deep_record(i) if deep and _too_deep(rec) else Record(i, rec)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def iter_csv(path: str | os.PathLike[str], *, delimiter: str | None = None) -> Iterator[Record]:
    """CSV or TSV (delimiter from the extension unless given), header row required. Rows become
    ``{column: text}`` dicts; ``line`` is the physical line on which the row ends."""
    p = Path(path)
    _check_exists(p)
    enc = sniff_encoding(p)
    if delimiter is None:
        delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    with open(p, encoding=enc, errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ReadError(f"{p.name}: not valid CSV: {e}") from None
        header = [h.strip() for h in header]
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield Record(reader.line_num, None, f"invalid CSV row: {e}")
                continue
            if not any(c.strip() for c in row):
                continue
            if len(row) > len(header):
                extra = row[len(header):]
                if any(c.strip() for c in extra):
                    yield Record(reader.line_num, None, f"row has {len(row)} cells but the header has {len(header)}")
                    continue
            yield Record(reader.line_num, {h: (row[i] if i < len(row) else "") for i, h in enumerate(header) if h})


def list_sheets(path: str | os.PathLike[str]) -> list[str]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def iter_xlsx(path: str | os.PathLike[str], *, sheet: str | int | None = None) -> Iterator[Record]:
    """One sheet of a workbook (the first by default; a name or a 0-based index picks another).
    The first non-empty row is the header; ``line`` is the spreadsheet row number."""
    import openpyxl

    p = Path(path)
    _check_exists(p)
    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as e:
        raise ReadError(f"{p.name}: not a readable .xlsx workbook: {e}") from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit() and sheet not in wb.sheetnames):
            idx = int(sheet)
            if not 0 <= idx < len(wb.worksheets):
                raise ReadError(f"{p.name}: no sheet #{idx}; sheets: {', '.join(wb.sheetnames)}")
            ws = wb.worksheets[idx]
        else:
            if sheet not in wb.sheetnames:
                raise ReadError(f"{p.name}: no sheet named {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
            ws = wb[sheet]
        header: list[str] | None = None
        for rowno, row in enumerate(ws.iter_rows(values_only=True), 1):
            cells = [_cell(v) for v in row]
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            yield Record(rowno, {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header) if h})
    finally:
        wb.close()


def iter_records(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[Record]:
    """Records from any record-like file, chosen by extension."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".jsonl":
        return iter_jsonl(p, progress=progress)
    if ext == ".json":
        return iter_json(p)
    if ext in (".csv", ".tsv"):
        return iter_csv(p)
    if ext == ".xlsx":
        return iter_xlsx(p, sheet=sheet)
    raise ReadError(f"{p.name}: not a record file (jsonl, json, csv, tsv, xlsx)")
