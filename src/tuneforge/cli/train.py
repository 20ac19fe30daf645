"""`tuneforge train DATA --model M`: upload, create a job and follow it, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import ApiKeyOpt, BaseUrlOpt, JsonOpt, api_errors, console, make_client
from tuneforge.cli.jobs import (
    CpusPerWorkerOpt,
    WorkersOpt,
    create_job,
    distributed,
    follow_job,
    hyperparameters,
    parse_metadata,
    validation_eval,
)


def _upload(client, path: Path, json_out: bool) -> str:
    with path.open("rb") as fh:
        obj = client.files.create(file=(path.name, fh), purpose="fine-tune")
    if not json_out:
        console.print(f"Uploaded {path.name} as [bold]{obj.id}[/bold]")
    return obj.id


@api_errors
def train(data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                                help="Chat (or DPO) JSONL file")],
          model: Annotated[str, typer.Option("--model", "-m", help="Base model, or ft: model to continue")]
          = "smollm2-135m-instruct",
          validation: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                          help="Validation JSONL file")] = None,
          suffix: Annotated[str | None, typer.Option(help="Put in the model name (≤ 64 chars)")] = None,
          method: Annotated[str, typer.Option(help="supervised or dpo")] = "supervised",
          epochs: Annotated[int | None, typer.Option(help="n_epochs (default auto)")] = None,
          batch_size: Annotated[int | None, typer.Option(help="batch_size (default auto)")] = None,
          lr_multiplier: Annotated[float | None, typer.Option(help="learning_rate_multiplier (default auto)")] = None,
          beta: Annotated[float | None, typer.Option(help="DPO beta (default auto)")] = None,
          seed: Annotated[int | None, typer.Option(help="Seed (same seed + data = same run)")] = None,
          metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
          graders: Annotated[Path | None, typer.Option(
              exists=True, dir_okay=False, help="JSON file of graders: score every checkpoint on the validation "
                                                "file (needs --validation); see `tuneforge jobs checkpoints`")] = None,
          score_items: Annotated[int | None, typer.Option(help="Validation items each checkpoint is scored on "
                                                               "(default 32)")] = None,
          workers: WorkersOpt = None, cpus_per_worker: CpusPerWorkerOpt = None,
          follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Watch progress until it ends")] = True,
          base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Fine-tune MODEL on DATA with LoRA on the server (start it with `tuneforge serve`)."""
    client = make_client(base_url, api_key)
    training_file = _upload(client, data, json_out)
    validation_file = _upload(client, validation, json_out) if validation else None
    job = create_job(client, model=model, training_file=training_file, validation_file=validation_file,
                     suffix=suffix, seed=seed, method=method,
                     hp=hyperparameters(epochs, batch_size, lr_multiplier, beta), metadata=parse_metadata(metadata),
                     scoring=validation_eval(graders, score_items), workers=distributed(workers, cpus_per_worker))
    if not json_out:
        console.print(f"Created job [bold]{job.id}[/bold]; follow it later with `tuneforge jobs follow {job.id}`.")
    if follow:
        raise typer.Exit(follow_job(client, job.id, base_url=base_url, api_key=api_key, json_out=json_out))
