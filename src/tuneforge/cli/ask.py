"""`tuneforge ask --kb NAME "question"`: an answer from your documents, with its sources."""

from __future__ import annotations

from typing import Annotated

import typer

from tuneforge.cli.common import ApiKeyOpt, BaseUrlOpt, JsonOpt, api_errors, console, make_client, print_json
from tuneforge.cli.kb import find_store

ASSISTANT_PREFIX = "kb:"


def _assistant(client, store, model: str, instructions: str | None):
    """One assistant per (knowledge base, model), reused across questions."""
    name = f"{ASSISTANT_PREFIX}{store.name}"
    for a in client.beta.assistants.list(limit=100):
        resources = a.tool_resources.file_search.vector_store_ids if a.tool_resources and \
            a.tool_resources.file_search else []
        if a.name == name and a.model == model and resources == [store.id]:
            if instructions is not None and a.instructions != instructions:
                a = client.beta.assistants.update(a.id, instructions=instructions)
            return a
    return client.beta.assistants.create(
        name=name, model=model, tools=[{"type": "file_search"}],
        instructions=instructions or "You answer questions from the provided documents, briefly and accurately.",
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})


def ask(question: Annotated[str, typer.Argument(help="Your question")],
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name or vs_ id")],
        model: Annotated[str, typer.Option(help="Model that writes the answer (base, ft: or upstream)")]
        = "smollm2-135m-instruct",
        mask: Annotated[str | None, typer.Option(help="A mask (preset) to apply, by name or id")] = None,
        instructions: Annotated[str | None, typer.Option(help="Override the assistant's instructions")] = None,
        temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 0.0,
        max_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens")] = 256,
        base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, json_out: JsonOpt = False) -> None:
    """Answer a question from a knowledge base, streaming the answer, then list the cited files."""
    run_ask(question, kb, model, mask, instructions, temperature, max_tokens, base_url, api_key, json_out)


@api_errors
def run_ask(question, kb, model, mask, instructions, temperature, max_tokens, base_url, api_key, json_out) -> None:
    client = make_client(base_url, api_key)
    store = find_store(client, kb)
    assistant = _assistant(client, store, model, instructions)
    extra = {"mask": mask} if mask else {}
    with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, temperature=temperature, max_completion_tokens=max_tokens,
            thread={"messages": [{"role": "user", "content": question}]}, extra_body=extra or None) as stream:
        for delta in stream.text_deltas:
            if not json_out:
                console.print(delta, end="", markup=False, highlight=False)
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    if run.status == "failed":
        console.print(f"\n[red]The run failed:[/red] {run.last_error.message if run.last_error else ''}")
        raise typer.Exit(1)
    text = messages[-1].content[0].text if messages else None
    cited = []
    for a in (text.annotations if text else []):
        if a.type == "file_citation" and a.file_citation.file_id not in [c["file_id"] for c in cited]:
            cited.append({"marker": a.text, "file_id": a.file_citation.file_id,
                          "filename": client.files.retrieve(a.file_citation.file_id).filename})
    if json_out:
        print_json({"answer": text.value if text else "", "citations": cited, "run": run.model_dump(mode="json")})
        return
    console.print()
    for c in cited:
        console.print(f"[dim]{c['marker']} {c['filename']} ({c['file_id']})[/dim]")
