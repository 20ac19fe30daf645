from __future__ import annotations

import json
import re

import pytest

from tuneforge.data import (
    ReadError,
    chunk_sections,
    extract_text,
    iter_jsonl,
    iter_records,
    list_sheets,
    sniff_encoding,
)
from tuneforge.data.documents import document_examples, parse_front_matter
from tuneforge.data.encoding import sniff_bytes


def test_sniff_encodings(fixtures):
    assert sniff_encoding(fixtures / "qa_gbk.csv") == "gb18030"
    assert sniff_encoding(fixtures / "qa_bom.csv") == "utf-8-sig"
    assert sniff_encoding(fixtures / "chatlaw.jsonl") == "utf-8"
    # a multibyte character cut at the sample boundary is still UTF-8
    data = ("你好" * 10).encode("utf-8")[:-1]
    assert sniff_bytes(data) == "utf-8"
    assert sniff_bytes("café crème".encode("latin-1")) not in ("utf-8", "gb18030")


@pytest.mark.parametrize("name", ["qa_gbk.csv", "qa_bom.csv"])
def test_chinese_csv_rows(fixtures, name):
    recs = list(iter_records(fixtures / name))
    assert [r.line for r in recs] == [2, 3]
    assert recs[0].data == {"问题": "什么是合同？", "答案": "合同是当事人之间设立、变更、终止民事法律关系的协议。"}


def test_csv_multiline_cell_and_tsv(fixtures):
    recs = list(iter_records(fixtures / "qa.csv"))
    assert recs[1].data["question"] == "Multi\nline?"
    assert recs[1].line == 4  # physical line where the row ends
    tsv = list(iter_records(fixtures / "qa.tsv"))
    assert tsv[0].data == {"q": "Ping?", "a": "Pong."}


def test_xlsx_sheets(fixtures):
    assert list_sheets(fixtures / "qa.xlsx") == ["faq", "support"]
    first = list(iter_records(fixtures / "qa.xlsx"))
    assert [r.line for r in first] == [2, 3, 5]  # blank row 4 skipped, rows keep their numbers
    assert first[2].data["answer"] == "3"  # integral float → "3"
    by_name = list(iter_records(fixtures / "qa.xlsx", sheet="support"))
    by_index = list(iter_records(fixtures / "qa.xlsx", sheet=1))
    assert by_name[0].data == by_index[0].data == {"ask": "Is it free?", "reply": "Yes, Apache-2.0."}
    with pytest.raises(ReadError, match="no sheet named"):
        list(iter_records(fixtures / "qa.xlsx", sheet="nope"))


def test_json_array_and_object(tmp_path, fixtures):
    recs = list(iter_records(fixtures / "alpaca.json"))
    assert len(recs) == 3 and recs[1].data["system"] == "你是翻译助手。"
    p = tmp_path / "wrapped.json"
    p.write_text(json.dumps({"version": 1, "data": [{"prompt": "a", "completion": "b"}]}))
    assert [r.data for r in iter_records(p)] == [{"prompt": "a", "completion": "b"}]
    jl = tmp_path / "lines.json"  # JSONL saved as .json
    jl.write_text('{"a": 1}\n{"a": 2}\n')
    assert [r.data["a"] for r in iter_records(jl)] == [1, 2]
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ReadError, match="not valid JSON"):
        list(iter_records(bad))


def test_jsonl_errors_have_line_and_column(fixtures, tmp_path):
    recs = list(iter_jsonl(fixtures / "bad_chat.jsonl"))
    assert recs[0].line == 1 and not recs[0].ok and "column" in recs[0].error
    assert recs[0].column == 88
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n')
    got = list(iter_jsonl(p))
    assert [(r.line, r.data) for r in got] == [(1, {"a": 1}), (3, {"a": 2})]
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes('{"q": "你好世界，这是一个测试"}\n'.encode("gbk"))
    assert next(iter_jsonl(gbk)).data == {"q": "你好世界，这是一个测试"}


def test_missing_and_unknown(tmp_path):
    with pytest.raises(ReadError):
        list(iter_records(tmp_path / "nope.jsonl"))
    with pytest.raises(ReadError, match="cannot extract"):
        (tmp_path / "x.bin").write_bytes(b"1")
        extract_text(tmp_path / "x.bin")


