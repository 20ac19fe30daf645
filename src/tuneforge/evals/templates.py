"""OpenAI's grader templates: ``{{item.x}}``, ``{{sample.output_text}}``, ``{{sample.output_json.x}}``.

Rendered with Jinja2's sandboxed environment (the template comes from the API caller): attribute access
reaches dict keys, nothing reaches Python internals, and an unknown name is an error that says which
one, instead of silently rendering an empty string. Dicts and lists render as JSON, as OpenAI does.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from tuneforge.errors import InvalidRequest


def _finalize(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


_ENV = SandboxedEnvironment(undefined=StrictUndefined, finalize=_finalize, autoescape=False,
                            keep_trailing_newline=True)


class TemplateFailure(Exception):
    """A template that parses but cannot be filled for one item (a missing field)."""


@lru_cache(maxsize=512)
def _compile(source: str):
    return _ENV.from_string(source)


def check(source: str, param: str) -> None:
    """Syntax check at validation time (400 with the offending parameter)."""
    try:
        _compile(source)
    except TemplateError as exc:
        raise InvalidRequest(f"Invalid template in '{param}': {exc}", param=param) from None


def render(source: str, namespace: dict) -> str:
    if "{" not in source:  # the common case: a literal
        return source
    try:
        return _compile(source).render(**namespace)
    except UndefinedError as exc:
        raise TemplateFailure(f"template {source!r}: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"template {source!r}: {exc}") from None


def lookup(path: str, namespace: dict) -> Any:
    """The value at a dotted reference such as ``item.messages`` (an ``item_reference``), unrendered."""
    expr = path.strip()
    if expr.startswith("{{") and expr.endswith("}}"):
        expr = expr[2:-2].strip()
    try:
        return _ENV.compile_expression(expr, undefined_to_none=False)(**namespace)
    except UndefinedError as exc:
        raise TemplateFailure(f"reference {path!r}: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailure(f"reference {path!r}: {exc}") from None


def sample_namespace(output_text: str, extra: dict | None = None) -> dict:
    """The ``sample`` namespace: ``output_text`` and, when the text is JSON, ``output_json``."""
    sample: dict[str, Any] = dict(extra or {})
    sample["output_text"] = output_text
    try:
        sample["output_json"] = json.loads(output_text)
    except (ValueError, TypeError):
        sample["output_json"] = None
    return sample
