"""EleutherAI's lm-evaluation-harness (``lm_eval``) evaluates a model served by tuneforge through its
OpenAI-compatible backends, offline: a custom task (local YAML + local JSONL, ``--include_path``).

Only ``generate_until`` tasks: ``loglikelihood`` through ``local-completions`` needs prompt logprobs
(``echo`` with ``logprobs`` and ``max_tokens: 0``), which /v1/completions refuses with a 400.
"""

from __future__ import annotations

import json

import openai
import pytest

from tuneforge.testing import live_server

lm_eval = pytest.importorskip("lm_eval", reason="lm_eval not installed (pip install 'tuneforge[dev]' or lm-eval)")
pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
COUNTRIES = ["France", "Japan"]
GEN = {"max_tokens": 12, "temperature": 0, "stop": ["\n"]}


def _task(folder, rows) -> None:
    data = folder / "capitals.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "capitals.yaml").write_text(f"""task: tuneforge_capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: What is the capital of {{{{country}}}}?\\nAnswer: The capital of {{{{country}}}} is"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: {GEN["max_tokens"]}
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")


def _evaluate(backend: str, url: str, folder, **kwargs) -> dict:
    from lm_eval.tasks import TaskManager

    args = f"model={MODEL},base_url={url},tokenizer_backend=None,tokenized_requests=False,num_concurrent=1," \
           "max_retries=1"
    return lm_eval.simple_evaluate(model=backend, model_args=args, tasks=["tuneforge_capitals"],
                                   task_manager=TaskManager(include_path=str(folder)), log_samples=True, **kwargs)


def test_lm_eval_generate_until_through_chat_and_completions(make_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with live_server(make_settings()) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        # (SmolLM2-Instruct ends a bare "Answer:" at once on /v1/completions; this prompt gets it to answer)
        prompts = [f"Question: What is the capital of {c}?\nAnswer: The capital of {c} is" for c in COUNTRIES]
        chat = [client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}], **GEN)
                .choices[0].message.content for p in prompts]
        # the first reference is what tuneforge answers, the second cannot be: exact_match must be 1/2
        _task(tmp_path, [{"country": COUNTRIES[0], "answer": chat[0]}, {"country": COUNTRIES[1], "answer": "?!"}])
        out = _evaluate("local-chat-completions", server.base_url + "/chat/completions", tmp_path,
                        apply_chat_template=True)
        assert out["results"]["tuneforge_capitals"]["exact_match,none"] == pytest.approx(0.5)
        samples = sorted(out["samples"]["tuneforge_capitals"], key=lambda s: s["doc_id"])
        assert [s["resps"][0][0] for s in samples] == chat  # graded what tuneforge answered

        completions = [client.completions.create(model=MODEL, prompt=p, **GEN).choices[0].text for p in prompts]
        assert all(text.strip() for text in completions), completions
        out = _evaluate("local-completions", server.base_url + "/completions", tmp_path)
        assert "exact_match,none" in out["results"]["tuneforge_capitals"]
        samples = sorted(out["samples"]["tuneforge_capitals"], key=lambda s: s["doc_id"])
        assert [s["resps"][0][0] for s in samples] == completions

        # why loglikelihood tasks cannot run: no prompt logprobs on /v1/completions
        with pytest.raises(openai.BadRequestError, match="echo"):
            client.completions.create(model=MODEL, prompt=prompts[0], max_tokens=0, echo=True, logprobs=1)
