"""`tuneforge files`: the /v1/files API from the shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    api_errors,
    console,
    fmt_bytes,
    fmt_time,
    make_client,
    make_table,
    print_json,
)

app = typer.Typer(help="Upload, list, inspect and delete files on a tuneforge server.", no_args_is_help=True)


@app.command("upload")
@api_errors
def upload(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
           purpose: Annotated[str, typer.Option(help="fine-tune, assistants, batch, user_data, vision, evals")]
           = "fine-tune",
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Upload a file."""
    client = make_client(base_url, api_key)
    with console.status(f"Uploading {path.name} ({fmt_bytes(path.stat().st_size)})…") if not json_out else _null():
        with path.open("rb") as fh:
            obj = client.files.create(file=(path.name, fh), purpose=purpose)  # type: ignore[arg-type]
    if json_out:
        print_json(obj)
    else:
        console.print(f"Uploaded [bold]{obj.id}[/bold] ({obj.filename}, {fmt_bytes(obj.bytes)}, {obj.purpose})")


@app.command("list")
@api_errors
def list_(purpose: Annotated[str | None, typer.Option(help="Only files with this purpose")] = None,
          limit: Annotated[int, typer.Option(help="Page size while listing")] = 100,
          base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List files, newest first (all pages)."""
    client = make_client(base_url, api_key)
    kwargs = {"limit": limit}
    if purpose:
        kwargs["purpose"] = purpose
    files = list(client.files.list(**kwargs))
    if json_out:
        print_json(files)
        return
    table = make_table("id", "filename", "purpose", "bytes", "created")
    for f in files:
        table.add_row(f.id, f.filename, f.purpose, fmt_bytes(f.bytes), fmt_time(f.created_at))
    console.print(table)


@app.command("get")
@api_errors
def get(file_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show one file's metadata."""
    obj = make_client(base_url, api_key).files.retrieve(file_id)
    if json_out:
        print_json(obj)
        return
    for key, value in obj.model_dump().items():
        console.print(f"[bold]{key}[/bold]: {value}")


@app.command("delete")
@api_errors
def delete(file_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a file and its bytes."""
    obj = make_client(base_url, api_key).files.delete(file_id)
    if json_out:
        print_json(obj)
    else:
        console.print(f"Deleted {obj.id}.")


@app.command("content")
@api_errors
def content(file_id: str,
            output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
            base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Download a file's bytes."""
    response = make_client(base_url, api_key).files.content(file_id)
    if output:
        response.write_to_file(output)
        console.print(f"Wrote {output}")
    else:
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False