def test_extract_text_formats(fixtures):
    docx = extract_text(fixtures / "handbook.docx")
    assert [s.kind for s in docx] == ["heading", "paragraph", "heading", "paragraph", "table_row", "table_row"]
    assert docx[1].heading == "Leave policy" and docx[1].title == "Employee Handbook"
    assert docx[5].text == "Senior | 25"
    pdf = extract_text(fixtures / "policy.pdf")
    assert [(s.page, s.text) for s in pdf] == [(1, "Refund policy. Refunds are issued within 14 days."),
                                              (2, "Shipping takes 3 to 5 business days.")]
    html = extract_text(fixtures / "page.html")
    texts = [s.text for s in html]
    assert "Tuneforge runs locally." in texts and "Free | 0" in texts
    assert not any("var x" in t or "Home | About" in t for t in texts)  # script and nav dropped
    assert html[0].title == "FAQ page"
    txt = extract_text(fixtures / "notes.txt")
    assert len(txt) == 2 and txt[1].text.startswith("Second paragraph")
    xlsx = extract_text(fixtures / "qa.xlsx")
    assert xlsx[1].text == "question: 怎么上传文件？ | answer: 用 tuneforge files upload 命令。"
    jl = extract_text(fixtures / "chatlaw.jsonl")
    assert "ChatLAW: 可以先与房东协商" in jl[0].text
    chat = extract_text(fixtures / "chat_valid.jsonl")
    assert chat[0].text.startswith("system: You are a concise assistant.\nuser: What is the capital of France?")
    csv = extract_text(fixtures / "qa_gbk.csv")
    assert csv[0].text.startswith("问题: 什么是合同？")


def test_markdown_front_matter_code_and_headings(fixtures):
    meta, body = parse_front_matter((fixtures / "blog" / "2024-01-hello.md").read_text())
    assert meta["title"] == "Hello LoRA" and body.lstrip().startswith("Intro")
    dropped = extract_text(fixtures / "blog" / "2024-01-hello.md", keep_code=False)
    kept = extract_text(fixtures / "blog" / "2024-01-hello.md", keep_code=True)
    assert not any("print(" in s.text for s in dropped)
    code = [s for s in kept if s.kind == "code"]
    assert len(code) == 1 and 'print("this code block' in code[0].text and code[0].heading == "Setup"
    folder = extract_text(fixtures / "blog")
    assert {s.title for s in folder} == {"Hello LoRA", "Cleaning data"}  # front matter, then first H1


def test_chunking_size_and_overlap(fixtures):
    secs = extract_text(fixtures / "blog" / "2024-02-data.md")
    chunks = chunk_sections(secs, chunk_size=400, overlap=100)
    assert len(chunks) > 5
    for _, text in chunks:
        assert len(text) <= 400
    for (_, a), (_, b) in zip(chunks, chunks[1:], strict=False):
        first_sentence = re.split(r"(?<=\.)\s+", b)[0]
        assert first_sentence in a  # the next chunk starts with text repeated from this one
    no_overlap = chunk_sections(secs, chunk_size=400, overlap=0)
    assert sum(len(t) for _, t in no_overlap) < sum(len(t) for _, t in chunks)
    all_text = " ".join(t for _, t in no_overlap)
    assert all(f"Sentence number {i} " in all_text for i in range(40))  # nothing lost


def test_document_examples_prompt(fixtures):
    exs = list(document_examples(fixtures / "blog", chunk_size=300, overlap=60, system="You write blog posts."))
    assert exs[0]["messages"][0] == {"role": "system", "content": "You write blog posts."}
    assert exs[0]["messages"][1]["content"] == 'Write a blog post section about "Hello LoRA".'
    assert all(m["messages"][-1]["role"] == "assistant" and m["messages"][-1]["content"] for m in exs)
    custom = list(document_examples(fixtures / "handbook.docx", prompt="{title} / {heading} ({part}/{parts})"))
    assert custom[0]["messages"][0]["content"] == "Employee Handbook / Leave policy (1/1)"
