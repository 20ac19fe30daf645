"""Shared CLI plumbing: the OpenAI client (our server speaks its API), output helpers, errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

BaseUrlOpt = Annotated[str | None, typer.Option(
    "--base-url", help="Server URL incl. /v1 [env: TUNEFORGE_BASE_URL, OPENAI_BASE_URL]", show_default=False)]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", help="API key [env: TUNEFORGE_API_KEY, OPENAI_API_KEY]", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def resolve_base_url(base_url: str | None) -> str:
    return base_url or os.environ.get("TUNEFORGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL


def make_client(base_url: str | None, api_key: str | None):
    from openai import OpenAI

    key = api_key or os.environ.get("TUNEFORGE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "tuneforge-local"
    return OpenAI(base_url=resolve_base_url(base_url), api_key=key, max_retries=0)


def make_table(*headers: str):
    """A rich table whose first column (the id) never wraps: people copy ids from it."""
    from rich.table import Table

    table = Table()
    for i, header in enumerate(headers):
        table.add_column(header, no_wrap=(i == 0))
    return table


def to_plain(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, list):
        return [to_plain(o) for o in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_plain(obj), ensure_ascii=False, indent=2) + "\n")


def fmt_time(ts: int | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def api_errors(func: Callable) -> Callable:
    """Turn SDK errors into one readable line and exit code 1 (2 when the server is unreachable)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        import openai

        try:
            return func(*args, **kwargs)
        except openai.APIConnectionError as exc:
            err_console.print(f"[red]Cannot reach the tuneforge server[/red] ({exc.__cause__ or exc}). "
                              "Start it with `tuneforge serve` or pass --base-url.")
            raise typer.Exit(2) from None
        except openai.APIStatusError as exc:
            message = getattr(exc, "message", str(exc))
            body = exc.body if isinstance(exc.body, dict) else {}
            if isinstance(body.get("error"), dict):
                message = body["error"].get("message", message)
            elif "message" in body:
                message = body["message"]
            err_console.print(f"[red]Error {exc.status_code}:[/red] {message}")
            raise typer.Exit(1) from None

    return wrapper
