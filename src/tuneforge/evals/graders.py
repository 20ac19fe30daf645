"""OpenAI's graders, one implementation for ``/v1/fine_tuning/alpha/graders/*`` and eval testing criteria.

``validate(grader)`` checks a grader definition (400 with the offending ``param``); ``grade(...)`` scores one
model sample against one item and never raises for a bad sample: problems land in the result's
``errors`` flags, shaped like OpenAI's ``metadata.errors``. Model graders (``score_model``, ``label_model``)
ask any model this server can serve (local through the engine, upstream through the gateway).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneforge.errors import InvalidRequest, TuneforgeError
from tuneforge.evals import metrics, templates
from tuneforge.evals.sandbox import run_python_grader

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

TYPES = ("string_check", "text_similarity", "score_model", "label_model", "python", "multi")
_OPERATIONS = ("eq", "ne", "like", "ilike")
_ROLES = ("system", "developer", "user", "assistant")
_FORMULA_FUNCTIONS = {"min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil,
                      "exp": math.exp, "sqrt": math.sqrt, "log": math.log}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def error_flags() -> dict:
    return {"formula_parse_error": False, "invalid_variable_error": False, "model_grader_parse_error": False,
            "model_grader_refusal_error": False, "model_grader_server_error": False,
            "model_grader_server_error_details": None, "other_error": False, "python_grader_runtime_error": False,
            "python_grader_runtime_error_details": None, "python_grader_server_error": False,
            "python_grader_server_error_type": None, "sample_parse_error": False,
            "truncated_observation_error": False, "unresponsive_reward_error": False}


@dataclass
class Grade:
    score: float
    passed: bool
    errors: dict = field(default_factory=error_flags)
    sub_rewards: dict = field(default_factory=dict)
    usage: dict = field(default_factory=dict)  # judge model -> token counts
    detail: dict = field(default_factory=dict)  # e.g. the label a label_model chose

    @property
    def errored(self) -> bool:
        return any(v is True for v in self.errors.values())


# ---------------------------------------------------------------------------------------- validation


def _need_str(grader: dict, key: str, param: str) -> str:
    value = grader.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"Missing or invalid '{param}.{key}': expected a string.", param=f"{param}.{key}")
    return value


def _check_messages(grader: dict, param: str) -> None:
    messages = grader.get("input")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"'{param}.input' must be a non-empty list of messages.", param=f"{param}.input")
    for i, message in enumerate(messages):
        where = f"{param}.input[{i}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidRequest(f"'{where}' must be a message with a role in {list(_ROLES)}.", param=where)
        templates.check(_content_text(message.get("content"), where), f"{where}.content")


def _content_text(content: Any, where: str) -> str:
    """A message's content as one template string (text parts joined; images are not supported)."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        else:
            raise InvalidRequest(f"'{where}.content': only text content is supported by this server.",
                                 param=f"{where}.content", code="unsupported_parameter")
    return "\n".join(texts)


def validate(grader: Any, param: str = "grader", *, nested: bool = False) -> dict:
    """The grader, checked; raises ``InvalidRequest`` naming the bad field."""
    if not isinstance(grader, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param)
    kind = grader.get("type")
    if kind not in TYPES:
        raise InvalidRequest(f"Invalid '{param}.type': {kind!r}; expected one of {list(TYPES)}.",
                             param=f"{param}.type")
    _need_str(grader, "name", param)
    if kind in ("string_check", "text_similarity"):
        for key in ("input", "reference"):
            templates.check(_need_str(grader, key, param), f"{param}.{key}")
    if kind == "string_check" and grader.get("operation") not in _OPERATIONS:
        raise InvalidRequest(f"Invalid '{param}.operation': expected one of {list(_OPERATIONS)}.",
                             param=f"{param}.operation")
    if kind == "text_similarity" and grader.get("evaluation_metric") not in metrics.METRICS:
        raise InvalidRequest(f"Invalid '{param}.evaluation_metric': expected one of {list(metrics.METRICS)}.",
                             param=f"{param}.evaluation_metric")
    if kind in ("score_model", "label_model"):
        _need_str(grader, "model", param)
        _check_messages(grader, param)
    if kind == "score_model":
        lo, hi = _range(grader, param)
        if lo >= hi:
            raise InvalidRequest(f"Invalid '{param}.range': the minimum must be below the maximum.",
                                 param=f"{param}.range")
    if kind == "label_model":
        labels, passing = grader.get("labels"), grader.get("passing_labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise InvalidRequest(f"'{param}.labels' must be a non-empty list of strings.", param=f"{param}.labels")
        if not isinstance(passing, list) or not passing or not set(passing) <= set(labels):
            raise InvalidRequest(f"'{param}.passing_labels' must be a non-empty subset of 'labels'.",
                                 param=f"{param}.passing_labels")
    if kind == "python":
        source = _need_str(grader, "source", param)
        try:
            compile(source, "<grader>", "exec")
        except SyntaxError as exc:
            raise InvalidRequest(f"Invalid '{param}.source': {exc.msg} (line {exc.lineno}).",
                                 param=f"{param}.source") from None
        if not re.search(r"^def grade\s*\(", source, re.M):
            raise InvalidRequest(f"'{param}.source' must define grade(sample, item).", param=f"{param}.source")
    if kind == "multi":
        if nested:
            raise InvalidRequest(f"'{param}': multi graders cannot be nested.", param=f"{param}.type")
        subs = sub_graders(grader)
        if not subs:
            raise InvalidRequest(f"'{param}.graders' must map names to graders.", param=f"{param}.graders")
        for name, sub in subs.items():
            validate(sub, f"{param}.graders.{name}", nested=True)
        formula = _need_str(grader, "calculate_output", param)
        _formula(formula, {name: 0.5 for name in subs}, param)
    threshold = grader.get("pass_threshold")
    if threshold is not None and not isinstance(threshold, int | float):
        raise InvalidRequest(f"Invalid '{param}.pass_threshold': expected a number.", param=f"{param}.pass_threshold")
    return grader


def sub_graders(grader: dict) -> dict[str, dict]:
    """OpenAI sends ``graders`` as a map name -> grader; a single grader is accepted under its own name."""
    subs = grader.get("graders")
    if isinstance(subs, dict) and "type" in subs:
        return {str(subs.get("name") or "grader"): subs}
    return dict(subs) if isinstance(subs, dict) else {}


def _range(grader: dict, param: str) -> tuple[float, float]:
    value = grader.get("range") or [0, 1]
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value)):
        raise InvalidRequest(f"Invalid '{param}.range': expected [min, max].", param=f"{param}.range")
    return float(value[0]), float(value[1])


