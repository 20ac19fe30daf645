"""Plain-text extraction (reused by retrieval) and "turn my documents into training data".

:func:`extract_text` returns a list of :class:`Section` for pdf, docx, md, html, txt, csv, tsv,
xlsx, json and jsonl: text with the nearest heading, the page (pdf) or row (tables) kept, table rows
rendered as one line each.

:func:`document_examples` turns a document or a folder of markdown posts into chat examples: the
text is packed into chunks of about ``chunk_size`` characters (paragraph boundaries preferred) with
``overlap`` characters repeated from the previous chunk; each chunk becomes
``user: 'Write a blog post section about "<title>" ...'`` → ``assistant: <chunk>``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .encoding import read_text
from .readers import ReadError, iter_records

DEFAULT_PROMPT = 'Write a blog post section about "{title}"{about}.'
MARKDOWN_EXTS = {".md", ".markdown"}


@dataclass(slots=True)
class Section:
    """A piece of a document: ``kind`` is paragraph, heading, code, table_row, list_item or page."""

    text: str
    title: str | None = None
    heading: str | None = None
    kind: str = "paragraph"
    page: int | None = None
    position: int = 0
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FRONT = re.compile(r"\A(?:\ufeff)?---\s*\n(.*?)\n(?:---|\.\.\.)\s*(?:\n|\Z)", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split YAML front matter (``---`` ... ``---``) from a markdown text."""
    m = _FRONT.match(text)
    if not m:
        return {}, text.lstrip("\ufeff")
    import yaml

    try:
        meta = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    return meta, text[m.end():]


def markdown_sections(text: str, *, source: str | None = None, keep_code: bool = False) -> list[Section]:
    meta, body = parse_front_matter(text)
    title = str(meta["title"]) if meta.get("title") else None
    out: list[Section] = []
    heading: str | None = None
    para: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if para:
            t = "\n".join(para).strip()
            if t:
                out.append(Section(t, title, heading, "paragraph", None, len(out), source))
            para.clear()

    for line in body.splitlines():
        if code is not None:
            if _FENCE.match(line):
                if keep_code:
                    out.append(Section("\n".join(code), title, heading, "code", None, len(out), source))
                code = None
            else:
                code.append(line)
            continue
        if _FENCE.match(line):
            flush()
            code = [line.strip()] if keep_code else []
            continue
        m = _HEADING.match(line)
        if m:
            flush()
            heading = m.group(2).strip()
            if title is None and len(m.group(1)) == 1:
                title = heading
            out.append(Section(heading, title, heading, "heading", None, len(out), source))
            continue
        if not line.strip():
            flush()
        else:
            para.append(line.rstrip())
    flush()
    if code is not None and keep_code and code:  # unterminated fence
        out.append(Section("\n".join(code), title, heading, "code", None, len(out), source))
    if title is None and source:
        title = Path(source).stem.replace("-", " ").replace("_", " ")
    for s in out:
        s.title = title
    return out


def _txt_sections(text: str, source: str) -> list[Section]:
    title = Path(source).stem
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return [Section(p, title, None, "paragraph", None, i, source) for i, p in enumerate(paras)]


def _html_sections(path: Path) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text(path), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer", "header", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    out: list[Section] = []
    heading: str | None = None
    blocks = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "tr", "blockquote"]
    for el in soup.find_all(blocks):
        if el.find_parent(["li", "blockquote", "pre"]) and el.name in ("p", "li"):
            continue  # nested: the enclosing block already carries the text
        if el.name == "tr":
            cells = [c.get_text(" ", strip=True) for c in el.find_all(["td", "th"])]
            text, kind = " | ".join(cells), "table_row"
        elif el.name == "pre":
            text, kind = el.get_text(), "code"
        else:
            text = " ".join(el.get_text().split())
            kind = "heading" if el.name[0] == "h" and el.name[1:].isdigit() else (
                "list_item" if el.name == "li" else "paragraph")
        if not text.strip():
            continue
        if kind == "heading":
            heading = text
            if title is None:
                title = text
        out.append(Section(text, title, heading, kind, None, len(out), str(path)))
    if not out:
        body = soup.get_text("\n", strip=True)
        if body:
            out.append(Section(body, title, None, "paragraph", None, 0, str(path)))
    for s in out:
        s.title = title or path.stem
    return out


