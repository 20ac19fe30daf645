"""`tuneforge migrate openai`: bring a provider's fine-tuning jobs home to a tuneforge server.

Two servers are involved, so their settings are kept apart: the provider is ``--provider-base-url`` /
``--provider-api-key`` (or an upstream of ``TUNEFORGE_UPSTREAMS``, or ``OPENAI_BASE_URL`` + ``OPENAI_API_KEY``);
the tuneforge server is ``--base-url`` / ``--api-key`` (or ``TUNEFORGE_BASE_URL`` + ``TUNEFORGE_API_KEY``,
default http://127.0.0.1:8000/v1) — never the ``OPENAI_*`` variables, which name the provider here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import (
    DEFAULT_BASE_URL,
    JsonOpt,
    api_errors,
    console,
    err_console,
    make_table,
    print_json,
)

app = typer.Typer(help="Bring fine-tuning jobs home from OpenAI (or any OpenAI-compatible provider).",
                  no_args_is_help=True)


def _local_client(base_url: str | None, api_key: str | None):
    from openai import OpenAI

    url = base_url or os.environ.get("TUNEFORGE_BASE_URL") or DEFAULT_BASE_URL
    key = api_key or os.environ.get("TUNEFORGE_API_KEY") or "tuneforge-local"
    return OpenAI(base_url=url, api_key=key, max_retries=0)


def _download_progress(quiet: bool):
    """A rich progress bar on stderr, one task per file, and the callback that feeds it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=err_console, disable=quiet)
    tasks: dict[str, int] = {}

    def update(label: str, done: int, total: int | None) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(f"download {label}", total=total)
        progress.update(tasks[label], completed=done)

    return progress, update


def _print_table(plans, dry_run: bool) -> None:
    table = make_table("provider job", "method", "hyperparameters", "action", "local job", "model / reason")
    for p in plans:
        hp = ", ".join(f"{k}={v}" for k, v in p.hyperparameters.items()) or "auto"
        action = {"create": "would create" if dry_run else "create", "created": "[green]created[/green]",
                  "skip": "[yellow]skip[/yellow]", "error": "[red]error[/red]"}.get(p.action, p.action)
        detail = p.reason or p.local_model or (f"from {p.source_model}" if p.source_model else "")
        if p.comparison:
            detail += f" — compare: {p.comparison.get('verdict') or p.comparison.get('error')}"
        table.add_row(p.source_job, p.method, hp, action, p.local_job or "-", detail)
    console.print(table)