def _formula(formula: str, names: dict[str, float], param: str) -> float:
    """``calculate_output`` through simpleeval: arithmetic and a few math functions, nothing else."""
    from simpleeval import InvalidExpression, SimpleEval

    evaluator = SimpleEval(functions=_FORMULA_FUNCTIONS, names=names)
    try:
        return float(evaluator.eval(formula))
    except InvalidExpression as exc:
        raise InvalidRequest(f"Invalid '{param}.calculate_output': {exc}", param=f"{param}.calculate_output") from None
    except (SyntaxError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise InvalidRequest(f"Invalid '{param}.calculate_output': {exc}", param=f"{param}.calculate_output") from None


def pass_threshold(grader: dict) -> float:
    """Scores at or above this pass: the grader's own ``pass_threshold``, else the middle of its range
    (score_model) or 0.5; a string_check / label_model score is 1 or 0."""
    if isinstance(grader.get("pass_threshold"), int | float):
        return float(grader["pass_threshold"])
    if grader.get("type") == "score_model":
        lo, hi = _range(grader, "grader")
        return (lo + hi) / 2
    return 0.5


# ---------------------------------------------------------------------------------------- grading


def namespace(item: Any, sample: dict) -> dict:
    return {"item": item if item is not None else {}, "sample": sample}


async def grade(rt: Runtime, project_id: str, grader: dict, item: Any, sample: dict) -> Grade:
    """``sample`` is the namespace from ``templates.sample_namespace`` (``output_text``, ``output_json``)."""
    ns = namespace(item, sample)
    kind = grader["type"]
    try:
        if kind == "multi":
            return await _multi(rt, project_id, grader, item, sample)
        if kind == "string_check":
            score = _string_check(grader, ns)
        elif kind == "text_similarity":
            score = await _similarity(rt, grader, ns)
        elif kind == "python":
            return await _python(rt, grader, item, sample)
        else:
            return await _model(rt, project_id, grader, ns)
    except templates.TemplateFailure as exc:
        result = Grade(0.0, False)
        result.errors["invalid_variable_error"] = True
        result.errors["other_error"] = True
        result.detail["error"] = str(exc)
        return result
    return Grade(score, score >= pass_threshold(grader))


def _string_check(grader: dict, ns: dict) -> float:
    text, ref = templates.render(grader["input"], ns), templates.render(grader["reference"], ns)
    op = grader["operation"]
    ok = {"eq": text == ref, "ne": text != ref, "like": ref in text, "ilike": ref.lower() in text.lower()}[op]
    return 1.0 if ok else 0.0


async def _similarity(rt: Runtime, grader: dict, ns: dict) -> float:
    text, ref = templates.render(grader["input"], ns), templates.render(grader["reference"], ns)
    metric = grader["evaluation_metric"]
    if metric == "cosine":
        embedder = rt.embedder
        return await asyncio.to_thread(metrics.cosine, embedder.embed_passages, text, ref)
    return await asyncio.to_thread(metrics.lexical(metric), text, ref)


async def _python(rt: Runtime, grader: dict, item: Any, sample: dict) -> Grade:
    result = Grade(0.0, False)
    if not rt.settings.evals_python_grader:
        result.errors["python_grader_server_error"] = True
        result.errors["python_grader_server_error_type"] = "disabled"
        result.detail["error"] = ("python graders are disabled on this server; the operator can enable them "
                                  "with TUNEFORGE_EVALS_PYTHON_GRADER=true (they run sandboxed)")
        return result
    out = await asyncio.to_thread(run_python_grader, grader["source"], sample, item,
                                  timeout_s=rt.settings.evals_python_grader_timeout_s,
                                  memory_mb=rt.settings.evals_python_grader_memory_mb)
    if out.error is not None:
        result.errors["python_grader_runtime_error"] = True
        result.errors["python_grader_runtime_error_details"] = out.error
    elif out.server_error is not None:
        result.errors["python_grader_server_error"] = True
        result.errors["python_grader_server_error_type"] = out.server_error.split(":", 1)[0]
        result.detail["error"] = out.server_error
    else:
        result.score = out.score
        result.passed = out.score >= pass_threshold(grader)
    return result


def _judge_messages(grader: dict, ns: dict) -> list[dict]:
    messages = [{"role": m["role"], "content": templates.render(_content_text(m.get("content"), "input"), ns)}
                for m in grader["input"]]
    if grader["type"] == "score_model":
        lo, hi = _range(grader, "grader")
        rule = f"Reply with only a number from {lo:g} to {hi:g} (the score), nothing else."
    else:
        rule = "Reply with exactly one of these labels and nothing else: " + ", ".join(grader["labels"]) + "."
    messages.append({"role": "system" if messages[0]["role"] != "system" else "user", "content": rule})
    return messages


async def _model(rt: Runtime, project_id: str, grader: dict, ns: dict) -> Grade:
    from tuneforge.serving.answer import chat_once
    from tuneforge.serving.requests import ChatCompletionRequest

    result = Grade(0.0, False)
    params = grader.get("sampling_params") or {}
    request = ChatCompletionRequest(
        model=grader["model"], messages=_judge_messages(grader, ns),
        temperature=params.get("temperature", 0.0), top_p=params.get("top_p"), seed=params.get("seed"),
        max_completion_tokens=params.get("max_completions_tokens") or params.get("max_completion_tokens") or 16)
    try:
        answer = await chat_once(rt, project_id, request)
    except TuneforgeError as exc:
        result.errors["model_grader_server_error"] = True
        result.errors["model_grader_server_error_details"] = exc.message
        return result
    usage = answer.get("usage") or {}
    counts = {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    result.usage = {grader["model"]: {**counts, "invocation_count": 1}}
    text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    result.detail["judge_output"] = text
    if grader["type"] == "score_model":
        lo, hi = _range(grader, "grader")
        found = _NUMBER.search(text)
        if found is None:
            result.errors["model_grader_parse_error"] = True
            return result
        result.score = min(hi, max(lo, float(found.group())))
        result.passed = result.score >= pass_threshold(grader)
        return result
    label = _pick_label(text, grader["labels"])
    if label is None:
        result.errors["model_grader_parse_error"] = True
        return result
    result.detail["label"] = label
    result.passed = label in grader["passing_labels"]
    result.score = 1.0 if result.passed else 0.0
    return result


def _pick_label(text: str, labels: list[str]) -> str | None:
    """The label the judge answered: an exact (case-insensitive) answer, else the first label it names."""
    clean = text.strip().strip(".\"'`*").strip().lower()
    for label in labels:
        if clean == label.lower():
            return label
    positions = [(m.start(), label) for label in labels
                 if (m := re.search(rf"\b{re.escape(label.lower())}\b", text.lower()))]
    return min(positions)[1] if positions else None


async def _multi(rt: Runtime, project_id: str, grader: dict, item: Any, sample: dict) -> Grade:
    subs = sub_graders(grader)
    results = await asyncio.gather(*(grade(rt, project_id, sub, item, sample) for sub in subs.values()))
    out = Grade(0.0, False)
    for (name, _), sub in zip(subs.items(), results, strict=True):
        out.sub_rewards[name] = sub.score
        for model, counts in sub.usage.items():
            merged = out.usage.setdefault(model, {})
            for key, value in counts.items():
                merged[key] = merged.get(key, 0) + value
        for key, value in sub.errors.items():
            if value and not out.errors.get(key):
                out.errors[key] = value
    try:
        out.score = _formula(grader["calculate_output"], dict(out.sub_rewards), "grader")
    except InvalidRequest:
        out.errors["formula_parse_error"] = True
        return out
    out.passed = out.score >= pass_threshold(grader)
    return out


async def run_once(rt: Runtime, project_id: str, grader: dict, model_sample: str, item: Any) -> dict:
    """``POST /v1/fine_tuning/alpha/graders/run``: OpenAI's response shape."""
    validate(grader)
    started = time.perf_counter()
    sample = templates.sample_namespace(model_sample)
    result = await grade(rt, project_id, grader, item, sample)
    scores = dict(result.sub_rewards) if grader["type"] == "multi" else {grader["name"]: result.score}
    tokens = sum(c.get("total_tokens", 0) for c in result.usage.values())
    return {
        "reward": result.score,
        "sub_rewards": result.sub_rewards,
        "model_grader_token_usage_per_model": result.usage,
        "metadata": {"name": grader["name"], "type": grader["type"], "errors": result.errors,
                     "execution_time": round(time.perf_counter() - started, 4), "scores": scores,
                     "token_usage": tokens or None, "sampled_model_name": None},
    }
