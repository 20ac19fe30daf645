"""Prompt budgets, thread summaries, citations (units) and masks (API + runs)."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import pytest
from kbhelpers import upload, wait_store

from tuneforge.assistants import prompt
from tuneforge.assistants.masks import apply_mask


def count(text: str) -> int:  # one token per word is enough to test budgets
    return len(text.split())


def count_messages(messages) -> int:
    return sum(count(m["content"]) + 4 for m in messages)


@dataclass
class R:
    filename: str
    text: str
    file_id: str = "file-x"


def turns(n: int):
    return [prompt.Turn(f"msg_{i:03d}", "user" if i % 2 == 0 else "assistant",
                        f"Turn {i} says something fairly long about topic {i}. " + "filler " * 40) for i in range(n)]


def test_long_threads_keep_recent_turns_verbatim_and_summarize_older_ones():
    history = turns(30)
    built = prompt.build(system_parts=["Be helpful."], few_shot=[], turns=history, results=[], summary=None,
                         summary_upto=None, budget=600, count=count, count_messages=count_messages)
    assert built.prompt_tokens <= 600
    verbatim = [m["content"] for m in built.messages[1:]]
    assert verbatim[-1] == history[-1].text and len(verbatim) < 30
    assert built.dropped_turns == 30 - len(verbatim)
    assert built.summary and "Turn" in built.summary and built.summary_upto == history[built.dropped_turns - 1].id
    assert "Earlier in this conversation" in built.messages[0]["content"]
    # next time the stored summary is reused and extended, not rebuilt from the start
    history += turns(34)[30:]
    again = prompt.build(system_parts=[], few_shot=[], turns=history, results=[], summary=built.summary,
                         summary_upto=built.summary_upto, budget=600, count=count, count_messages=count_messages)
    assert again.prompt_tokens <= 600 and again.summary_upto > built.summary_upto
    assert again.messages[-1]["content"] == history[-1].text


def test_sources_stay_within_their_share_best_first():
    results = [R(f"f{i}.md", f"chunk {i} " + "word " * 150) for i in range(6)]
    built = prompt.build(system_parts=["S"], few_shot=[], turns=turns(1), results=results, summary=None,
                         summary_upto=None, budget=800, count=count, count_messages=count_messages)
    assert 1 <= len(built.sources) < 6 and built.sources[0] is results[0]
    system = built.messages[0]["content"]
    assert "[1] (f0.md)" in system and prompt.CITE_RULE in system
    assert built.prompt_tokens <= 800


def test_citations_use_model_markers_or_the_best_matching_source():
    sources = [R("a.md", "The warranty lasts two years.", "file-a"), R("b.md", "Refunds within 45 days.", "file-b")]
    text, marks = prompt.citations("Refunds are possible within 45 days [2].", sources)
    assert marks == [(text.index("[2]"), text.index("[2]") + 3, 1)]
    text, marks = prompt.citations("You have 45 days for refunds.", sources)
    (start, end, index), = marks
    assert index == 1 and text[start:end] == "【2†b.md】"
    _, marks = prompt.citations("[7] is not a source", sources)
    assert marks and marks[0][2] in (0, 1)


def test_apply_mask_for_the_chat_cli():
    mask = {"system_prompt": "You are a pirate.", "messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "Arr!"}],
            "model": "m1", "settings": {"temperature": 0.3}}
    messages, params = apply_mask(mask, [{"role": "user", "content": "hello"}], {"temperature": 0.9})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert params == {"temperature": 0.9, "model": "m1"}


def test_masks_api_and_use_in_a_run(tiny_client):
    c = tiny_client
    mask = c.post("/masks", body={"name": "support-zh", "system_prompt": "请用中文回答。", "model": "tiny-chat",
                                  "messages": [{"role": "user", "content": "你好"},
                                               {"role": "assistant", "content": "您好！"}],
                                  "settings": {"temperature": 0.0, "max_tokens": 3}}, cast_to=object)
    assert mask["id"].startswith("mask_") and mask["object"] == "mask"
    assert c.get("/masks/support-zh", cast_to=object)["id"] == mask["id"]
    assert [m["name"] for m in c.get("/masks", cast_to=object)["data"]] == ["support-zh"]
    with pytest.raises(openai.ConflictError):
        c.post("/masks", body={"name": "support-zh"}, cast_to=object)
    with pytest.raises(openai.BadRequestError):
        c.post("/masks", body={"name": "x", "settings": {"temperature": 9}}, cast_to=object)
    fid = upload(c, "kb.md", "# 保修\n\n整机保修两年。")
    store = c.vector_stores.create(file_ids=[fid])
    wait_store(c, store.id)
    assistant = c.beta.assistants.create(model="tiny-chat", tools=[{"type": "file_search"}],
                                         tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "保修多久？"}],
                                   metadata={"mask": "support-zh"})
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    # the mask's max_tokens (3) bounded the answer: the run ran out of completion budget
    assert run.status == "incomplete" and run.usage.completion_tokens == 3
    assert run.incomplete_details.reason == "max_completion_tokens"
    with pytest.raises(openai.NotFoundError):
        c.beta.threads.runs.create(thread_id=c.beta.threads.create().id, assistant_id=assistant.id,
                                   extra_body={"mask": "nope"})
    assert c.delete(f"/masks/{mask['id']}", cast_to=object)["deleted"]
