"""`tuneforge jobs`: fine-tuning jobs from the shell (create, list, follow, cancel, pause, ...)."""

from __future__ import annotations

import json
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
    resolve_base_url,
)

app = typer.Typer(help="Create and watch fine-tuning jobs on a tuneforge server.", no_args_is_help=True)
FINAL = ("succeeded", "failed", "cancelled")


def hyperparameters(epochs: int | None, batch_size: int | None, lr_multiplier: float | None,
                    beta: float | None) -> dict:
    hp = {"n_epochs": epochs, "batch_size": batch_size, "learning_rate_multiplier": lr_multiplier, "beta": beta}
    return {k: v for k, v in hp.items() if v is not None}


def parse_metadata(pairs: list[str] | None) -> dict | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"metadata must be KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def validation_eval(graders_file: Path | None, score_items: int | None) -> dict | None:
    """The ``validation_eval`` extension from a JSON file: a list of graders, or the whole object."""
    if graders_file is None:
        if score_items is not None:
            raise typer.BadParameter("--score-items needs --graders")
        return None
    try:
        value = json.loads(graders_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read graders from {graders_file}: {exc}") from None
    spec = {"graders": value} if isinstance(value, list) else value
    if not isinstance(spec, dict):
        raise typer.BadParameter("--graders: expected a JSON list of graders or a validation_eval object")
    if score_items is not None:
        spec["max_items"] = score_items
    return spec


WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="Data-parallel training workers (Ray Train; needs the server's Ray backend when > 1)")]
CpusPerWorkerOpt = Annotated[float | None, typer.Option(help="CPUs each training worker reserves (default 1)")]


def distributed(workers: int | None, cpus_per_worker: float | None) -> dict | None:
    """The ``distributed`` extension from --workers / --cpus-per-worker (None: neither given)."""
    if workers is None and cpus_per_worker is None:
        return None
    return {k: v for k, v in (("num_workers", workers), ("cpus_per_worker", cpus_per_worker)) if v is not None}


def create_job(client, *, model: str, training_file: str, validation_file: str | None, suffix: str | None,
               seed: int | None, method: str, hp: dict, metadata: dict | None, scoring: dict | None = None,
               workers: dict | None = None):
    kwargs: dict = {"model": model, "training_file": training_file,
                    "method": {"type": method, method: {"hyperparameters": hp}}}
    for key, value in (("validation_file", validation_file), ("suffix", suffix), ("seed", seed),
                       ("metadata", metadata)):
        if value is not None:
            kwargs[key] = value
    extensions = {k: v for k, v in (("validation_eval", scoring), ("distributed", workers)) if v is not None}
    if extensions:  # tuneforge extensions: the SDK sends them as extra body fields
        kwargs["extra_body"] = extensions
    return client.fine_tuning.jobs.create(**kwargs)


