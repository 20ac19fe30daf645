"""Graders through the official SDK (``client.fine_tuning.alpha.graders.run/validate``) on a real server."""

from __future__ import annotations

import openai
import pytest
from evals_support import TINY, register_tiny

from tuneforge.testing import live_server


@pytest.fixture
def client(tiny_settings):
    with live_server(tiny_settings) as server:
        yield openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def run(client, grader, sample, item=None):
    return client.fine_tuning.alpha.graders.run(grader=grader, model_sample=sample, item=item or {})


def check(name, op, ref, inp="{{sample.output_text}}"):
    return {"type": "string_check", "name": name, "operation": op, "input": inp, "reference": ref}


def test_string_check_operations_and_templates(client):
    item = {"answer": "Paris", "meta": {"city": "paris"}}
    assert run(client, check("eq", "eq", "{{item.answer}}"), "Paris", item).reward == 1
    assert run(client, check("eq", "eq", "{{item.answer}}"), "paris", item).reward == 0
    assert run(client, check("ne", "ne", "{{item.answer}}"), "Lyon", item).reward == 1
    assert run(client, check("like", "like", "{{item.answer}}"), "It is Paris.", item).reward == 1
    assert run(client, check("like", "like", "{{item.answer}}"), "It is PARIS.", item).reward == 0
    assert run(client, check("ilike", "ilike", "{{item.meta.city}}"), "It is PARIS.", item).reward == 1
    out = run(client, check("json", "eq", "{{item.answer}}", "{{sample.output_json.city}}"), '{"city": "Paris"}', item)
    assert out.reward == 1
    assert out.metadata.name == "json" and out.metadata.type == "string_check"
    assert out.metadata.scores == {"json": 1.0}
    assert not out.metadata.errors.invalid_variable_error


def test_missing_template_variable_is_flagged_not_500(client):
    out = run(client, check("x", "eq", "{{item.nope}}"), "a", {"answer": "a"})
    assert out.reward == 0
    assert out.metadata.errors.invalid_variable_error


@pytest.mark.parametrize("metric", ["fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3",
                                    "rouge_4", "rouge_5", "rouge_l", "cosine"])
def test_text_similarity_metrics(client, metric):
    grader = {"type": "text_similarity", "name": "sim", "evaluation_metric": metric,
              "input": "{{sample.output_text}}", "reference": "{{item.ref}}"}
    ref = "the quick brown fox jumps over the lazy dog near the river bank today"
    same = run(client, grader, ref, {"ref": ref}).reward
    close = run(client, grader, ref.replace("lazy", "sleepy"), {"ref": ref}).reward
    far = run(client, grader, "quarterly revenue rose by twelve percent", {"ref": ref}).reward
    assert same == pytest.approx(1.0, abs=0.02) or metric == "meteor" and same > 0.95
    assert far < close < same + 1e-9
    assert 0 <= far <= 1


def test_multi_grader_formula(client):
    grader = {"type": "multi", "name": "combo", "calculate_output": "0.25 * exact + 0.75 * fuzzy",
              "graders": {"exact": check("exact", "eq", "{{item.a}}"),
                          "fuzzy": {"type": "text_similarity", "name": "fuzzy", "evaluation_metric": "fuzzy_match",
                                    "input": "{{sample.output_text}}", "reference": "{{item.a}}"}}}
    out = run(client, grader, "abcd", {"a": "abcd"})
    assert out.reward == pytest.approx(1.0)
    assert out.sub_rewards == {"exact": 1.0, "fuzzy": 1.0}
    out = run(client, grader, "abcx", {"a": "abcd"})
    assert out.sub_rewards["exact"] == 0
    assert out.reward == pytest.approx(0.75 * 0.75)


def test_python_grader_is_off_by_default_and_says_so(client):
    grader = {"type": "python", "name": "py", "source": "def grade(sample, item):\n    return 1.0\n"}
    out = run(client, grader, "x")
    assert out.reward == 0
    assert out.metadata.errors.python_grader_server_error
    assert out.metadata.errors.python_grader_server_error_type == "disabled"


