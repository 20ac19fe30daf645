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
    err_console,
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


GlobalOpt = Annotated[bool, typer.Option(
    "--global", help="Operator mode: write to the server's data folder on this host; the model is served to "
                     "every project (through the API a registered model belongs to the key's project only)")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Data folder for --global [env: TUNEFORGE_DATA_DIR]")]


def _local_registry(data_dir: Path | None):
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    return ModelRegistry(settings, db), db


def _operator(action, data_dir: Path | None):
    from tuneforge.errors import TuneforgeError

    registry, db = _local_registry(data_dir)
    try:
        return action(registry)
    except TuneforgeError as exc:
        err_console.print(f"[red]Error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        db.dispose()


@app.command("add")
@api_errors
def add(name: Annotated[str, typer.Argument(help="Name to serve the model under")],
        path: Annotated[Path, typer.Argument(help="A Hugging Face model folder or a .gguf file")],
        global_: GlobalOpt = False, data_dir: DataDirOpt = None,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Register a local model folder or .gguf file as a base model (the path is read by the server)."""
    from openai.types import Model

    resolved = str(path.expanduser().resolve())
    if global_:
        from tuneforge.serving.models import model_object

        obj = Model.model_validate(model_object(_operator(lambda r: r.register(name, resolved, None), data_dir)))
    else:
        client = make_client(base_url, api_key)
        obj = client.post("/models", body={"id": name, "path": resolved}, cast_to=Model)
    if json_out:
        print_json(obj)
    else:
        console.print(f"Registered [bold]{obj.id}[/bold]{' for every project' if global_ else ''}.")


@app.command("delete")
@api_errors
def delete(name: str, global_: GlobalOpt = False, data_dir: DataDirOpt = None,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Delete a fine-tuned model, or forget a registered base model (its files stay on disk)."""
    if global_:
        _operator(lambda r: r.unregister(name, None), data_dir)
        obj = {"id": name, "object": "model", "deleted": True}
    else:
        obj = make_client(base_url, api_key).models.delete(name)
    if json_out:
        print_json(obj)
    else:
        console.print(f"Deleted {name}.")
