"""`tuneforge keys`: API keys are admin operations on the local database (they bootstrap auth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import JsonOpt, console, err_console, fmt_time, make_table, print_json

app = typer.Typer(help="Create, list and revoke API keys (runs on the server's data folder).",
                  no_args_is_help=True)

DataDirOpt = Annotated[Path | None, typer.Option(help="Data folder [env: TUNEFORGE_DATA_DIR]")]


def _db(data_dir: Path | None):
    from tuneforge.db.session import Database
    from tuneforge.settings import Settings

    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    return db


@app.command("create")
def create(project: Annotated[str, typer.Option(help="Project the key belongs to (created if new)")],
           name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
           data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Create a key for PROJECT and print it once (only its hash is stored)."""
    from tuneforge.errors import TuneforgeError
    from tuneforge.projects import create_key

    db = _db(data_dir)
    try:
        with db.session() as session:
            plaintext, row = create_key(session, project, name)
            info = {"id": row.id, "project": project, "name": name, "key": plaintext}
    except TuneforgeError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if json_out:
        print_json(info)
        return
    console.print(f"Created key [bold]{info['id']}[/bold] for project [bold]{project}[/bold]:")
    console.print(f"\n  {plaintext}\n", highlight=False, soft_wrap=True)
    console.print("Store it now: it is not shown again. The server now requires a key on every request.")


@app.command("list")
def list_(project: Annotated[str | None, typer.Option(help="Only this project's keys")] = None,
          data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """List keys (prefix only, never the key)."""
    from tuneforge.projects import list_keys

    db = _db(data_dir)
    try:
        with db.session() as session:
            rows = [{"id": k.id, "project": p.name, "name": k.name, "prefix": k.prefix, "created_at": k.created_at,
                     "last_used_at": k.last_used_at, "revoked_at": k.revoked_at}
                    for k, p in list_keys(session, project)]
    finally:
        db.dispose()
    if json_out:
        print_json(rows)
        return
    table = make_table("id", "project", "name", "prefix", "created", "last used", "status")
    for r in rows:
        table.add_row(r["id"], r["project"], r["name"] or "", r["prefix"] + "…", fmt_time(r["created_at"]),
                      fmt_time(r["last_used_at"]), "revoked" if r["revoked_at"] else "active")
    console.print(table)


@app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="Key id or the prefix shown by `keys list`")],
           data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Revoke a key at once."""
    from tuneforge.errors import TuneforgeError
    from tuneforge.projects import revoke_key

    db = _db(data_dir)
    try:
        with db.session() as session:
            row = revoke_key(session, key)
            info = {"id": row.id, "revoked_at": row.revoked_at}
    except TuneforgeError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    if json_out:
        print_json(info)
    else:
        console.print(f"Revoked {info['id']}.")
