"""The common chat example, checked in one pass.

Most lines of a chat file are ``{"messages": [...]}`` whose messages are all plain
``{"role": "system" | "user" | "assistant", "content": "<text that is not blank>"}``. For those no
per-message check of :func:`~tuneforge.data.validate.check_example` can fire, only the
conversation-level ones (:func:`plain_problems`); their ``(role, text)`` pairs are the messages
themselves; and their cookbook count is a fixed number of tokens (3 per message, the role's tokens,
3 for the reply priming) plus the tokens of each content (``OpenAICounter.plain_plan``). The
:class:`~tuneforge.data.validate.Checker` takes this path for them when ``fast`` is on; every other
example takes the general one. The two give the same report (tests/data/test_plain_chat.py).
"""

from __future__ import annotations

from typing import Any

PLAIN_ROLES = frozenset(("system", "user", "assistant"))
Problem = tuple[str, str]  # (code, message)


def plain_chat(ex: Any) -> tuple[list[str], list[str]] | None:
    """(roles, contents) of a plain chat example (see the module notes); None for any other value."""
    if type(ex) is not dict or len(ex) != 1:
        return None
    msgs = ex.get("messages")
    if type(msgs) is not list or not msgs:
        return None
    roles: list[str] = []
    contents: list[str] = []
    for m in msgs:
        if type(m) is not dict or len(m) != 2:
            return None
        role = m.get("role")
        content = m.get("content")
        # isspace() is True for the texts strip() empties, but the empty one, and copies nothing
        if (type(role) is not str or role not in PLAIN_ROLES or type(content) is not str or not content
                or content.isspace()):
            return None
        roles.append(role)
        contents.append(content)
    return roles, contents


def plain_problems(roles: list[str]) -> list[Problem]:
    """What ``check_example`` reports for a plain chat with these roles, in the same order (the
    conversation-level checks of ``check_messages``: every assistant message is trained here)."""
    out: list[Problem] = []
    if "assistant" not in roles:
        out.append(("example_missing_assistant_message", "no assistant message"))
    elif roles[-1] != "assistant":
        out.append(("last_message_not_assistant", f"the last message is {roles[-1]!r}, not assistant"))
    if "user" not in roles:
        out.append(("missing_user_message", "no user message"))
    if roles[0] != "system":
        out.append(("missing_system_message", "no system message"))
    return out