def test_python_grader_sandboxed_when_enabled(make_settings, tiny_model_dir):

    settings = make_settings(evals_python_grader=True, evals_python_grader_timeout_s=5,
                             evals_python_grader_memory_mb=256)
    register_tiny(settings, tiny_model_dir)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        ok = {"type": "python", "name": "py",
              "source": "def grade(sample, item):\n    return float(sample['output_text'] == item['a'])\n"}
        assert run(client, ok, "yes", {"a": "yes"}).reward == 1.0
        # the grader cannot reach this very server (no network in its namespace)
        host, port = "127.0.0.1", server.port
        net = {"type": "python", "name": "net", "source": (
            "import urllib.request\ndef grade(sample, item):\n"
            f"    urllib.request.urlopen('http://{host}:{port}/health', timeout=2)\n    return 1.0\n")}
        out = run(client, net, "x")
        assert out.reward == 0 and out.metadata.errors.python_grader_runtime_error
        assert "unreachable" in out.metadata.errors.python_grader_runtime_error_details.lower() \
            or "refused" in out.metadata.errors.python_grader_runtime_error_details.lower()
        hog = {"type": "python", "name": "hog", "source": "def grade(sample, item):\n    x = bytearray(2 << 30)\n"
                                                          "    return 1.0\n"}
        out = run(client, hog, "x")
        assert out.metadata.errors.python_grader_runtime_error
        assert "MemoryError" in out.metadata.errors.python_grader_runtime_error_details
        spin = {"type": "python", "name": "spin", "source": "def grade(sample, item):\n    while True:\n        pass\n"}
        out = run(client, spin, "x")
        assert out.metadata.errors.python_grader_server_error
        assert out.metadata.errors.python_grader_server_error_type == "timeout"


def test_label_and_score_model_graders_call_the_judge(client):
    messages = [{"role": "user", "content": "Is '{{sample.output_text}}' the capital of {{item.country}}?"}]
    label = {"type": "label_model", "name": "judge", "model": TINY, "input": messages,
             "labels": ["yes", "no"], "passing_labels": ["yes"]}
    out = run(client, label, "Paris", {"country": "France"})
    # a random tiny model answers nonsense: either it named a label or the parse error is flagged
    assert out.reward in (0.0, 1.0)
    assert out.model_grader_token_usage_per_model[TINY]["prompt_tokens"] > 10
    score = {"type": "score_model", "name": "s", "model": TINY, "input": messages, "range": [0, 10],
             "sampling_params": {"max_completions_tokens": 4, "seed": 1}}
    out = run(client, score, "Paris", {"country": "France"})
    assert 0 <= out.reward <= 10
    assert out.model_grader_token_usage_per_model[TINY]["completion_tokens"] <= 4
    bad_model = dict(label, model="no-such-model")
    out = run(client, bad_model, "Paris", {"country": "France"})
    assert out.metadata.errors.model_grader_server_error


@pytest.mark.parametrize("grader, param", [
    ({"type": "nope", "name": "x"}, "grader.type"),
    ({"type": "string_check", "name": "x", "input": "a", "reference": "b", "operation": "contains"},
     "grader.operation"),
    ({"type": "string_check", "name": "x", "input": "{{ item.a ", "reference": "b", "operation": "eq"},
     "grader.input"),
    ({"type": "text_similarity", "name": "x", "input": "a", "reference": "b", "evaluation_metric": "wer"},
     "grader.evaluation_metric"),
    ({"type": "label_model", "name": "x", "model": "m", "input": [{"role": "user", "content": "hi"}],
      "labels": ["a"], "passing_labels": ["b"]}, "grader.passing_labels"),
    ({"type": "python", "name": "x", "source": "def grade(:"}, "grader.source"),
    ({"type": "multi", "name": "x", "calculate_output": "a +* b", "graders": {"a": check("a", "eq", "x")}},
     "grader.calculate_output"),
    ({"type": "multi", "name": "x", "calculate_output": "a + zz", "graders": {"a": check("a", "eq", "x")}},
     "grader.calculate_output"),
    ({"type": "multi", "name": "x", "calculate_output": "a.__class__", "graders": {"a": check("a", "eq", "x")}},
     "grader.calculate_output"),
])
def test_bad_graders_are_400_with_param(client, grader, param):
    for call in (lambda: client.fine_tuning.alpha.graders.validate(grader=grader),
                 lambda: run(client, grader, "x")):
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert info.value.status_code == 400
        assert info.value.body["param"] == param, info.value.body


def test_validate_echoes_a_good_grader(client):
    grader = check("exact", "eq", "{{item.a}}")
    out = client.fine_tuning.alpha.graders.validate(grader=grader)
    assert out.grader.type == "string_check" and out.grader.name == "exact"
