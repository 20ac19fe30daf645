"""File-level entry points used by the CLI, the server and the training worker."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .documents import DEFAULT_PROMPT, document_examples
from .fix import FixOptions, FixResult, run_fix
from .issues import CODES, Report
from .mapping import MapError, MapSpec, parse_map
from .readers import ReadError, Record, file_kind, iter_jsonl, iter_records
from .shapes import ConvertOptions, Detection, ShapeError, convert_record, detect_shape, legacy_suffixes
from .tokens import make_counter
from .validate import Checker, check_example

Item = tuple[int, Any, str | None]  # (line, example or None, error)


@dataclass
class Conversion:
    """A planned conversion: what was detected and a fresh iterator of converted examples."""

    path: str
    shape: str
    detection: Detection | None
    make_items: Callable[[], Iterator[Item]]

    @property
    def message(self) -> str:
        if self.shape == "document":
            return "Detected documents: text is chunked into 'write a section about <title>' → chunk examples."
        if self.shape == "mapped":
            return "Using the --map spec."
        return self.detection.message if self.detection else f"Using shape {self.shape!r}."

    def items(self) -> Iterator[Item]:
        return self.make_items()


def plan_conversion(
    path: str | os.PathLike[str],
    *,
    shape: str | None = None,
    mapping: MapSpec | list[str] | None = None,
    system: str | None = None,
    replace_system: bool = True,
    strip_legacy: bool = False,
    sheet: str | int | None = None,
    chunk_size: int = 2000,
    overlap: int = 200,
    keep_code: bool = False,
    prompt: str = DEFAULT_PROMPT,
    progress: Callable[[int], None] | None = None,
) -> Conversion:
    """Detect the input shape (unless ``shape`` or ``mapping`` is given) and prepare the conversion
    of any supported file to chat / DPO examples. Raises ReadError, MapError or ShapeError."""
    p = Path(path)
    if not p.exists():
        raise ReadError(f"{p}: no such file or folder")
    spec = parse_map(mapping) if isinstance(mapping, list) else mapping
    if file_kind(p) == "documents" and spec is None:
        def doc_items() -> Iterator[Item]:
            for i, ex in enumerate(document_examples(p, chunk_size=chunk_size, overlap=overlap, keep_code=keep_code,
                                                     prompt=prompt, system=system), 1):
                yield i, ex, None
        return Conversion(str(p), "document", None, doc_items)
    if file_kind(p) == "documents":
        raise MapError("--map applies to record files (jsonl, json, csv, tsv, xlsx), not documents")

    def records() -> Iterator[Record]:
        return iter_records(p, sheet=sheet)

    detection: Detection | None = None
    if spec is not None:
        shape = "mapped"
    elif shape is None:
        detection = detect_shape(r.data for r in itertools.islice(records(), 2000) if r.ok)
        shape = detection.shape
        if shape == "unknown":
            sample = next((r.data for r in records() if r.ok), None)
            keys = ", ".join(map(str, sample.keys())) if isinstance(sample, dict) else type(sample).__name__
            raise ShapeError(f"could not recognise the records (keys: {keys}); describe them with --map, e.g. "
                             "--map user=question --map assistant=answer (see docs/data-formats.md)")
    opts = ConvertOptions(system=system, replace_system=replace_system, strip_legacy=strip_legacy, mapping=spec,
                          columns=detection.columns if detection else None)
    if shape == "prompt_completion" and strip_legacy:
        opts.prompt_suffix, opts.completion_suffix = legacy_suffixes(r.data for r in records() if r.ok)

    def items() -> Iterator[Item]:
        src = iter_records(p, sheet=sheet, progress=progress)
        for rec in src:
            if not rec.ok:
                yield rec.line, None, rec.error
                continue
            try:
                yield rec.line, convert_record(rec.data, shape, opts), None
            except (ShapeError, MapError) as e:
                yield rec.line, None, f"cannot convert: {e}"

    return Conversion(str(p), shape, detection, items)


def convert_file(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    fix: FixOptions | None = None,
    **kw: Any,
) -> FixResult:
    """Convert any supported file to OpenAI chat JSONL (or DPO JSONL) at ``output``, atomically.
    Records that cannot be converted are skipped and listed in ``result.dropped``. ``fix`` applies
    the fixes of :func:`fix_file` on the way; ``kw`` go to :func:`plan_conversion`."""
    conv = plan_conversion(path, **kw)
    opts = fix or FixOptions(strip=False, dedupe=False, drop_invalid=False)
    if conv.shape in ("dpo", "preference_pairs") or _is_dpo_map(kw):
        opts.method = "dpo"
    res = run_fix(conv.items(), output, opts, input_path=str(path), protect=[str(path)])
    res.shape, res.detected = conv.shape, conv.message
    return res


def _is_dpo_map(kw: dict[str, Any]) -> bool:
    m = kw.get("mapping")
    spec = parse_map(m) if isinstance(m, list) else m
    return bool(spec is not None and spec.is_dpo)


def fix_file(path: str | os.PathLike[str], output: str | os.PathLike[str], opts: FixOptions | None = None,
             *, progress: Callable[[int], None] | None = None) -> FixResult:
    """Apply fixes to a chat/DPO JSONL file, writing ``output`` (or ``<output>.train/.valid.jsonl``
    with a split). The input is never modified; broken lines are dropped and listed."""
    opts = opts or FixOptions()
    items = ((r.line, r.data, r.error) for r in iter_jsonl(path, progress=progress))
    return run_fix(items, output, opts, input_path=str(path), protect=[str(path)])


def check_file(
    path: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    max_tokens: int | None = None,
    method: str = "supervised",
    params: float | str | None = None,
    epochs: int | None = None,
    per_example: bool = False,
    progress: Callable[[int], None] | None = None,
    assume_jsonl: bool = False,
    workers: int | None = None,
) -> Report:
    """Check a chat (``method="supervised"``) or preference (``"dpo"``, or ``"auto"``) JSONL file.

    ``tokenizer``: None (no token statistics), ``"cl100k_base"``/``"o200k_base"``, a HF tokenizer,
    a registered model name or a local folder. The report has ``.ok``, ``.exit_code``,
    ``.to_dict()`` and ``.summary_message(limit=5)``. Never raises for bad content: unreadable input
    gives ``report.unusable`` (exit code 2) with an ``unreadable_file`` issue. ``workers``: processes
    for a large JSONL file (None: all cores where forking is safe, see ``data.parallel``; 1: this one)."""
    p = Path(path)
    counter = make_counter(tokenizer)
    checker = Checker(str(p), counter=counter, max_tokens=max_tokens, method=method, params=params, epochs=epochs,
                      per_example=per_example)
    try:
        if not p.exists() or p.is_dir():
            raise ReadError(f"{p}: no such file")
        if not assume_jsonl and p.suffix.lower() not in (".jsonl", ".json"):
            raise ReadError(f"{p.name}: training files must be JSONL; convert it with `tuneforge data convert`")
        jsonl = assume_jsonl or p.suffix.lower() == ".jsonl"
        if jsonl:
            from .parallel import check_jsonl_parallel, default_workers

            n = default_workers(str(p), counter) if workers is None else workers
            if n > 1:
                report = check_jsonl_parallel(str(p), counter, n, max_tokens=max_tokens, method=method,
                                              params=params, epochs=epochs, per_example=per_example)
                if progress is not None:
                    progress(p.stat().st_size)
                return report
        src = iter_jsonl(p, progress=progress) if jsonl else iter_records(p)
        for rec in src:
            checker.feed(rec)
    except (ReadError, OSError) as e:
        checker.settle()  # the counts of the batch tokenized in the background, as a sequential check had them
        r = checker.report
        r.add("unreadable_file", None, str(e))
        r.unusable = True
        return r
    return checker.finish()


def load_chat_examples(path: str | os.PathLike[str], *, method: str = "supervised", strict: bool = True,
                       assume_jsonl: bool = False) -> list[dict[str, Any]]:
    """Load a validated chat (or DPO) JSONL file into a list of examples for training.

    With ``strict`` (default) any error raises :class:`DataValidationError` carrying the report
    (its message is the OpenAI-style summary); otherwise examples with errors are skipped.
    ``assume_jsonl`` as in :func:`check_file` (for stored uploads, which have no extension)."""
    report = check_file(path, method=method, assume_jsonl=assume_jsonl)
    if strict and not report.ok:
        raise DataValidationError(report)
    if report.unusable:
        raise DataValidationError(report)
    out = []
    for rec in iter_jsonl(path):
        if rec.ok and not any(CODES[c][0] == "error" for c, _ in check_example(rec.data, report.method)):
            out.append(rec.data)
    return out


class DataValidationError(ValueError):
    """A data file failed validation; ``.report`` holds the details."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.summary_message())