@app.command("create")
@api_errors
def create(model: Annotated[str, typer.Option("--model", "-m", help="Base model or ft: model to continue")],
           training_file: Annotated[str, typer.Option("--training-file", "-t", help="File id (purpose fine-tune)")],
           validation_file: Annotated[str | None, typer.Option(help="File id for validation metrics")] = None,
           suffix: Annotated[str | None, typer.Option(help="Up to 64 characters, put in the model name")] = None,
           seed: Annotated[int | None, typer.Option(help="Seed (same seed + data = same run)")] = None,
           method: Annotated[str, typer.Option(help="supervised or dpo")] = "supervised",
           epochs: Annotated[int | None, typer.Option(help="n_epochs (default auto)")] = None,
           batch_size: Annotated[int | None, typer.Option(help="batch_size (default auto)")] = None,
           lr_multiplier: Annotated[float | None, typer.Option(help="learning_rate_multiplier (default auto)")] = None,
           beta: Annotated[float | None, typer.Option(help="DPO beta (default auto)")] = None,
           metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
           graders: Annotated[Path | None, typer.Option(
               help="JSON file of graders (or a validation_eval object): score every checkpoint on the "
                    "validation file; see `tuneforge jobs checkpoints`")] = None,
           score_items: Annotated[int | None, typer.Option(help="Validation items each checkpoint is scored on "
                                                                "(default 32)")] = None,
           workers: WorkersOpt = None, cpus_per_worker: CpusPerWorkerOpt = None,
           follow_: Annotated[bool, typer.Option("--follow", help="Show live progress until the job ends")] = False,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Create a fine-tuning job."""
    client = make_client(base_url, api_key)
    job = create_job(client, model=model, training_file=training_file, validation_file=validation_file,
                     suffix=suffix, seed=seed, method=method, hp=hyperparameters(epochs, batch_size, lr_multiplier,
                                                                                   beta),
                     metadata=parse_metadata(metadata), scoring=validation_eval(graders, score_items),
                     workers=distributed(workers, cpus_per_worker))
    if json_out:
        print_json(job)
    else:
        console.print(f"Created [bold]{job.id}[/bold] ({job.status}).")
    if follow_:
        raise typer.Exit(follow_job(client, job.id, base_url=base_url, api_key=api_key, json_out=json_out))


@app.command("list")
@api_errors
def list_(limit: Annotated[int, typer.Option(help="Page size while listing")] = 50,
          metadata: Annotated[list[str] | None, typer.Option(help="Only jobs with KEY=VALUE metadata")] = None,
          base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List jobs, newest first (all pages)."""
    kwargs: dict = {"limit": limit}
    meta = parse_metadata(metadata)
    if meta:
        kwargs["metadata"] = meta
    jobs = list(make_client(base_url, api_key).fine_tuning.jobs.list(**kwargs))
    if json_out:
        print_json(jobs)
        return
    table = make_table("id", "status", "model", "fine-tuned model", "created")
    for j in jobs:
        table.add_row(j.id, j.status, j.model, j.fine_tuned_model or "-", fmt_time(j.created_at))
    console.print(table)


def _show(job, json_out: bool) -> None:
    if json_out:
        print_json(job)
        return
    for key, value in job.model_dump().items():
        if value not in (None, [], {}):
            console.print(f"[bold]{key}[/bold]: {value}")


@app.command("get")
@api_errors
def get(job_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show one job."""
    _show(make_client(base_url, api_key).fine_tuning.jobs.retrieve(job_id), json_out)


@app.command("cancel")
@api_errors
def cancel(job_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Cancel a job (its training process stops within seconds)."""
    job = make_client(base_url, api_key).fine_tuning.jobs.cancel(job_id)
    print_json(job) if json_out else console.print(f"{job.id}: {job.status}")


@app.command("pause")
@api_errors
def pause(job_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Pause a job after its current step; `resume` continues from there."""
    job = make_client(base_url, api_key).fine_tuning.jobs.pause(job_id)
    print_json(job) if json_out else console.print(
        f"{job.id}: {'pausing after the current step' if job.status == 'running' else job.status}")


@app.command("resume")
@api_errors
def resume(job_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Resume a paused job."""
    job = make_client(base_url, api_key).fine_tuning.jobs.resume(job_id)
    print_json(job) if json_out else console.print(f"{job.id}: {job.status}")


@app.command("events")
@api_errors
def events(job_id: str, limit: Annotated[int, typer.Option(help="How many of the newest events")] = 50,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show a job's newest events (oldest of them first)."""
    page = make_client(base_url, api_key).fine_tuning.jobs.list_events(job_id, limit=limit)
    items = list(reversed(page.data))
    if json_out:
        print_json(items)
        return
    for e in items:
        console.print(f"[dim]{fmt_time(e.created_at)}[/dim] {_level(e.level)} {e.message}")


@app.command("checkpoints")
@api_errors
def checkpoints(job_id: str,
                best_by: Annotated[str | None, typer.Option(help="Grader that picks the best checkpoint "
                                                                 "(default: the job's first grader)")] = None,
                base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List a job's checkpoints (servable models), newest first, with their grader scores (jobs created with
    --graders) and the best one marked."""
    client = make_client(base_url, api_key)
    items = list(client.fine_tuning.jobs.checkpoints.list(job_id))
    if json_out:
        print_json(items)
        return
    scored = [c for c in items if (getattr(c, "tuneforge", None) or {}).get("scoring")]
    names: list[str] = []
    if scored:
        spec = ((client.fine_tuning.jobs.retrieve(job_id).tuneforge or {}).get("validation_eval") or {})
        names = [g["name"] for g in spec.get("graders", [])]
    if best_by is not None and best_by not in names:
        raise typer.BadParameter(f"--best-by: no grader {best_by!r} in this job (graders: {names or 'none'})")
    key = best_by or (names[0] if names else None)
    scores = {c.id: (getattr(c.metrics, "graders", None) or {}) for c in items}
    ranked = [c for c in items if isinstance(scores[c.id].get(key), int | float)]
    best = max(ranked, key=lambda c: (scores[c.id][key], c.step_number)).id if ranked else None
    if not names:
        table = make_table("model", "step", "train loss", "valid loss", "created")
        for c in items:
            table.add_row(c.fine_tuned_model_checkpoint, str(c.step_number), _num(c.metrics.train_loss),
                          _num(c.metrics.valid_loss), fmt_time(c.created_at))
        console.print(table)
        return
    # with scores the long model names would squeeze the table: steps in it, names below
    table = make_table("step", *names, "train loss", "valid loss")
    for c in items:
        status = ((getattr(c, "tuneforge", None) or {}).get("scoring") or {}).get("status") or "-"
        step = str(c.step_number) + (" [bold green]best[/bold green]" if c.id == best else "")
        cells = [_num(scores[c.id].get(n)) if scores[c.id] else status for n in names]  # not scored (yet): why
        table.add_row(step, *cells, _num(c.metrics.train_loss), _num(c.metrics.valid_loss))
    console.print(table)
    if items:
        prefix = items[0].fine_tuned_model_checkpoint.rsplit(":ckpt-step-", 1)[0]
        console.print(f"Models: {prefix}:ckpt-step-<step>", soft_wrap=True)
    if best is not None:
        console.print(f"Best by {key}: {next(c.fine_tuned_model_checkpoint for c in items if c.id == best)}",
                      soft_wrap=True)


@app.command("follow")
@api_errors
def follow(job_id: str, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show live progress (step/total, loss, ETA) until the job ends; re-attaches after a disconnect."""
    raise typer.Exit(follow_job(make_client(base_url, api_key), job_id, base_url=base_url, api_key=api_key,
                                json_out=json_out))


def _num(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _level(level: str) -> str:
    return {"warn": "[yellow]warn[/yellow]", "error": "[red]error[/red]"}.get(level, "[green]info[/green]")


def follow_job(client, job_id: str, *, base_url: str | None, api_key: str | None, json_out: bool = False,
               reconnect_for: float = 600.0) -> int:
    """Stream the job's events (SSE, our ``?stream=true`` extension) with a progress bar.

    A dropped connection is retried with backoff for ``reconnect_for`` seconds, resuming after the
    last event seen (``Last-Event-ID``), so nothing is shown twice. Returns the exit code: 0 when the
    job succeeded (or paused), 1 otherwise.
    """
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    url = f"{resolve_base_url(base_url).rstrip('/')}/fine_tuning/jobs/{job_id}/events"
    headers = {"Authorization": f"Bearer {client.api_key}", "Accept": "text/event-stream"}
    last_id = "0"
    lost_since: float | None = None
    delay = 0.5
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=json_out, transient=False) as progress:
        task = progress.add_task("queued", total=None, loss="-")
        while True:
            try:
                with httpx.stream("GET", url, params={"stream": "true"}, headers={**headers, "Last-Event-ID": last_id},
                                  timeout=httpx.Timeout(10.0, read=60.0)) as response:
                    if response.status_code != 200:
                        response.read()
                        body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
                        err_console.print(f"[red]Error {response.status_code}:[/red] "
                                          f"{body.get('error', {}).get('message', response.text)}")
                        return 1
                    lost_since, delay = None, 0.5
                    done = False
                    for line in response.iter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:].strip()
                        elif line == "data: [DONE]":
                            done = True
                            break
                        elif line.startswith("data: "):
                            _render(progress, task, json.loads(line[6:]), json_out)
                    if done:
                        break
            except (httpx.TransportError, httpx.StreamError) as exc:
                now = time.time()
                lost_since = lost_since or now
                if now - lost_since > reconnect_for:
                    err_console.print(f"[red]Lost the server for {reconnect_for:.0f} s; giving up.[/red] ({exc})")
                    return 2
                progress.console.print(f"[yellow]Connection lost ({type(exc).__name__}); re-attaching…[/yellow]")
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
    job = client.fine_tuning.jobs.retrieve(job_id)
    if json_out:  # one object per line, like the events before it
        print(json.dumps(job.model_dump(mode="json"), ensure_ascii=False), flush=True)
    elif job.status == "succeeded":
        console.print(f"[green]Succeeded.[/green] Fine-tuned model: [bold]{job.fine_tuned_model}[/bold]")
        console.print(f"Chat with it: tuneforge chat --model '{job.fine_tuned_model}'")
    elif job.status == "paused":
        console.print(f"Paused. Continue with: tuneforge jobs resume {job.id}")
    else:
        message = job.error.message if job.error else ""
        console.print(f"[red]Job {job.status}.[/red] {message}")
    return 0 if job.status in ("succeeded", "paused") else 1


def _render(progress, task, event: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    data = event.get("data") or {}
    if event.get("type") == "metrics":
        loss = data.get("train_loss")
        progress.update(task, description="training", total=data.get("total_steps"), completed=data.get("step", 0),
                        loss=f"{loss:.4f}" if isinstance(loss, float) else "-")
        if data.get("full_valid_loss") is not None:
            progress.console.print(f"[dim]{fmt_time(event['created_at'])}[/dim] {event['message']}")
        return
    progress.console.print(f"[dim]{fmt_time(event['created_at'])}[/dim] {_level(event.get('level', 'info'))} "
                           f"{event['message']}")