def _docx_sections(path: Path) -> list[Section]:
    import docx

    try:
        d = docx.Document(str(path))
    except Exception as e:
        raise ReadError(f"{path.name}: not a readable .docx: {e}") from None
    title = (d.core_properties.title or "").strip() or None
    out: list[Section] = []
    heading: str | None = None
    body = d.element.body
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            text = p.text.strip()
            if not text:
                continue
            style = (p.style.name if p.style is not None else "") or ""
            if style.lower().startswith("heading") or style.lower() == "title":
                heading = text
                if title is None:
                    title = text
                out.append(Section(text, title, heading, "heading", None, len(out), str(path)))
            else:
                kind = "list_item" if "list" in style.lower() else "paragraph"
                out.append(Section(text, title, heading, kind, None, len(out), str(path)))
        elif tag == "tbl":
            for row in Table(child, d).rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    out.append(Section(" | ".join(cells), title, heading, "table_row", None, len(out), str(path)))
    for s in out:
        s.title = title or path.stem
    return out


def _pdf_sections(path: Path) -> list[Section]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
    except Exception as e:
        raise ReadError(f"{path.name}: not a readable PDF: {e}") from None
    title = None
    try:
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip() or None
    except Exception:
        pass
    out: list[Section] = []
    for pno, page in enumerate(reader.pages, 1):
        text = (page.extract_text() or "").strip()
        for para in re.split(r"\n\s*\n", text):
            if para.strip():
                out.append(Section(para.strip(), title or path.stem, None, "page", pno, len(out), str(path)))
    return out


def _flatten(obj: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(obj, dict):
        if isinstance(obj.get("messages"), list):
            for m in obj["messages"]:
                if isinstance(m, dict) and isinstance(m.get("content"), str):
                    yield f"{m.get('role', '?')}: {m['content']}"
            return
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}{k}." if isinstance(v, (dict, list)) else f"{prefix}{k}")
    elif isinstance(obj, list):
        for v in obj:
            yield from _flatten(v, prefix)
    elif obj is not None and str(obj).strip():
        yield f"{prefix.rstrip('.')}: {obj}" if prefix else str(obj)


def extract_text(path: str | os.PathLike[str], *, keep_code: bool = True, sheet: str | int | None = None) -> list[Section]:
    """Plain text of a document or data file as sections (see module docstring)."""
    p = Path(path)
    if p.is_dir():
        out: list[Section] = []
        for f in sorted(p.rglob("*")):
            if f.is_file() and f.suffix.lower() in MARKDOWN_EXTS:
                out.extend(markdown_sections(read_text(f), source=str(f), keep_code=keep_code))
        return out
    if not p.exists():
        raise ReadError(f"{p}: no such file")
    ext = p.suffix.lower()
    if ext in MARKDOWN_EXTS:
        return markdown_sections(read_text(p), source=str(p), keep_code=keep_code)
    if ext == ".txt":
        return _txt_sections(read_text(p), str(p))
    if ext in (".html", ".htm"):
        return _html_sections(p)
    if ext == ".docx":
        return _docx_sections(p)
    if ext == ".pdf":
        return _pdf_sections(p)
    if ext in (".csv", ".tsv", ".xlsx", ".json", ".jsonl"):
        out = []
        for rec in iter_records(p, sheet=sheet):
            if not rec.ok:
                continue
            if ext in (".csv", ".tsv", ".xlsx") and isinstance(rec.data, dict):
                text = " | ".join(f"{k}: {v}" for k, v in rec.data.items() if str(v).strip())
                kind = "table_row"
            else:
                text = "\n".join(_flatten(rec.data))
                kind = "paragraph"
            if text.strip():
                out.append(Section(text, p.stem, None, kind, None, rec.line, str(p)))
        return out
    raise ReadError(f"{p.name}: cannot extract text from {ext or 'a file without extension'}")


