"""Where Responses meets constrained generation: function tools, ``tool_choice`` ``required`` or a named
function, ``text.format: json_schema`` and function-call items in the input.

Responses renders its request as a chat-completions request and runs it through
``tuneforge.serving.chat`` (``prepare`` → the engine), so whatever chat completions can enforce,
Responses gets by passing it on here, in chat-completions shapes (``chat_tools``,
``chat_response_format``; ``items.to_messages`` already renders ``function_call`` /
``function_call_output`` items as assistant ``tool_calls`` and role ``tool`` messages).

Until chat completions accepts ``tools`` and ``response_format: json_schema`` (the grammar engine),
``_refuse_until_constrained`` answers such requests 400 naming the parameter — a tool call is never
imitated. Wiring them: drop that call, and let ``service.Generation`` read the serving layer's typed
events (text deltas, tool-call starts and argument pieces) and emit ``function_call`` items through
``EventBuilder.function_call_*`` (the events the SDK's stream helper accumulates are already built there).
"""

from __future__ import annotations

from tuneforge.errors import InvalidRequest
from tuneforge.responses.items import FUNCTION_ITEMS
from tuneforge.responses.params import ResponseCreateRequest

NOT_YET = "is not supported yet by this server (function calling and structured outputs are coming)."


def chat_tools(tools: list[dict] | None) -> list[dict] | None:
    """Responses function tools (flat: ``name``, ``parameters``…) → chat-completions tools (nested)."""
    out = []
    for i, tool in enumerate(tools or []):
        if tool.get("type") != "function":
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest("Missing required parameter: a function tool needs a 'name'.",
                                 param=f"tools[{i}].name", code="missing_required_parameter")
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object",
                                                                                     "properties": {}}}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out or None


def chat_tool_choice(choice) -> str | dict | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict):  # {"type": "file_search"}: a built-in tool, run before generating
        return None
    return choice


def chat_response_format(fmt: dict) -> dict | None:
    """``text.format`` → chat completions' ``response_format``."""
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("Missing required parameter: 'text.format.schema'.", param="text.format.schema",
                                 code="missing_required_parameter")
        spec = {"name": fmt.get("name") or "response", "schema": fmt["schema"]}
        if fmt.get("strict") is not None:
            spec["strict"] = fmt["strict"]
        if fmt.get("description") is not None:
            spec["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": spec}
    return None


def chat_extras(body: ResponseCreateRequest, items: list[dict]) -> dict:
    """Chat-completions parameters for the constrained parts of ``body``."""
    extras: dict = {}
    fmt = chat_response_format(body.text_format())
    if fmt is not None:
        extras["response_format"] = fmt
    tools = chat_tools(body.tools)
    if tools:
        extras["tools"] = tools
        extras["parallel_tool_calls"] = body.parallel_tool_calls
    choice = chat_tool_choice(body.tool_choice)
    if choice is not None and (tools or choice != "auto"):
        extras["tool_choice"] = choice
    _refuse_until_constrained(extras, items)
    return extras


def _refuse_until_constrained(extras: dict, items: list[dict]) -> None:
    """What the serving layer cannot enforce yet → 400 naming the parameter."""
    if (extras.get("response_format") or {}).get("type") == "json_schema":
        raise InvalidRequest(f"'text.format' of type 'json_schema' {NOT_YET}", param="text.format",
                             code="unsupported_parameter")
    choice = extras.get("tool_choice")
    if isinstance(choice, dict):
        raise InvalidRequest(f"'tool_choice' naming a function {NOT_YET}", param="tool_choice",
                             code="unsupported_parameter")
    if choice == "required":
        raise InvalidRequest(f"'tool_choice': 'required' {NOT_YET}", param="tool_choice",
                             code="unsupported_parameter")
    if extras.get("tools") and choice != "none":  # with "none" the model never calls them: nothing to enforce
        raise InvalidRequest(f"Tools of type 'function' {NOT_YET} Send tool_choice='none' to answer without "
                             "calling them.", param="tools[0]", code="unsupported_parameter")
    extras.pop("tools", None)  # tool_choice "none": the prompt does not need them either
    extras.pop("parallel_tool_calls", None)
    extras.pop("tool_choice", None)
    for i, item in enumerate(items):
        if item.get("type") in FUNCTION_ITEMS:
            raise InvalidRequest(f"Input items of type '{item['type']}' {NOT_YET}", param=f"input[{i}].type",
                                 code="unsupported_parameter")
