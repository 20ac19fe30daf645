"""The `tuneforge` command."""

from __future__ import annotations

import typer

from tuneforge import __version__
from tuneforge.cli import batches, data, evals, files, jobs, kb, keys, masks, migrate, models
from tuneforge.cli.ask import ask
from tuneforge.cli.chat import chat, compare
from tuneforge.cli.serve import serve
from tuneforge.cli.train import train
from tuneforge.cli.worker import worker

app = typer.Typer(
    name="tuneforge",
    help="Train your own ChatGPT, self-hosted: data checks, LoRA fine-tuning and an OpenAI-compatible server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.command("chat")(chat)
app.command("compare")(compare)
app.add_typer(keys.app, name="keys")
app.add_typer(files.app, name="files")
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data", help="Convert, check, fix and count training data (offline).")
app.add_typer(jobs.app, name="jobs")
app.command("train")(train)
app.command("worker")(worker)
app.add_typer(kb.app, name="kb")
app.command("ask")(ask)
app.add_typer(masks.app, name="masks")
app.add_typer(evals.app, name="evals")
app.add_typer(evals.compare_app, name="eval")
app.add_typer(batches.app, name="batches")
app.add_typer(migrate.app, name="migrate")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tuneforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit")) -> None:
    pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