def _compare(local, plan, files: dict[str, bytes], *, grader: list[str] | None, max_tokens: int) -> dict:
    """`tuneforge eval compare` of the provider's ft: model (A) and the new local one (B) on the job's
    validation file, on the local server (which reaches A through its upstream gateway)."""
    from tuneforge.cli.evals import CompareFailed, _graders, compare_models
    from tuneforge.errors import InvalidRequest
    from tuneforge.evals.compare import heldout_items

    if plan.method != "supervised":
        return {"error": f"not compared: {plan.method} validation data has no single reference answer"}
    if not plan.validation_file or plan.validation_file not in files:
        return {"error": "not compared: the job has no validation file"}
    if not plan.source_model or not plan.local_model:
        return {"error": "not compared: a model is missing (did both jobs succeed?)"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "validation.jsonl"
        path.write_bytes(files[plan.validation_file])
        try:
            items = heldout_items(path)
        except InvalidRequest as exc:
            return {"error": f"not compared: {exc.message}"}
    try:
        out = compare_models(local, plan.source_model, plan.local_model, items, _graders(grader),
                             name=f"{plan.source_job} validation", max_tokens=max_tokens, quiet=True)
    except CompareFailed as exc:
        return {"error": f"{exc} (is the provider's model reachable through the server's TUNEFORGE_UPSTREAMS?)"}
    return {k: v for k, v in out.items() if k not in ("answers", "result", "items")}


@app.command("openai")
@api_errors
def openai_(base_model: Annotated[str, typer.Option("--base-model", "-m", help="The open base model to train "
                                                   "on this server, e.g. smollm2-135m-instruct")],
            job: Annotated[list[str] | None, typer.Option("--job", help="Only this provider job id (repeatable; any "
                                                          "status)")] = None,
            all_statuses: Annotated[bool, typer.Option("--all-statuses", help="Take every listed job, not only "
                                                       "the succeeded ones")] = False,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen; create nothing")] = False,
            keep_hyperparameters: Annotated[bool, typer.Option(
                "--keep-hyperparameters/--auto-hyperparameters",
                help="Reuse the provider job's n_epochs, batch_size, learning_rate_multiplier (and DPO beta), or "
                "let tuneforge pick them")] = True,
            files_dir: Annotated[Path | None, typer.Option(
                "--files-dir", exists=True, file_okay=False,
                help="Folder of local copies of the training files (matched by file name or file id), used "
                "instead of downloading them")] = None,
            wait: Annotated[bool, typer.Option("--wait", help="Wait for the local jobs to finish")] = False,
            compare: Annotated[bool, typer.Option("--compare", help="After the local job succeeds (implies "
                                                  "--wait), compare the old ft: model and the new one on the "
                                                  "validation file with `tuneforge eval compare`")] = False,
            grader: Annotated[list[str] | None, typer.Option("--grader", help="Graders for --compare (as in "
                                                             "`eval compare`; default fuzzy)")] = None,
            max_tokens: Annotated[int, typer.Option(help="Completion budget per item for --compare")] = 256,
            provider_base_url: Annotated[str | None, typer.Option(
                help="The provider's URL incl. /v1 [default: the 'openai' upstream of TUNEFORGE_UPSTREAMS, else "
                "OPENAI_BASE_URL, else https://api.openai.com/v1]", show_default=False)] = None,
            provider_api_key: Annotated[str | None, typer.Option(
                help="The provider's key [default: the upstream's key, else OPENAI_API_KEY]",
                show_default=False)] = None,
            upstream: Annotated[str | None, typer.Option(help="Use this upstream of TUNEFORGE_UPSTREAMS as the "
                                                         "provider")] = None,
            base_url: Annotated[str | None, typer.Option(
                "--base-url", help="The tuneforge server incl. /v1 [env: TUNEFORGE_BASE_URL; default "
                f"{DEFAULT_BASE_URL}]", show_default=False)] = None,
            api_key: Annotated[str | None, typer.Option(
                "--api-key", help="The tuneforge server's key [env: TUNEFORGE_API_KEY]", show_default=False)] = None,
            json_out: JsonOpt = False) -> None:
    """Recreate the provider's fine-tuning jobs on this server: files copied, same method (supervised, DPO),
    hyperparameters and suffix, on --base-model. Re-runs skip jobs already migrated."""
    import openai
    from openai import OpenAI

    from tuneforge.training import migrate as mig

    try:
        provider_cfg = mig.resolve_provider(provider_base_url, provider_api_key, upstream)
    except (mig.MigrationError, ValueError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    local = _local_client(base_url, api_key)
    if mig.same_server(provider_cfg.base_url, str(local.base_url)):
        err_console.print(f"[red]The provider and the tuneforge server are the same URL ({provider_cfg.base_url}).[/red]"
                          " Is OPENAI_BASE_URL pointing at tuneforge? Pass --provider-base-url.")
        raise typer.Exit(1)
    provider = OpenAI(base_url=provider_cfg.base_url, api_key=provider_cfg.api_key or "none", max_retries=2)
    err_console.print(f"Provider: {provider_cfg.base_url} ({provider_cfg.origin}); tuneforge: {local.base_url}")

    try:
        jobs = mig.source_jobs(provider, job, statuses=None if all_statuses else ("succeeded",))
    except openai.APIConnectionError as exc:
        err_console.print(f"[red]Cannot reach the provider[/red] at {provider_cfg.base_url} ({exc.__cause__ or exc}).")
        raise typer.Exit(2) from None
    existing = mig.migrated_jobs(local)
    plans = [mig.plan_job(j, existing=existing, keep_hyperparameters=keep_hyperparameters) for j in jobs]
    local.models.retrieve(base_model)  # a clear 404 before any file is copied (and in a dry run)
    if not dry_run:
        progress, update = _download_progress(json_out)
        copier = mig.FileCopier(provider, local, files_dir=files_dir, progress=update, keep=compare)
        with progress:
            for plan in plans:
                if plan.action == "create":
                    mig.create_local_job(plan, local, copier, base_model)
                    if plan.action == "created":
                        progress.console.print(f"{plan.source_job} -> {plan.local_job}")
        if wait or compare:
            mig.wait_for_jobs(local, plans, on_update=lambda p: err_console.print(
                f"{p.local_job}: {p.local_status}" + (f" ({p.local_model})" if p.local_model else "")))
        if compare:
            for plan in plans:
                if plan.action == "created":
                    err_console.print(f"Comparing {plan.source_model} with {plan.local_model}…")
                    plan.comparison = _compare(local, plan, copier.kept, grader=grader, max_tokens=max_tokens)
    if json_out:
        print_json({"provider": provider_cfg.base_url, "base_model": base_model, "dry_run": dry_run,
                    "jobs": [p.as_dict() for p in plans]})
    else:
        _print_table(plans, dry_run)
        labels = {"create": "to create", "created": "created", "skip": "skipped", "error": "failed"}
        counts = {label: sum(p.action == a for p in plans) for a, label in labels.items()}
        console.print(f"{len(plans)} provider job(s): " + ", ".join(f"{n} {a}" for a, n in counts.items() if n)
                      + (" (dry run: nothing created)" if dry_run else ""))
    if any(p.action == "error" for p in plans):
        raise typer.Exit(1)

