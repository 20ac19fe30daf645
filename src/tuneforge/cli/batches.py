"""`tuneforge batches`: OpenAI's Batch API from the shell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    api_errors,
    console,
    err_console,
    fmt_time,
    make_client,
    make_table,
    print_json,
)

app = typer.Typer(help="Run files of API requests offline (OpenAI's Batch API).", no_args_is_help=True)
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def _print(batch) -> None:
    c = batch.request_counts
    console.print(f"[bold]{batch.id}[/bold] {batch.endpoint}: {batch.status} — {c.completed} completed, "
                  f"{c.failed} failed of {c.total}")
    if batch.output_file_id:
        console.print(f"  output: {batch.output_file_id}  (tuneforge files content {batch.output_file_id})")
    if batch.error_file_id:
        console.print(f"  errors: {batch.error_file_id}")


def _follow(client, batch, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=quiet) as progress:
        task = progress.add_task(batch.id, total=batch.request_counts.total if batch.request_counts else None)
        while batch.status not in ("completed", "failed", "cancelled", "expired"):
            time.sleep(0.5)
            batch = client.batches.retrieve(batch.id)
            c = batch.request_counts
            progress.update(task, completed=c.completed + c.failed, total=c.total)
    return batch


@app.command("create")
@api_errors
def create(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL of request lines "
                                                "{custom_id, method, url, body}")],
           endpoint: Annotated[str, typer.Option(help=", ".join(ENDPOINTS))] = "/v1/chat/completions",
           wait: Annotated[bool, typer.Option(help="Wait for the batch, with a progress bar")] = False,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Upload a request file and start a batch."""
    client = make_client(base_url, api_key)
    with path.open("rb") as fh:
        f = client.files.create(file=(path.name, fh), purpose="batch")
    batch = client.batches.create(input_file_id=f.id, endpoint=endpoint,  # type: ignore[arg-type]
                                  completion_window="24h")
    if wait:
        batch = _follow(client, batch, json_out)
    print_json(batch) if json_out else _print(batch)


@app.command("list")
@api_errors
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List batches, newest first."""
    client = make_client(base_url, api_key)
    batches = list(client.batches.list(limit=100))
    if json_out:
        print_json(batches)
        return
    table = make_table("id", "endpoint", "status", "completed", "failed", "total", "created")
    for b in batches:
        c = b.request_counts
        table.add_row(b.id, b.endpoint, b.status, str(c.completed), str(c.failed), str(c.total), fmt_time(b.created_at))
    console.print(table)


@app.command("get")
@api_errors
def get(batch_id: str, wait: Annotated[bool, typer.Option(help="Follow it to the end")] = False,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show a batch."""
    client = make_client(base_url, api_key)
    batch = client.batches.retrieve(batch_id)
    if wait:
        batch = _follow(client, batch, json_out)
    print_json(batch) if json_out else _print(batch)


@app.command("cancel")
@api_errors
def cancel(batch_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Cancel a batch (the requests that finished stay in its output file)."""
    client = make_client(base_url, api_key)
    batch = client.batches.cancel(batch_id)
    print_json(batch) if json_out else _print(batch)
