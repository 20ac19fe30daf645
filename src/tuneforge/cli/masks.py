"""`tuneforge masks`: presets (system prompt + few-shot messages + settings) stored on the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    api_errors,
    console,
    make_client,
    make_table,
    print_json,
)

app = typer.Typer(help="Masks: presets of system prompt, few-shot messages and model settings (/v1/masks).",
                  no_args_is_help=True)


@app.command("create")
@api_errors
def create(name: Annotated[str, typer.Argument(help="Mask name (unique in the project)")],
           system: Annotated[str | None, typer.Option("--system", help="System prompt")] = None,
           model: Annotated[str | None, typer.Option(help="Default model")] = None,
           temperature: Annotated[float | None, typer.Option(help="Default temperature")] = None,
           file: Annotated[Path | None, typer.Option("--file", exists=True, dir_okay=False,
                                                     help="JSON with messages/settings/system_prompt/...")] = None,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Create a mask from options and/or a JSON file."""
    body = json.loads(file.read_text(encoding="utf-8")) if file else {}
    body["name"] = name
    if system is not None:
        body["system_prompt"] = system
    if model is not None:
        body["model"] = model
    if temperature is not None:
        body.setdefault("settings", {})["temperature"] = temperature
    mask = make_client(base_url, api_key).post("/masks", body=body, cast_to=object)
    print_json(mask) if json_out else console.print(f"Created mask [bold]{mask['name']}[/bold] ({mask['id']}).")


@app.command("list")
@api_errors
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List masks."""
    masks = make_client(base_url, api_key).get("/masks", cast_to=object, options={"params": {"limit": 100}})["data"]
    if json_out:
        print_json(masks)
        return
    table = make_table("id", "name", "model", "few-shot", "system prompt")
    for m in masks:
        table.add_row(m["id"], m["name"], m["model"] or "-", str(len(m["messages"])), (m["system_prompt"] or "")[:60])
    console.print(table)


@app.command("show")
@api_errors
def show(name: Annotated[str, typer.Argument(help="Mask name or id")],
         base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Print a mask as JSON."""
    print_json(make_client(base_url, api_key).get(f"/masks/{name}", cast_to=object))


@app.command("delete")
@api_errors
def delete(name: Annotated[str, typer.Argument(help="Mask name or id")],
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Delete a mask."""
    make_client(base_url, api_key).delete(f"/masks/{name}", cast_to=object)
    console.print(f"Deleted mask {name}.")
