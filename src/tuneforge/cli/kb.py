"""`tuneforge kb`: knowledge bases (vector stores) from folders of documents, and search."""

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
    fmt_bytes,
    fmt_time,
    make_client,
    make_table,
    print_json,
)

app = typer.Typer(help="Knowledge bases: vector stores built from your documents, searched by assistants.",
                  no_args_is_help=True)

DOC_EXTS = {".pdf", ".docx", ".md", ".markdown", ".html", ".htm", ".txt", ".csv", ".tsv", ".xlsx", ".json", ".jsonl"}


def find_store(client, name_or_id: str):
    """A vector store by id, or the newest one with that name."""
    if name_or_id.startswith("vs_"):
        return client.vector_stores.retrieve(name_or_id)
    for store in client.vector_stores.list(limit=100):
        if store.name == name_or_id:
            return store
    err_console.print(f"[red]No knowledge base named '{name_or_id}'.[/red] Create it with `tuneforge kb create`.")
    raise typer.Exit(1)


@app.command("create")
@api_errors
def create(name: Annotated[str, typer.Argument(help="Name of the knowledge base")],
           folder: Annotated[Path, typer.Argument(exists=True, file_okay=True, readable=True,
                                                  help="A folder (searched recursively) or a single file")],
           chunk_size: Annotated[int | None, typer.Option(help="max_chunk_size_tokens (100-4096; default auto: 800)")]
           = None,
           overlap: Annotated[int | None, typer.Option(help="chunk_overlap_tokens (default auto: 400)")] = None,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Upload a folder's documents and index them into a new knowledge base (with a progress bar)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    client = make_client(base_url, api_key)
    paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*")
                                                     if p.is_file() and p.suffix.lower() in DOC_EXTS)
    if not paths:
        err_console.print(f"[red]No documents in {folder}[/red] (looked for {', '.join(sorted(DOC_EXTS))}).")
        raise typer.Exit(1)
    strategy = None
    if chunk_size or overlap is not None:
        size = chunk_size or 800
        strategy = {"type": "static", "static": {"max_chunk_size_tokens": size,
                                                 "chunk_overlap_tokens": overlap if overlap is not None else size // 2}}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=json_out) as progress:
        uploading = progress.add_task("Uploading", total=len(paths))
        file_ids = []
        for path in paths:
            with path.open("rb") as fh:
                file_ids.append(client.files.create(file=(path.name, fh), purpose="assistants").id)
            progress.advance(uploading)
        store = client.vector_stores.create(name=name, metadata={"source": str(folder.resolve())[:500]})
        batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=file_ids,
                                                         **({"chunking_strategy": strategy} if strategy else {}))
        indexing = progress.add_task("Indexing", total=len(paths))
        while True:
            batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
            counts = batch.file_counts
            progress.update(indexing, completed=counts.completed + counts.failed + counts.cancelled)
            if batch.status != "in_progress":
                break
            time.sleep(0.3)
    failed = list(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed"))
    store = client.vector_stores.retrieve(store.id)
    if json_out:
        print_json({"vector_store": store.model_dump(mode="json"), "failed": [f.model_dump(mode="json") for f in failed]})
        return
    console.print(f"Knowledge base [bold]{name}[/bold] ({store.id}): {store.file_counts.completed} documents "
                  f"indexed, {fmt_bytes(store.usage_bytes)}.")
    names = {fid: p.name for fid, p in zip(file_ids, paths, strict=True)}
    for f in failed:
        err_console.print(f"[yellow]skipped {names.get(f.id, f.id)}:[/yellow] {f.last_error.message if f.last_error else ''}")


@app.command("list")
@api_errors
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List knowledge bases."""
    client = make_client(base_url, api_key)
    stores = list(client.vector_stores.list(limit=100))
    if json_out:
        print_json(stores)
        return
    table = make_table("id", "name", "status", "files", "size", "created")
    for s in stores:
        table.add_row(s.id, s.name, s.status, f"{s.file_counts.completed}/{s.file_counts.total}",
                      fmt_bytes(s.usage_bytes), fmt_time(s.created_at))
    console.print(table)


@app.command("search")
@api_errors
def search(name: Annotated[str, typer.Argument(help="Knowledge base name or vs_ id")],
           query: Annotated[str, typer.Argument(help="What to look for")],
           limit: Annotated[int, typer.Option("-n", "--limit", help="Results (1-50)")] = 5,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Hybrid (embeddings + keyword) search in a knowledge base."""
    client = make_client(base_url, api_key)
    store = find_store(client, name)
    results = client.vector_stores.search(vector_store_id=store.id, query=query, max_num_results=limit).data
    if json_out:
        print_json(results)
        return
    if not results:
        console.print("No results.")
    for i, r in enumerate(results, 1):
        text = " ".join(r.content[0].text.split()) if r.content else ""
        console.print(f"[bold]{i}. {r.filename}[/bold]  score {r.score:.3f}")
        console.print(f"   {text[:300]}{'…' if len(text) > 300 else ''}", highlight=False)


@app.command("delete")
@api_errors
def delete(name: Annotated[str, typer.Argument(help="Knowledge base name or vs_ id")],
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None) -> None:
    """Delete a knowledge base (its uploaded files stay in `tuneforge files list`)."""
    client = make_client(base_url, api_key)
    store = find_store(client, name)
    client.vector_stores.delete(store.id)
    console.print(f"Deleted {store.id} ({store.name}).")
