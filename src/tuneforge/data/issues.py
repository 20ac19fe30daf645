"""Check codes, issues and the :class:`Report` returned by :func:`tuneforge.data.check_file`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"
MAX_LINES = 1000   # line numbers kept per code (the count is always exact)
MAX_SAMPLES = 5    # (line, message) samples kept per code

# code: (severity, meaning, fix hint)
CODES: dict[str, tuple[str, str, str]] = {
    # input
    "unreadable_file": (ERROR, "The file cannot be read (missing, wrong extension, not the claimed format).",
                        "Check the path; data files must be .jsonl (convert others with `tuneforge data convert`)."),
    "empty_file": (ERROR, "The file holds no examples.", "Add examples, one JSON object per line."),
    "invalid_json": (ERROR, "The line is not valid JSON.", "Fix the JSON at the given column, or drop broken lines with `tuneforge data fix`."),
    "json_too_deep": (ERROR, "The line nests arrays/objects too deeply to be a training example.",
                      "Flatten the value, or drop the line with `tuneforge data fix`."),
    # cookbook categories
    "data_type": (ERROR, "The line is not a JSON object.", 'Each line must be an object like {"messages": [...]}.'),
    "missing_messages_list": (ERROR, "The example has no non-empty `messages` list.",
                              "Give each line a `messages` list; other shapes convert with `tuneforge data convert`."),
    "message_data_type": (ERROR, "A message is not a JSON object.", 'Messages are objects like {"role": "user", "content": "..."}.'),
    "message_missing_key": (ERROR, "A message lacks `role` or `content`.", "Add the missing key (`content` may be null only with `tool_calls`)."),
    "message_unrecognized_key": (ERROR, "A message has a key OpenAI does not accept.",
                                 "Allowed: role, content, name, weight, tool_calls, tool_call_id, function_call."),
    "unrecognized_role": (ERROR, "A message role is not system, user, assistant, tool or function.",
                          "Rename the role (e.g. human → user, gpt → assistant, developer → system)."),
    "missing_content": (ERROR, "A message's content is missing, null or not text.",
                        "Give it string content (null is allowed only on an assistant message with `tool_calls`)."),
    "example_missing_assistant_message": (ERROR, "The example has no assistant message.", "Add the assistant answer to train on."),
    # beyond the cookbook
    "example_unrecognized_key": (WARNING, "The example has a top-level key other than messages/tools/parallel_tool_calls/functions.",
                                 "Remove it; OpenAI rejects unknown keys and local training ignores them."),
    "invalid_content": (ERROR, "A content-parts list has a part that is not text (or an image in a user message).",
                        "Use text parts; audio and file inputs are not supported for fine-tuning."),
    "empty_content": (ERROR, "A message's content is empty or only whitespace.", "Write the text, or drop the example."),
    "invalid_weight": (ERROR, "`weight` is not 0 or 1, or is set on a non-assistant message.",
                       "Use weight 0 (don't train) or 1 (train), on assistant messages only."),
    "no_trained_tokens": (ERROR, "Every assistant message has weight 0: nothing would be trained.",
                          "Set weight 1 (or drop weight) on at least one assistant message."),
    "invalid_tool_call": (ERROR, "A tool call or tool message is malformed (id, type, function name, JSON arguments, tool_call_id).",
                          'tool_calls: [{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}]; tool messages need a matching tool_call_id.'),
    "invalid_tools": (ERROR, "The example's `tools` is not a list of function tools.",
                      'tools: [{"type": "function", "function": {"name", "parameters"}}].'),
    "last_message_not_assistant": (WARNING, "Messages after the last assistant message are never trained.",
                                   "End each example with the assistant message to learn."),
    "missing_user_message": (WARNING, "The example has no user message.", "Add the user turn the assistant answers."),
    "missing_system_message": (INFO, "The example has no system message.", "Optional; add one with `tuneforge data convert --system TEXT`."),
    "format_mismatch": (ERROR, "The example's format does not match the job method (chat for supervised, preference for DPO).",
                        "Use a chat file for supervised jobs and a preference file for method dpo."),
    "duplicate_example": (WARNING, "The example is an exact duplicate of an earlier one.", "Remove duplicates with `tuneforge data fix --dedupe`."),
    "near_duplicate_example": (WARNING, "The example equals an earlier one once whitespace is normalised.",
                               "Remove them with `tuneforge data fix --dedupe`."),
    "too_many_tokens": (WARNING, "The example is longer than the model's limit and would be truncated.",
                        "Shorten it, or `tuneforge data fix --max-tokens N --long drop|truncate`."),
    "chat_template_error": (ERROR, "The tokenizer's chat template cannot render the example.", "Fix the messages (roles, order) for this model."),
    "special_token": (WARNING, "Content contains a special token of the tokenizer (e.g. <|im_end|>, <|endoftext|>).",
                      "Remove it; special tokens in data break the chat format (OpenAI rejects them)."),
    "long_answer": (WARNING, "An assistant answer is very long.", "Check it is intended; very long answers dominate the loss."),
    "uppercase_heavy": (INFO, "More than a third of the letters are uppercase.", "Consider lowercasing (prepare_data's advice)."),
    "too_few_examples": (ERROR, "Fewer than 10 examples (OpenAI's minimum).", "Add examples; 50-100 good ones usually show gains."),
    "few_examples": (INFO, "Fewer than 100 examples.", "Quality improves roughly with every doubling of good examples."),
    "identical_answers": (ERROR, "All assistant answers are identical.", "The model would learn one answer; vary the data."),
    "common_prompt_prefix": (INFO, "Every first user message starts with the same long text.",
                             "Fine-tuning doesn't need repeated instructions; move it to the system message or drop it."),
    "common_answer_prefix": (INFO, "Every final assistant answer starts with the same text.", "Strip the shared prefix unless it is wanted."),
    "mixed_languages": (INFO, "Examples are written in several scripts/languages.", "Fine if intended; the model will mix them too."),
    # preference (DPO)
    "dpo_missing_input": (ERROR, "The preference example has no `input.messages`.", 'Use {"input": {"messages": [...]}, ...}.'),
    "dpo_missing_output": (ERROR, "`preferred_output` or `non_preferred_output` is missing or empty.", "Give both outputs."),
    "dpo_invalid_output": (ERROR, "An output is not exactly one assistant message with text content.",
                           'Use [{"role": "assistant", "content": "..."}].'),
    "dpo_identical_outputs": (WARNING, "The preferred and non-preferred outputs are identical.", "Give a contrasting pair or drop it."),
    "dpo_input_ends_with_assistant": (WARNING, "The input ends with an assistant message.", "The prompt should end with the user turn."),
    "dpo_legacy_keys": (INFO, "Uses the older preferred_completion / non_preferred_completion names.",
                        "Accepted; `tuneforge data convert` renames them to *_output."),
}

_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass
class Issue:
    code: str
    severity: str
    meaning: str
    hint: str
    count: int = 0
    lines: list[int] = field(default_factory=list)
    samples: list[tuple[int | None, str]] = field(default_factory=list)

    def add(self, line: int | None, message: str | None) -> None:
        self.count += 1
        if line is not None and len(self.lines) < MAX_LINES:
            self.lines.append(line)
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append((line, message or self.meaning))

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "count": self.count, "meaning": self.meaning,
                "hint": self.hint, "lines": self.lines, "lines_truncated": self.count > len(self.lines) and bool(self.lines),
                "samples": [{"line": ln, "message": m} for ln, m in self.samples]}


@dataclass
class Report:
    """The outcome of checking one file. ``ok`` means no errors (warnings and info allowed)."""

    path: str
    method: str = "supervised"
    detected: str | None = None
    n_lines: int = 0
    n_examples: int = 0
    n_valid: int = 0
    issues: dict[str, Issue] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None
    tokenizer: str | None = None
    max_tokens: int | None = None
    unusable: bool = False
    per_example: list[dict[str, int]] | None = None

    def add(self, code: str, line: int | None = None, message: str | None = None) -> None:
        sev, meaning, hint = CODES[code]
        iss = self.issues.get(code)
        if iss is None:
            iss = self.issues[code] = Issue(code, sev, meaning, hint)
        iss.add(line, message)

    def relabel(self, shown: str) -> Report:
        """Name the file ``shown`` (e.g. the upload's filename) instead of its storage path, everywhere:
        a server's reports must not reveal where it keeps blobs."""
        actual, self.path = self.path, shown
        for iss in self.issues.values():
            iss.samples = [(ln, m.replace(actual, shown) if m else m) for ln, m in iss.samples]
        return self

    def sorted_issues(self) -> list[Issue]:
        return sorted(self.issues.values(), key=lambda i: (_ORDER[i.severity], min(i.lines, default=0)))

    def count(self, severity: str) -> int:
        return sum(i.count for i in self.issues.values() if i.severity == severity)

    @property
    def errors(self) -> int:
        return self.count(ERROR)

    @property
    def warnings(self) -> int:
        return self.count(WARNING)

    @property
    def ok(self) -> bool:
        return not self.unusable and self.errors == 0

    @property
    def exit_code(self) -> int:
        """0 clean (warnings allowed), 1 errors, 2 unusable input."""
        return 2 if self.unusable else (1 if self.errors else 0)

    def lines_with(self, severity: str = ERROR) -> set[int]:
        return {ln for i in self.issues.values() if i.severity == severity for ln in i.lines}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "object": "tuneforge.data.report", "path": self.path, "method": self.method, "ok": self.ok,
            "exit_code": self.exit_code, "unusable": self.unusable, "detected": self.detected,
            "lines": self.n_lines, "examples": self.n_examples, "valid_examples": self.n_valid,
            "errors": self.errors, "warnings": self.warnings, "infos": self.count(INFO),
            "tokenizer": self.tokenizer, "max_tokens": self.max_tokens,
            "issues": [i.to_dict() for i in self.sorted_issues()],
            "stats": self.stats, "estimate": self.estimate,
        }
        if self.per_example is not None:
            d["per_example"] = self.per_example
        return d

    def summary_message(self, limit: int = 5, *, file_label: str = "training file") -> str:
        """One OpenAI-style paragraph naming the first problems and their lines (a failed job's
        ``error.message``)."""
        if self.ok:
            return f"The {file_label} passed validation: {self.n_valid} examples, no errors."
        items: list[tuple[bool, int, str]] = []
        for iss in self.issues.values():
            if iss.severity != ERROR:
                continue
            for ln, msg in iss.samples:
                text = f"Line {ln}: {msg}" if ln is not None else msg[:1].upper() + msg[1:]
                items.append((ln is None, ln or 0, text))
        items.sort(key=lambda x: (x[0], x[1]))
        shown = [m if m.endswith(".") else m + "." for _, _, m in items[:limit]]
        more = self.errors - len(shown)
        tail = f" ({more} more error{'s' if more != 1 else ''}; run `tuneforge data check` for the full list.)" if more > 0 else ""
        return f"The job failed due to a file format error in the {file_label}. " + " ".join(shown) + tail
