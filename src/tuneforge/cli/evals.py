"""`tuneforge evals` (the /v1/evals API from the shell) and `tuneforge eval compare` (two models on
held-out data, with a bootstrap interval of the difference)."""

from __future__ import annotations

import io
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
    to_plain,
)

app = typer.Typer(help="Create evals, run them on a model and read the graded items.", no_args_is_help=True)
compare_app = typer.Typer(help="Compare two models on held-out data.", no_args_is_help=True)

GraderOpt = Annotated[list[str] | None, typer.Option(
    "--grader", help="exact, contains, icontains, fuzzy, bleu, gleu, meteor, rouge_1..rouge_5, rouge_l, cosine, "
    "a grader as JSON or @file.json (repeatable; default: fuzzy)")]


def _graders(specs: list[str] | None) -> list[dict]:
    from tuneforge.errors import InvalidRequest
    from tuneforge.evals.presets import grader

    try:
        return [grader(s) for s in (specs or ["fuzzy"])]
    except (InvalidRequest, OSError) as exc:
        err_console.print(f"[red]{getattr(exc, 'message', exc)}[/red]")
        raise typer.Exit(1) from None


def _items(data: Path) -> list[dict]:
    from tuneforge.errors import InvalidRequest
    from tuneforge.evals.compare import heldout_items

    try:
        return heldout_items(data)
    except InvalidRequest as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None


def _upload_items(client, items: list[dict], name: str) -> str:
    data = "".join(json.dumps({"item": item}, ensure_ascii=False) + "\n" for item in items).encode()
    return client.files.create(file=(name, io.BytesIO(data)), purpose="evals").id


def _run_source(file_id: str, model: str, max_tokens: int, temperature: float, seed: int | None) -> dict:
    params = {"max_completion_tokens": max_tokens, "temperature": temperature}
    if seed is not None:
        params["seed"] = seed
    return {"type": "completions", "model": model, "source": {"type": "file_id", "id": file_id},
            "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
            "sampling_params": params}


def _wait(client, eval_id: str, run_ids: list[str], quiet: bool) -> list:
    """Poll the runs to a terminal state, with a progress bar per run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def fetch():
        return [client.evals.runs.retrieve(r, eval_id=eval_id) for r in run_ids]

    runs = fetch()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=quiet) as progress:
        tasks = [progress.add_task(f"{r.model or r.name}", total=r.result_counts.total) for r in runs]
        while True:
            for task, run in zip(tasks, runs, strict=True):
                c = run.result_counts
                progress.update(task, completed=c.passed + c.failed + c.errored)
            if all(r.status in ("completed", "failed", "canceled") for r in runs):
                return runs
            time.sleep(0.5)
            runs = fetch()


def _all_items(client, eval_id: str, run_id: str) -> list[dict]:
    return [to_plain(i) for i in client.evals.runs.output_items.list(run_id, eval_id=eval_id, limit=100)]


@app.command("create")
@api_errors
def create(name: Annotated[str, typer.Option(help="The eval's name")],
           grader: GraderOpt = None,
           base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Create an eval whose items are {messages, reference} (what `evals run --data` uploads)."""
    client = make_client(base_url, api_key)
    schema = {"type": "object", "properties": {"messages": {"type": "array"}, "reference": {"type": "string"}},
              "required": ["messages"]}
    ev = client.evals.create(name=name, data_source_config={"type": "custom", "item_schema": schema},
                             testing_criteria=_graders(grader))  # type: ignore[arg-type]
    if json_out:
        print_json(ev)
    else:
        console.print(f"Created eval [bold]{ev.id}[/bold] ({', '.join(c.name for c in ev.testing_criteria)})")