# ---------------------------------------------------------------- chunking → examples

_SENT = re.compile(r"(?<=[.!?。！？；;])\s*")


def _pieces(text: str, size: int) -> list[str]:
    """Split a paragraph longer than ``size`` at sentence ends, then hard-split what remains."""
    if len(text) <= size:
        return [text]
    out: list[str] = []
    cur = ""
    for sent in (s for s in _SENT.split(text) if s):
        while len(sent) > size:
            if cur:
                out.append(cur)
                cur = ""
            out.append(sent[:size])
            sent = sent[size:]
        if cur and len(cur) + 1 + len(sent) > size:
            out.append(cur)
            cur = sent
        else:
            cur = f"{cur} {sent}" if cur else sent
    if cur:
        out.append(cur)
    return out


def _tail(text: str, overlap: int) -> str:
    """The last ~``overlap`` characters of a chunk, starting at a word or sentence boundary."""
    if overlap <= 0 or not text:
        return ""
    t = text[-overlap:]
    m = re.search(r"(?<=[.!?。！？\n])\s*", t)
    if m and m.end() < len(t):
        return t[m.end():].lstrip()
    sp = t.find(" ")
    return t[sp + 1:] if 0 <= sp < len(t) - 1 else t


def chunk_sections(sections: list[Section], *, chunk_size: int = 2000, overlap: int = 200) -> list[tuple[str | None, str]]:
    """Pack sections into (heading, chunk) pairs of about ``chunk_size`` characters with overlap."""
    if chunk_size < 50:
        raise ValueError("chunk_size must be at least 50 characters")
    overlap = max(0, min(overlap, chunk_size // 2))
    chunks: list[tuple[str | None, str]] = []
    cur: list[str] = []
    cur_len = 0
    cur_heading: str | None = None
    fresh = 0  # characters in cur that are not overlap from the previous chunk

    def emit() -> None:
        nonlocal cur, cur_len, fresh
        if fresh:
            text = "\n\n".join(cur).strip()
            chunks.append((cur_heading, text))
            tail = _tail(text, overlap)
            cur, cur_len, fresh = ([tail], len(tail), 0) if tail else ([], 0, 0)

    for s in sections:
        if s.kind == "heading":
            continue
        for piece in _pieces(s.text, chunk_size - overlap):
            if cur_len + len(piece) + 2 > chunk_size and fresh:
                emit()
            if not fresh:
                cur_heading = s.heading
            cur.append(piece)
            cur_len += len(piece) + 2
            fresh += len(piece)
    emit()
    return chunks


def document_examples(
    path: str | os.PathLike[str],
    *,
    chunk_size: int = 2000,
    overlap: int = 200,
    keep_code: bool = False,
    prompt: str = DEFAULT_PROMPT,
    system: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Chat examples from a document or a folder of markdown posts (one post at a time).

    ``prompt`` is a format string with ``{title}``, ``{heading}``, ``{about}`` (``, covering
    "<heading>"`` when the chunk has a heading different from the title, else empty), ``{part}``
    and ``{parts}``.
    """
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MARKDOWN_EXTS) if p.is_dir() else [p]
    if p.is_dir() and not files:
        raise ReadError(f"{p}: folder has no markdown (.md) files")
    for f in files:
        sections = extract_text(f, keep_code=keep_code)
        title = next((s.title for s in sections if s.title), f.stem)
        chunks = chunk_sections(sections, chunk_size=chunk_size, overlap=overlap)
        for i, (heading, text) in enumerate(chunks, 1):
            about = f', covering "{heading}"' if heading and heading != title else ""
            user = prompt.format(title=title, heading=heading or title, about=about, part=i, parts=len(chunks))
            msgs = [{"role": "system", "content": system}] if system else []
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": text}]
            yield {"messages": msgs}


def sections_to_json(sections: list[Section]) -> str:
    return json.dumps([s.to_dict() for s in sections], ensure_ascii=False)
