"""Terminal rendering (rich) and JSON output of reports and fix/convert results."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .fix import FixResult
from .issues import Report

BIG_FILE_BYTES = 8 << 20  # show a progress bar above this size
_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def to_json(obj: Report | FixResult | dict[str, Any]) -> str:
    d = obj if isinstance(obj, dict) else obj.to_dict()
    return json.dumps(d, ensure_ascii=False, indent=2)


def _lines(lines: list[int], count: int, limit: int = 12) -> str:
    if not lines:
        return "—"
    shown = ", ".join(map(str, lines[:limit]))
    more = count - min(len(lines), limit)
    return shown + (f" … (+{more})" if more > 0 else "")


def render_report(report: Report, console: Console | None = None) -> None:
    c = console or Console()
    status = "[bold green]OK[/]" if report.ok else ("[bold red]UNUSABLE[/]" if report.unusable else "[bold red]ERRORS[/]")
    c.print(f"{status}  {report.path}  ({report.method}; {report.n_examples} examples on {report.n_lines} lines, "
            f"{report.n_valid} valid; {report.errors} errors, {report.warnings} warnings)")
    if report.issues:
        t = Table(title="Issues", show_lines=False)
        for col in ("severity", "code", "count", "lines", "first problem", "fix"):
            t.add_column(col, overflow="fold")
        for iss in report.sorted_issues():
            first = iss.samples[0][1] if iss.samples else iss.meaning
            t.add_row(f"[{_STYLE[iss.severity]}]{iss.severity}[/]", iss.code, str(iss.count),
                      _lines(iss.lines, iss.count), first, iss.hint)
        c.print(t)
    else:
        c.print("[green]No problems found.[/]")
    st = report.stats or {}
    if st.get("tokens"):
        t = Table(title=f"Tokens ({st.get('counting')}; limit {report.max_tokens:,})" if report.max_tokens else "Tokens")
        t.add_column("per example")
        for col in ("min", "p5", "median", "mean", "p95", "max", "total"):
            t.add_column(col, justify="right")
        for label, key in (("total tokens", "tokens"), ("assistant (trained) tokens", "assistant_tokens"), ("messages", "messages")):
            d = st[key]
            t.add_row(label, *(f"{d[k]:,}" if isinstance(d[k], int) else f"{d[k]:,.1f}" for k in ("min", "p5", "median", "mean", "p95", "max", "total")))
        c.print(t)
        if st.get("over_limit"):
            c.print(f"[yellow]{st['over_limit']} example(s) exceed {report.max_tokens:,} tokens and would be truncated.[/]")
    if st.get("languages"):
        c.print("Scripts: " + ", ".join(f"{k} {v}" for k, v in st["languages"].items()))
    est = report.estimate
    if est:
        c.print(f"Epochs: [bold]{est['epochs']}[/] ({est['epochs_rule']}); tokens per epoch {est['tokens_per_epoch']:,}; "
                f"billed tokens if run on OpenAI: {est['billed_tokens']:,}")
        if est.get("local"):
            lo = est["local"]
            c.print(f"Local training estimate: [bold]{lo['human']}[/] for {lo['tokens_processed']:,} tokens at "
                    f"~{lo['tokens_per_second']:,} tok/s ({lo['params'] / 1e6:,.0f}M params; {lo['source']}).")


def render_fix(result: FixResult, console: Console | None = None, *, verb: str = "Fixed") -> None:
    c = console or Console()
    if result.detected:
        c.print(result.detected)
    outs = ", ".join(f"{k}: {v}" for k, v in result.outputs.items())
    c.print(f"[green]{verb}[/] {result.input}: read {result.read}, wrote {result.written} → {outs}")
    if result.train is not None:
        c.print(f"Split: {result.train} train / {result.valid} validation")
    extras = []
    if result.stripped:
        extras.append(f"stripped whitespace in {result.stripped}")
    if result.truncated:
        extras.append(f"truncated {result.truncated}")
    if extras:
        c.print("; ".join(extras))
    if result.dropped_count:
        t = Table(title=f"Dropped {result.dropped_count} example(s)")
        t.add_column("line", justify="right")
        t.add_column("reason", overflow="fold")
        for ln, reason in result.dropped[:50]:
            t.add_row(str(ln), reason)
        if result.dropped_count > 50:
            t.add_row("…", f"{result.dropped_count - 50} more (use --json for the full list)")
        c.print(t)


@contextmanager
def progress_bar(path: str | os.PathLike[str], *, enabled: bool = True, console: Console | None = None,
                 label: str = "Reading") -> Iterator[Callable[[int], None] | None]:
    """A rich byte progress bar for big files; yields a ``progress(bytes_done)`` callback or None."""
    try:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
    except OSError:
        size = 0
    if not enabled or size < BIG_FILE_BYTES:
        yield None
        return
    with Progress(TextColumn(f"{label} {os.path.basename(str(path))}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                  transient=True) as prog:
        task = prog.add_task("read", total=size)
        yield lambda done: prog.update(task, completed=done)
