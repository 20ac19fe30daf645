"""Where Responses meets constrained generation: function tools, ``tool_choice`` (``none`` / ``auto`` /
``required`` / a named function), ``text.format`` (``json_object`` / ``json_schema``) and function-call
items in the input.

Responses renders its request as a chat-completions request and runs it through
``tuneforge.serving.chat`` (``prepare`` → the engine, with the grammar constraint of
``serving.structured``), so Responses enforces exactly what chat completions enforces: the request's
constrained parts are passed on here in chat-completions shapes (``chat_tools``, ``chat_response_format``;
``items.to_messages`` renders ``function_call`` / ``function_call_output`` items as assistant
``tool_calls`` and role ``tool`` messages), and ``service._Output`` turns the typed events that come back
into ``message`` and ``function_call`` output items.
"""

from __future__ import annotations

from tuneforge.errors import InvalidRequest
from tuneforge.responses.params import ResponseCreateRequest


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


def chat_extras(body: ResponseCreateRequest) -> dict:
    """Chat-completions parameters for the constrained parts of ``body``."""
    file_search = any(t.get("type") == "file_search" for t in body.tools or [])
    extras: dict = {}
    fmt = chat_response_format(body.text_format())
    if fmt is not None:
        extras["response_format"] = fmt
    tools = chat_tools(body.tools)
    if tools:
        extras["tools"] = tools
        extras["parallel_tool_calls"] = body.parallel_tool_calls
    choice = chat_tool_choice(body.tool_choice)
    if choice is not None and tools:
        extras["tool_choice"] = choice
    elif choice == "required" and not file_search:
        raise InvalidRequest("'tool_choice': 'required' needs at least one tool in 'tools'.", param="tool_choice")
    elif isinstance(body.tool_choice, dict) and body.tool_choice.get("type") == "function":
        raise InvalidRequest("'tool_choice' names a function that is not in 'tools'.", param="tool_choice")
    return extras


def response_param(param: str | None) -> str | None:
    """A chat-completions parameter name in an error → the Responses name the client sent."""
    if not param:
        return param
    for chat_name, name in (("messages", "input"), ("max_tokens", "max_output_tokens"),
                            ("response_format.json_schema.schema", "text.format.schema"),
                            ("response_format.json_schema", "text.format"), ("response_format", "text.format")):
        if param == chat_name or param.startswith(chat_name + "."):
            return name + param[len(chat_name):]
    if param.startswith("tools.["):  # 'tools.[0].function.name' → 'tools[0].name'
        return "tools" + param[len("tools."):].replace(".function", "", 1)
    return param
