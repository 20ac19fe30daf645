"""tuneforge data toolkit: read, convert, check, count tokens, estimate and fix training data.

Server / worker hooks
---------------------
``check_file(path, *, tokenizer=None, max_tokens=None, method="supervised") -> Report``
    Validate a chat (``"supervised"``) or preference (``"dpo"``; ``"auto"`` detects) JSONL file.
    ``report.ok`` (no errors), ``report.exit_code`` (0/1/2), ``report.to_dict()`` (JSON-ready) and
    ``report.summary_message(limit=5)`` — an OpenAI-style paragraph for a failed job's
    ``error.message`` ("The job failed due to a file format error in the training file. Line 3: …").
``load_chat_examples(path, *, method="supervised", strict=True) -> list[dict]``
    Load a validated file for training; raises :class:`DataValidationError` (with ``.report``).

Conversion and fixes
--------------------
``convert_file(path, output, *, shape=None, mapping=None, system=None, fix=None, ...) -> FixResult``
``plan_conversion(path, ...) -> Conversion`` (``.message`` says what was detected, ``.items()``)
``fix_file(path, output, opts=FixOptions(...)) -> FixResult``

Reading
-------
``iter_records(path, sheet=None)``, ``iter_jsonl(path)`` (streams), ``extract_text(path) -> list[Section]``
(pdf, docx, md, html, txt, csv, tsv, xlsx, json, jsonl — reused by retrieval), ``sniff_encoding(path)``.

Tokens and estimates
--------------------
``resolve_tokenizer(name)``/``make_counter(tokenizer)`` → a counter with ``count_batch(examples)``;
``get_openai_encoding("cl100k_base")`` (offline tiktoken); ``default_epochs(n)``,
``estimate(...)``, ``tokens_per_second(params)``.

Nothing here imports FastAPI.
"""

from __future__ import annotations

from .api import (
    Conversion,
    DataValidationError,
    check_file,
    convert_file,
    fix_file,
    load_chat_examples,
    plan_conversion,
)
from .documents import Section, chunk_sections, document_examples, extract_text
from .encoding import sniff_encoding
from .estimate import default_epochs, estimate, tokens_per_second
from .fix import FixOptions, FixResult, atomic_writer
from .issues import CODES, Issue, Report
from .mapping import MapError, MapSpec, apply_map, parse_map
from .readers import ReadError, Record, iter_jsonl, iter_records, list_sheets
from .shapes import ConvertOptions, Detection, ShapeError, convert_record, detect_shape
from .tokens import (
    Count,
    HFCounter,
    OpenAICounter,
    TokenizerError,
    flatten_tool_messages,
    get_openai_encoding,
    make_counter,
    resolve_tokenizer,
)
from .validate import Checker, check_example

__all__ = [
    "CODES", "Checker", "Conversion", "ConvertOptions", "Count", "DataValidationError", "Detection", "FixOptions",
    "FixResult", "HFCounter", "Issue", "MapError", "MapSpec", "OpenAICounter", "ReadError", "Record", "Report",
    "Section", "ShapeError", "TokenizerError", "apply_map", "atomic_writer", "check_example", "check_file",
    "chunk_sections", "convert_file", "convert_record", "default_epochs", "detect_shape", "document_examples",
    "estimate", "extract_text", "fix_file", "flatten_tool_messages", "get_openai_encoding", "iter_jsonl", "iter_records", "list_sheets",
    "load_chat_examples", "make_counter", "parse_map", "plan_conversion", "resolve_tokenizer", "sniff_encoding",
    "tokens_per_second",
]