@app.command("run")
@api_errors
def run(eval_id: str, model: Annotated[str, typer.Option(help="The model to sample")],
        data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="JSONL of chat examples (the last "
                                           "assistant message is the reference) or items")],
        max_tokens: Annotated[int, typer.Option(help="Completion budget per item")] = 256,
        temperature: Annotated[float, typer.Option()] = 0.0,
        seed: Annotated[int | None, typer.Option()] = None,
        wait: Annotated[bool, typer.Option(help="Wait for the run, with a progress bar")] = True,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Run an eval: the model answers every item, the eval's graders score the answers."""
    client = make_client(base_url, api_key)
    file_id = _upload_items(client, _items(data), data.name)
    created = client.evals.runs.create(eval_id, name=f"{model} on {data.name}",
                                       data_source=_run_source(file_id, model, max_tokens, temperature, seed))
    result = _wait(client, eval_id, [created.id], json_out)[0] if wait else created
    if json_out:
        print_json(result)
        return
    _print_run(result)


def _print_run(run) -> None:
    c = run.result_counts
    console.print(f"Run [bold]{run.id}[/bold] ({run.model}): {run.status} — {c.passed} passed, {c.failed} failed, "
                  f"{c.errored} errored of {c.total}")
    for crit in run.per_testing_criteria_results:
        console.print(f"  {crit.testing_criteria}: {crit.passed} passed, {crit.failed} failed")
    if run.error:
        console.print(f"  [red]{run.error.message}[/red]")


