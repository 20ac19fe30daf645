"""`tuneforge chat` and `tuneforge compare`: talk to any model the server serves (base, fine-tuned, upstream).

Interactive mode streams tokens and keeps the conversation; lines starting with ``/`` are commands:
``/system TEXT`` sets the system prompt, ``/reset`` clears the history, ``/history`` shows it,
``/exit`` (or Ctrl-D) quits.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from tuneforge.cli.common import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    api_errors,
    console,
    err_console,
    make_client,
    print_json,
)

MessageOpt = Annotated[str | None, typer.Option("--message", "-m", help="Ask one question and exit")]
SystemOpt = Annotated[str | None, typer.Option("--system", "-s", help="System prompt")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Completion budget per answer")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", "-t", help="0 = deterministic")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Same seed, same answer")]

HELP = "Commands: /system TEXT, /reset, /history, /exit"


def _messages(system: str | None, history: list[dict]) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + history


def _params(max_tokens, temperature, seed) -> dict:
    out = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    return {k: v for k, v in out.items() if v is not None}


def _stream_answer(client, model: str, messages: list[dict], params: dict) -> tuple[str, dict]:
    """Print tokens as they arrive; returns the full text and timing/usage facts."""
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    usage = None
    finish = None
    stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                            stream_options={"include_usage": True}, **params)
    try:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    if first is None:
                        first = time.perf_counter()
                    parts.append(choice.delta.content)
                    console.print(choice.delta.content, end="", markup=False, highlight=False, soft_wrap=True)
                if choice.finish_reason:
                    finish = choice.finish_reason
    finally:
        stream.close()
    console.print()
    return "".join(parts), {"finish_reason": finish, "ttft_s": None if first is None else first - started,
                            "usage": usage.model_dump() if usage else None}


@api_errors
def chat(model: Annotated[str | None, typer.Argument(help="Model id, e.g. smollm2-135m-instruct or ft:...",
                                                     show_default=False)] = None,
         model_opt: Annotated[str | None, typer.Option("--model", help="The model, as an option",
                                                       show_default=False)] = None,
         message: MessageOpt = None, system: SystemOpt = None, max_tokens: MaxTokensOpt = None,
         temperature: TemperatureOpt = None, seed: SeedOpt = None, base_url: BaseUrlOpt = None,
         api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Chat with a model: interactive (streaming, with history), or one question with -m."""
    model = model or model_opt
    if not model:
        err_console.print("Name a model: tuneforge chat MODEL (see `tuneforge models list`).")
        raise typer.Exit(2)
    client = make_client(base_url, api_key)
    params = _params(max_tokens, temperature, seed)
    if message is not None:
        messages = _messages(system, [{"role": "user", "content": message}])
        if json_out:
            print_json(client.chat.completions.create(model=model, messages=messages, **params))
        else:
            _stream_answer(client, model, messages, params)
        return
    if json_out:
        err_console.print("--json needs -m (one question); interactive chat prints text.")
        raise typer.Exit(2)
    history: list[dict] = []
    err_console.print(f"Chatting with [bold]{model}[/bold]. {HELP}")
    while True:
        try:
            line = input("you> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, arg = text.partition(" ")
            if command in ("/exit", "/quit"):
                break
            if command == "/reset":
                history.clear()
                err_console.print("History cleared.")
            elif command == "/system":
                system = arg.strip() or None
                err_console.print(f"System prompt {'set' if system else 'cleared'}.")
            elif command == "/history":
                for m in _messages(system, history):
                    console.print(f"[bold]{m['role']}[/bold]: {m['content']}", highlight=False)
            else:
                err_console.print(f"Unknown command {command}. {HELP}")
            continue
        history.append({"role": "user", "content": text})
        answer, _ = _stream_answer(client, model, _messages(system, history), params)
        history.append({"role": "assistant", "content": answer})


@api_errors
def compare(model_a: Annotated[str, typer.Argument(help="First model")],
            model_b: Annotated[str, typer.Argument(help="Second model")],
            message: Annotated[str, typer.Option("--message", "-m", help="The question both models answer")],
            system: SystemOpt = None, max_tokens: MaxTokensOpt = None, temperature: TemperatureOpt = None,
            seed: SeedOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
            json_out: JsonOpt = False) -> None:
    """Ask two models the same question and show the answers side by side (e.g. base vs fine-tuned)."""
    from concurrent.futures import ThreadPoolExecutor

    client = make_client(base_url, api_key)
    params = _params(max_tokens, temperature, seed)
    messages = _messages(system, [{"role": "user", "content": message}])

    def ask(model: str):
        started = time.perf_counter()
        answer = client.chat.completions.create(model=model, messages=messages, **params)
        return answer, time.perf_counter() - started

    with ThreadPoolExecutor(2) as pool:  # both at once: the server batches them together
        (a, ta), (b, tb) = pool.map(ask, [model_a, model_b])
    if json_out:
        print_json([{"model": model_a, "seconds": round(ta, 3), "response": a.model_dump(mode="json")},
                    {"model": model_b, "seconds": round(tb, 3), "response": b.model_dump(mode="json")}])
        return
    from rich.table import Table

    table = Table(show_lines=True)
    for model, resp, took in ((model_a, a, ta), (model_b, b, tb)):
        table.add_column(f"{model}\n({resp.usage.completion_tokens} tokens, {took:.1f} s)", overflow="fold")
    table.add_row(a.choices[0].message.content or "", b.choices[0].message.content or "")
    console.print(table)
