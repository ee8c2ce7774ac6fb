"""§1.11 message formatting and the §1.9 tool rewrite (``docs/mapping-rules.md``).

PostHog renders ``$ai_input`` / ``$ai_output_choices`` as chat messages whose
content is a list of typed parts; Mastra hands over AI-SDK messages, plain
strings or ``{text, toolCalls}`` results.  These functions bridge the two
exactly as ``@mastra/posthog`` 1.3.11 does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..values import JsonValue, is_truthy, js_string, json_safe, json_text


def format_messages(data: Any, role: str) -> list[JsonValue]:
    """format(data, role) of §1.11: the first matching rule wins."""
    if isinstance(data, Mapping) and _is_message_list(data.get("messages")):
        return [_normalise_message(message) for message in data["messages"]]
    if _is_message_list(data):
        return [_normalise_message(message) for message in data]
    if isinstance(data, str):
        return [_text_message(role, data)]
    if isinstance(data, Mapping):
        tool_calls = data.get("toolCalls")
        if isinstance(tool_calls, list) and tool_calls:
            return [{"role": "assistant", "content": _tool_call_parts(data, tool_calls)}]
        if isinstance(data.get("text"), str):
            return [_text_message(role, data["text"])]
    return [_text_message(role, json_text(data))]


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, Mapping) and "role" in item and "content" in item for item in value
    )


def _normalise_message(message: Mapping[str, Any]) -> JsonValue:
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {"role": json_safe(message["role"]), "content": json_safe(content)}


def _text_message(role: str, text: str) -> JsonValue:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def _tool_call_parts(data: Mapping[str, Any], tool_calls: list[Any]) -> list[JsonValue]:
    parts: list[JsonValue] = []
    if is_truthy(data.get("text")):
        parts.append({"type": "text", "text": json_safe(data["text"])})
    for call in tool_calls:
        call_map: Mapping[str, Any] = call if isinstance(call, Mapping) else {}
        part: dict[str, JsonValue] = {"type": "tool-call"}
        if "toolCallId" in call_map:
            part["id"] = json_safe(call_map["toolCallId"])
        function: dict[str, JsonValue] = {}
        if "toolName" in call_map:
            function["name"] = json_safe(call_map["toolName"])
        if "args" in call_map:
            function["arguments"] = json_safe(call_map["args"])
        part["function"] = function
        parts.append(part)
    return parts


def format_tools(tools: list[Any] | Mapping[str, Any], compat: bool) -> list[JsonValue]:
    """``$ai_tools``: §1.9 in compat mode, Part 2 (j) in default mode.

    Compat mode rewrites ``type: "function"`` tools to OpenAI's nested shape
    from their top-level ``name``/``description``/``parameters`` only (so an
    OpenAI chat tool, already nested, loses its definition, as upstream does).
    Default mode sends every tool as given, since PostHog reads OpenAI chat,
    OpenAI Responses, Anthropic, Gemini and AI-SDK tools in their own shapes;
    only Mastra's tool map (name -> tool) becomes a list of OpenAI chat tools.
    """
    if isinstance(tools, Mapping):
        return [_map_tool(name, tool) for name, tool in tools.items()]
    if not compat:
        return [json_safe(tool) for tool in tools]
    formatted: list[JsonValue] = []
    for tool in tools:
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            function = {
                key: json_safe(tool[key])
                for key in ("name", "description", "parameters")
                if key in tool
            }
            formatted.append({"type": "function", "function": function})
        else:
            formatted.append(json_safe(tool))
    return formatted


def _map_tool(name: Any, tool: Any) -> JsonValue:
    """One entry of Mastra's tool map as an OpenAI chat tool (schema: ``inputSchema``)."""
    fields: Mapping[str, Any] = tool if isinstance(tool, Mapping) else {}
    function: dict[str, JsonValue] = {"name": js_string(name)}
    if "description" in fields:
        function["description"] = json_safe(fields["description"])
    schema = fields.get("inputSchema", fields.get("parameters"))
    if schema is not None:
        function["parameters"] = json_safe(schema)
    return {"type": "function", "function": function}
