"""`tuneforge chat` and `tuneforge compare`: talk to any model the server serves (base, fine-tuned, upstream).

Interactive mode streams tokens and keeps the conversation; lines starting with ``/`` are commands:
``/system TEXT`` sets the system prompt, ``/reset`` clears the history, ``/history`` shows it,
``/exit`` (or Ctrl-D) quits.

``--tools FILE.json`` offers functions (a JSON list of chat-completions tools, or ``{"tools": [...]}``).
When the model calls one, the call is printed; interactively you then type each result (JSON or
text), which goes back to the model as a ``tool`` message, until it answers in text.
"""

from __future__ import annotations

import json
import sys
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
    make_client,
    print_json,
)

MessageOpt = Annotated[str | None, typer.Option("--message", "-m", help="Ask one question and exit")]
SystemOpt = Annotated[str | None, typer.Option("--system", "-s", help="System prompt")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Completion budget per answer")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", "-t", help="0 = deterministic")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Same seed, same answer")]
ToolsOpt = Annotated[Path | None, typer.Option("--tools", help="JSON file of function tools to offer",
                                               exists=True, dir_okay=False, show_default=False)]
ToolChoiceOpt = Annotated[str | None, typer.Option(
    "--tool-choice", help="auto (default), none, required, or a function name", show_default=False)]

HELP = "Commands: /system TEXT, /reset, /history, /exit"


def _messages(system: str | None, history: list[dict]) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + history


def _params(max_tokens, temperature, seed) -> dict:
    out = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    return {k: v for k, v in out.items() if v is not None}


def _tools(path: Path | None, choice: str | None) -> dict:
    """``tools`` / ``tool_choice`` request parameters from the --tools file and --tool-choice."""
    if path is None:
        if choice:
            err_console.print("--tool-choice needs --tools FILE.json.")
            raise typer.Exit(2)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        err_console.print(f"{path} is not valid JSON: {exc}")
        raise typer.Exit(2) from None
    tools = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(tools, list) or not tools:
        err_console.print(f"{path} must hold a JSON list of tools (or an object with a 'tools' list).")
        raise typer.Exit(2)
    # A bare function definition is accepted as {"type": "function", "function": it}.
    tools = [t if isinstance(t, dict) and "type" in t else {"type": "function", "function": t} for t in tools]
    out: dict = {"tools": tools}
    if choice:
        out["tool_choice"] = choice if choice in ("auto", "none", "required") else \
            {"type": "function", "function": {"name": choice}}
    return out


def _ask_results(calls: list[dict]) -> list[dict] | None:
    """The user's result for each call, as ``tool`` messages (None: the user gave up)."""
    out = []
    for call in calls:
        try:
            result = input(f"result of {call['function']['name']}> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            return None
        out.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return out


def _stream_answer(client, model: str, messages: list[dict], params: dict) -> tuple[str, dict]:
    """Print tokens (and tool calls) as they arrive; returns the full text and timing/usage facts
    (``tool_calls``: the calls the model made, chat-completions shaped)."""
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    calls: dict[int, dict] = {}
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
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, {"id": "", "type": "function",
                                                          "function": {"name": "", "arguments": ""}})
                    if delta.id:
                        call["id"] = delta.id
                    if delta.function and delta.function.name:
                        call["function"]["name"] = delta.function.name
                        console.print(f"[calls {delta.function.name}] ", end="", markup=False, highlight=False)
                    if delta.function and delta.function.arguments:
                        call["function"]["arguments"] += delta.function.arguments
                        console.print(delta.function.arguments, end="", markup=False, highlight=False,
                                      soft_wrap=True)
                if choice.finish_reason:
                    finish = choice.finish_reason
    finally:
        stream.close()
    console.print()
    return "".join(parts), {"finish_reason": finish, "ttft_s": None if first is None else first - started,
                            "usage": usage.model_dump() if usage else None,
                            "tool_calls": [calls[i] for i in sorted(calls)]}


@api_errors
def chat(model: Annotated[str | None, typer.Argument(help="Model id, e.g. smollm2-135m-instruct or ft:...",
                                                     show_default=False)] = None,
         model_opt: Annotated[str | None, typer.Option("--model", help="The model, as an option",
                                                       show_default=False)] = None,
         message: MessageOpt = None, system: SystemOpt = None, max_tokens: MaxTokensOpt = None,
         temperature: TemperatureOpt = None, seed: SeedOpt = None, base_url: BaseUrlOpt = None,
         api_key: ApiKeyOpt = None, json_out: JsonOpt = False, tools: ToolsOpt = None,
         tool_choice: ToolChoiceOpt = None) -> None:
    """Chat with a model: interactive (streaming, with history), or one question with -m.
    With --tools, the model may call your functions; you type their results."""
    model = model or model_opt
    if not model:
        err_console.print("Name a model: tuneforge chat MODEL (see `tuneforge models list`).")
        raise typer.Exit(2)
    client = make_client(base_url, api_key)
    params = {**_params(max_tokens, temperature, seed), **_tools(tools, tool_choice)}
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
                    shown = m["content"] if m.get("content") is not None else json.dumps(m.get("tool_calls"))
                    console.print(f"[bold]{m['role']}[/bold]: {shown}", highlight=False)
            else:
                err_console.print(f"Unknown command {command}. {HELP}")
            continue
        history.append({"role": "user", "content": text})
        while True:
            answer, facts = _stream_answer(client, model, _messages(system, history), params)
            calls = facts["tool_calls"]
            history.append({"role": "assistant", "content": answer or None, **({"tool_calls": calls} if calls else {})})
            results = _ask_results(calls) if calls else None
            if not results:
                if calls:
                    history.pop()  # calls left unanswered would confuse the next turn
                break
            history.extend(results)  # the model continues with the results


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
