"""Where Responses meets constrained generation: function tools, ``tool_choice`` other than none/auto
without tools, and ``text.format: json_schema``.

Responses renders its request as a chat-completions request and runs it through
``tuneforge.serving.chat`` (``prepare`` → the engine), so everything chat completions can enforce,
Responses gets by passing it on here. Until chat completions accepts ``tools`` and
``response_format: json_schema`` (the grammar engine), such requests answer 400 naming the parameter —
a tool call is never imitated.
"""

from __future__ import annotations

from tuneforge.errors import InvalidRequest
from tuneforge.responses.items import FUNCTION_ITEMS
from tuneforge.responses.params import ResponseCreateRequest

NOT_YET = "is not supported yet by this server (function calling and structured outputs are coming)."


def chat_extras(body: ResponseCreateRequest, items: list[dict]) -> dict:
    """Chat-completions parameters for the constrained parts of ``body`` (``response_format``, ``tools``,
    ``tool_choice``, ``parallel_tool_calls``). Raises 400 for what the serving layer cannot enforce yet."""
    extras: dict = {}
    fmt = body.text_format()
    if fmt["type"] == "json_object":
        extras["response_format"] = {"type": "json_object"}
    elif fmt["type"] == "json_schema":
        raise InvalidRequest(f"'text.format' of type 'json_schema' {NOT_YET}", param="text.format",
                             code="unsupported_parameter")
    functions = [i for i, t in enumerate(body.tools or []) if t.get("type") == "function"]
    choice = body.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        raise InvalidRequest(f"'tool_choice' naming a function {NOT_YET}", param="tool_choice",
                             code="unsupported_parameter")
    if choice == "required":
        raise InvalidRequest(f"'tool_choice': 'required' {NOT_YET}", param="tool_choice",
                             code="unsupported_parameter")
    if functions and choice != "none":  # with "none" the model never calls them: nothing to enforce
        raise InvalidRequest(f"Tools of type 'function' {NOT_YET} Send tool_choice='none' to answer without "
                             "calling them.", param=f"tools[{functions[0]}]", code="unsupported_parameter")
    for i, item in enumerate(items):
        if item.get("type") in FUNCTION_ITEMS:
            raise InvalidRequest(f"Input items of type '{item['type']}' {NOT_YET}", param=f"input[{i}].type",
                                 code="unsupported_parameter")
    return extras
