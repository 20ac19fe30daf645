"""`tuneforge models`: list, register and remove models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    api_errors,
    console,
    fmt_time,
    make_client,
    make_table,
    print_json,
)

app = typer.Typer(help="List the models a server can serve; register local base models.", no_args_is_help=True)


@app.command("list")
@api_errors
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List base and fine-tuned models."""
    models = list(make_client(base_url, api_key).models.list())
    if json_out:
        print_json(models)
        return
    table = make_table("id", "owned by", "source", "context", "created")
    for m in models:
        extra = (m.model_extra or {}).get("tuneforge") or {}
        table.add_row(m.id, m.owned_by, str(extra.get("source", "")), str(extra.get("context_length") or ""),
                      fmt_time(m.created))
    console.print(table)


@app.command("add")
@api_errors
def add(name: Annotated[str, typer.Argument(help="Name to serve the model under")],
        path: Annotated[Path, typer.Argument(help="A Hugging Face model folder or a .gguf file")],
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Register a local model folder or .gguf file as a base model (the path is read by the server)."""
    from openai.types import Model

    client = make_client(base_url, api_key)
    obj = client.post("/models", body={"id": name, "path": str(path.expanduser().resolve())}, cast_to=Model)
    if json_out:
        print_json(obj)
    else:
        console.print(f"Registered [bold]{obj.id}[/bold].")


@app.command("delete")
@api_errors
def delete(name: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a fine-tuned model, or forget a registered base model (its files stay on disk)."""
    obj = make_client(base_url, api_key).models.delete(name)
    if json_out:
        print_json(obj)
    else:
        console.print(f"Deleted {obj.id}.")
