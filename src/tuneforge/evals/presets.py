"""Grader shorthands for the command line (``--grader fuzzy``): each compares the sample's text with the
item's reference answer (``{{item.reference}}``). Anything else is a grader given as JSON or ``@file``."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.errors import InvalidRequest
from tuneforge.evals.metrics import METRICS

_CHECKS = {"exact": "eq", "contains": "like", "icontains": "ilike"}
NAMES = (*_CHECKS, "fuzzy", *(m for m in METRICS if m != "fuzzy_match"))


def grader(spec: str, reference: str = "{{item.reference}}") -> dict:
    """``exact``, ``contains``, ``icontains``, ``fuzzy``, ``bleu``, ``rouge_l``… or JSON / ``@path.json``."""
    if spec.startswith("@"):
        spec = Path(spec[1:]).read_text(encoding="utf-8")
    if spec.lstrip().startswith("{"):
        try:
            return json.loads(spec)
        except ValueError as exc:
            raise InvalidRequest(f"--grader is not valid JSON: {exc}") from None
    if spec in _CHECKS:
        return {"type": "string_check", "name": spec, "operation": _CHECKS[spec],
                "input": "{{sample.output_text}}", "reference": reference}
    metric = "fuzzy_match" if spec == "fuzzy" else spec
    if metric in METRICS:
        return {"type": "text_similarity", "name": spec, "evaluation_metric": metric,
                "input": "{{sample.output_text}}", "reference": reference, "pass_threshold": 0.5}
    raise InvalidRequest(f"Unknown grader {spec!r}: use one of {', '.join(NAMES)}, JSON or @file.json.")