@app.command("list")
@api_errors
def list_(base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """List evals, newest first."""
    client = make_client(base_url, api_key)
    evals = list(client.evals.list(limit=100))
    if json_out:
        print_json(evals)
        return
    table = make_table("id", "name", "graders", "created")
    for ev in evals:
        table.add_row(ev.id, ev.name, ", ".join(c.name for c in ev.testing_criteria), fmt_time(ev.created_at))
    console.print(table)


@app.command("get")
@api_errors
def get(eval_id: str, run_id: Annotated[str | None, typer.Argument(help="A run of the eval")] = None,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Show an eval and its runs, or one run."""
    client = make_client(base_url, api_key)
    if run_id:
        run_obj = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        print_json(run_obj) if json_out else _print_run(run_obj)
        return
    ev = client.evals.retrieve(eval_id)
    runs = list(client.evals.runs.list(eval_id, limit=100))
    if json_out:
        print_json({"eval": to_plain(ev), "runs": to_plain(runs)})
        return
    console.print(f"[bold]{ev.id}[/bold] {ev.name} — graders: {', '.join(c.name for c in ev.testing_criteria)}")
    table = make_table("run", "model", "status", "passed", "failed", "errored", "total", "created")
    for r in runs:
        c = r.result_counts
        table.add_row(r.id, r.model, r.status, str(c.passed), str(c.failed), str(c.errored), str(c.total),
                      fmt_time(r.created_at))
    console.print(table)


@app.command("items")
@api_errors
def items(eval_id: str, run_id: str,
          status: Annotated[str | None, typer.Option(help="pass, fail or error")] = None,
          base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """The graded items of a run: the model's answer and each grader's score."""
    client = make_client(base_url, api_key)
    kwargs = {"status": status} if status else {}
    rows = list(client.evals.runs.output_items.list(run_id, eval_id=eval_id, limit=100, order="asc", **kwargs))
    if json_out:
        print_json(rows)
        return
    table = make_table("#", "status", "answer", "scores")
    for row in rows:
        answer = (row.sample.output[0].content if row.sample and row.sample.output else "") or ""
        scores = ", ".join(f"{r.name}={r.score:.2f}" for r in row.results)
        table.add_row(str(row.datasource_item_id), row.status, answer[:80], scores)
    console.print(table)


class CompareFailed(Exception):
    """One of the two eval runs did not complete."""


def compare_models(client, model_a: str, model_b: str, items_: list[dict], criteria: list[dict], *, name: str,
                   max_tokens: int = 256, temperature: float = 0.0, seed: int | None = 0, resamples: int = 10_000,
                   quiet: bool = False) -> dict:
    """Run both models on the held-out items as two runs of one eval and compare their per-item scores.
    The JSON-ready summary; ``answers`` (per model, by item) and ``result`` (the Comparison) are for printing.
    Raises ``CompareFailed`` when a run does not complete. Also used by `tuneforge migrate openai --compare`."""
    from tuneforge.evals.compare import item_scores, paired_bootstrap

    schema = {"type": "object", "properties": {"messages": {"type": "array"}, "reference": {"type": "string"}}}
    ev = client.evals.create(name=f"compare {model_a} vs {model_b} on {name}",
                             data_source_config={"type": "custom", "item_schema": schema},
                             testing_criteria=criteria)  # type: ignore[arg-type]
    file_id = _upload_items(client, items_, name)
    run_ids = [client.evals.runs.create(ev.id, name=m, data_source=_run_source(file_id, m, max_tokens, temperature,
                                                                              seed)).id
               for m in (model_a, model_b)]
    runs = _wait(client, ev.id, run_ids, quiet)
    for r in runs:
        if r.status != "completed":
            raise CompareFailed(f"The run of {r.model} {r.status}" + (f": {r.error.message}" if r.error else ""))
    names = [c["name"] for c in criteria]
    per_item = [item_scores(_all_items(client, ev.id, r.id), names) for r in runs]
    keys = sorted(set(per_item[0]) & set(per_item[1]))
    result = paired_bootstrap([per_item[0][k] for k in keys], [per_item[1][k] for k in keys], resamples=resamples,
                              seed=seed or 0)
    answers = [{i["datasource_item_id"]: (i.get("sample") or {}).get("output", [{}])[0].get("content", "")
                for i in _all_items(client, ev.id, r.id)} for r in runs]
    return {"eval_id": ev.id, "run_ids": run_ids, "graders": names, "model_a": model_a, "model_b": model_b,
            **result.as_dict(),
            "items": [{"index": k, "score_a": per_item[0][k], "score_b": per_item[1][k]} for k in keys],
            "answers": answers, "result": result}


@compare_app.command("compare")
@api_errors
def compare(model_a: str, model_b: str,
            data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Held-out JSONL (chat examples: "
                                               "the last assistant message is the reference)")],
            grader: GraderOpt = None,
            max_tokens: Annotated[int, typer.Option(help="Completion budget per item")] = 256,
            temperature: Annotated[float, typer.Option()] = 0.0,
            seed: Annotated[int | None, typer.Option()] = 0,
            resamples: Annotated[int, typer.Option(help="Bootstrap resamples")] = 10_000,
            base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Which model answers the held-out set better? Per-item wins, mean scores and a bootstrap 95 % interval
    of the difference (B − A): an interval that excludes 0 is a clear win."""
    client = make_client(base_url, api_key)
    items_ = _items(data)
    try:
        out = compare_models(client, model_a, model_b, items_, _graders(grader), name=data.name,
                             max_tokens=max_tokens, temperature=temperature, seed=seed, resamples=resamples,
                             quiet=json_out)
    except CompareFailed as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if json_out:
        print_json({k: v for k, v in out.items() if k not in ("answers", "result")})
        return
    keys = [row["index"] for row in out["items"]]
    a, b = [row["score_a"] for row in out["items"]], [row["score_b"] for row in out["items"]]
    answers, names = out["answers"], out["graders"]
    result = out["result"]
    table = make_table("#", "question", f"A: {model_a}", f"B: {model_b}", "win")
    for k, sa, sb in zip(keys, a, b, strict=True):
        question = items_[k]["messages"][-1]["content"] if items_[k]["messages"] else ""
        win = "B" if sb > sa + 1e-9 else "A" if sa > sb + 1e-9 else "="
        table.add_row(str(k), question[:40], f"{sa:.2f} {answers[0].get(k, '')[:30]!r}",
                      f"{sb:.2f} {answers[1].get(k, '')[:30]!r}", win)
    console.print(table)
    console.print(f"graders: {', '.join(names)} — {result.n} items")
    console.print(f"mean score  A {result.mean_a:.3f}   B {result.mean_b:.3f}")
    console.print(f"wins        A {result.wins_a}   B {result.wins_b}   ties {result.ties}")
    console.print(f"difference (B − A) {result.diff:+.3f}, 95 % bootstrap interval [{result.low:+.3f}, "
                  f"{result.high:+.3f}]: [bold]{result.verdict}[/bold]")
