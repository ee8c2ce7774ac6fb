"""§1.11 message formatting and the §1.9 tool rewrite (``docs/mapping-rules.md``).

PostHog renders ``$ai_input`` / ``$ai_output_choices`` as chat messages whose
content is a list of typed parts; Mastra hands over AI-SDK messages, plain
strings or ``{text, toolCalls}`` results.  Compat mode bridges the two exactly
as ``@mastra/posthog`` 1.3.11 does.

Default mode (Part 2 (p)) also reads what providers hand out, so PostHog can
count tool calls (its ``extract-tool-calls.ts`` reads ``tool_calls[].function``,
``{"type": "function", "function": {...}}`` blocks and Anthropic ``tool_use``):
messages keep their provider keys (``tool_calls``, ``tool_call_id``, ``name``),
SDK objects are read as the data they stand for, a whole OpenAI, Anthropic or
Gemini response becomes its assistant message, and every tool call the library
writes is a ``function`` block, the shape the ``posthog.ai`` wrappers send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..values import JsonValue, is_mapping, is_truthy, js_string, json_safe, json_text, plain


def format_messages(data: Any, role: str, *, compat: bool) -> list[JsonValue]:
    """format(data, role) of §1.11 (compat) or Part 2 (p): the first matching rule wins."""
    if not compat:
        return _provider_messages(data, role)
    if is_mapping(data) and _is_message_list(data.get("messages")):
        return [_normalise_message(message) for message in data["messages"]]
    if _is_message_list(data):
        return [_normalise_message(message) for message in data]
    if isinstance(data, str):
        return [_text_message(role, data)]
    if is_mapping(data):
        result = _mastra_result(data, role, _mastra_tool_call)
        if result is not None:
            return result
    return [_text_message(role, json_text(data))]


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        is_mapping(item) and "role" in item and "content" in item for item in value
    )


def _normalise_message(message: Mapping[str, Any]) -> JsonValue:
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {"role": json_safe(message["role"]), "content": json_safe(content)}


def _text_message(role: str, text: str) -> JsonValue:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def _mastra_result(
    data: Mapping[str, Any], role: str, part_of_call: Callable[[Mapping[str, Any]], JsonValue]
) -> list[JsonValue] | None:
    """Mastra's ``{text, toolCalls}`` result (§1.11 rules 4 and 5), or None if ``data``
    is none; ``part_of_call`` writes each tool call."""
    tool_calls = data.get("toolCalls")
    if isinstance(tool_calls, list) and tool_calls:
        parts = _tool_call_parts(data, tool_calls, part_of_call)
        return [{"role": "assistant", "content": parts}]
    if isinstance(data.get("text"), str):
        return [_text_message(role, data["text"])]
    return None


def _tool_call_parts(
    data: Mapping[str, Any],
    tool_calls: list[Any],
    part_of_call: Callable[[Mapping[str, Any]], JsonValue],
) -> list[JsonValue]:
    """Mastra's ``{text, toolCalls}``: a text part, then one part per call."""
    parts: list[JsonValue] = []
    if is_truthy(data.get("text")):
        parts.append({"type": "text", "text": json_safe(data["text"])})
    for call in tool_calls:
        parts.append(part_of_call(call if is_mapping(call) else {}))
    return parts


def _mastra_tool_call(call: Mapping[str, Any]) -> JsonValue:
    """§1.9: a call as Mastra's ``tool-call`` part (compat mode)."""
    part: dict[str, JsonValue] = {"type": "tool-call"}
    if "toolCallId" in call:
        part["id"] = json_safe(call["toolCallId"])
    function: dict[str, JsonValue] = {}
    if "toolName" in call:
        function["name"] = json_safe(call["toolName"])
    if "args" in call:
        function["arguments"] = json_safe(call["args"])
    part["function"] = function
    return part


def format_tools(tools: list[Any] | Mapping[str, Any], compat: bool) -> list[JsonValue]:
    """``$ai_tools``: §1.9 in compat mode, Part 2 (j) in default mode.

    Compat mode rewrites ``type: "function"`` tools to OpenAI's nested shape
    from their top-level ``name``/``description``/``parameters`` only (so an
    OpenAI chat tool, already nested, loses its definition, as upstream does).
    Default mode sends every tool as given, since PostHog reads OpenAI chat,
    OpenAI Responses, Anthropic, Gemini and AI-SDK tools in their own shapes;
    only Mastra's tool map (name -> tool) becomes a list of OpenAI chat tools.
    """
    if is_mapping(tools):
        return [_map_tool(name, tool) for name, tool in tools.items()]
    if not compat:
        return [json_safe(tool) for tool in tools]
    formatted: list[JsonValue] = []
    for tool in tools:
        if is_mapping(tool) and tool.get("type") == "function":
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
    fields: Mapping[str, Any] = tool if is_mapping(tool) else {}
    function: dict[str, JsonValue] = {"name": js_string(name)}
    if "description" in fields:
        function["description"] = json_safe(fields["description"])
    schema = fields.get("inputSchema", fields.get("parameters"))
    if schema is not None:
        function["parameters"] = json_safe(schema)
    return {"type": "function", "function": function}


# ------------------------------------------------------------ default mode (p)

#: Message keys kept besides role and content (the ones the ``posthog.ai`` wrappers keep).
_MESSAGE_KEYS = ("tool_calls", "tool_call_id", "name", "audio", "refusal")


def _provider_messages(data: Any, role: str) -> list[JsonValue]:
    """Part 2 (p): the messages ``data`` stands for, in any provider's shape."""
    data = plain(data)
    if isinstance(data, str):
        return [_text_message(role, data)]
    if isinstance(data, (list, tuple)):
        items = [item if type(item) is dict else plain(item) for item in data]
        if role == "assistant" and any(_is_output_item(item) for item in items):
            return [_responses_message(items)]
        found = _message_list(items)
        if found is not None:
            return found
    elif is_mapping(data):
        found = _mapping_messages(data, role)
        if found is not None:
            return found
    return [_text_message(role, json_text(data))]


def _mapping_messages(data: Mapping[str, Any], role: str) -> list[JsonValue] | None:
    """The messages a mapping stands for, or None when it is no known shape."""
    messages = data.get("messages")  # the AI SDK's {messages: [...]}
    if isinstance(messages, list) and messages:
        found = _message_list([plain(message) for message in messages])
        if found is not None:
            return found
    if _is_message(data):
        return [_message(data)]
    choices = data.get("choices")  # an OpenAI chat completion
    if isinstance(choices, list) and choices:
        found = [choice.get("message") for choice in choices if is_mapping(choice)]
        return [_message(message) for message in found if _is_message(message)] or None
    output = data.get("output")  # an OpenAI Responses response
    if isinstance(output, list) and output:
        return [_responses_message([plain(item) for item in output])]
    candidates = data.get("candidates")  # a Gemini response
    if isinstance(candidates, list) and candidates:
        contents = [_gemini_content(candidate) for candidate in candidates]
        return [_message({**content, "role": "assistant"}) for content in contents if content]
    return _mastra_result(data, role, _sdk_tool_call)


def _message_list(items: list[Any]) -> list[JsonValue] | None:
    """A list of messages, typed items among them (a Responses input's
    ``function_call_output``...) kept as they are; None unless every item is a
    mapping and at least one a message (an empty list is an empty conversation)."""
    formatted: list[JsonValue] = []
    has_message = not items
    for item in items:
        if _is_message(item):
            formatted.append(_message(item))
            has_message = True
        elif is_mapping(item):
            formatted.append(json_safe(item))
        else:
            return None
    return formatted if has_message else None


def _is_message(value: Any) -> bool:
    return (
        is_mapping(value)
        and "role" in value
        and ("content" in value or "tool_calls" in value or "parts" in value)
    )


def _is_output_item(value: Any) -> bool:
    """A Responses API output item that is not a message (``function_call``, ...)."""
    return is_mapping(value) and "type" in value and "role" not in value


def _gemini_content(candidate: Any) -> Mapping[str, Any] | None:
    """A Gemini candidate's ``content`` (``{role, parts}``), if it has one."""
    content = plain(_as_mapping(plain(candidate)).get("content"))
    return content if is_mapping(content) and "parts" in content else None


def _message(message: Mapping[str, Any]) -> JsonValue:
    """One message: role, content as typed parts, and the provider keys PostHog reads."""
    role = message["role"]  # a str, the usual, needs no json_safe() call
    formatted: dict[str, JsonValue] = {"role": role if type(role) is str else json_safe(role)}
    content = message["content"] if "content" in message else message.get("parts")
    if isinstance(content, str):
        formatted["content"] = [{"type": "text", "text": content}]
    elif isinstance(content, (list, tuple)):
        formatted["content"] = [_part(part) for part in content]
    else:
        formatted["content"] = json_safe(content)
    for key in _MESSAGE_KEYS:
        if message.get(key) is not None:
            formatted[key] = json_safe(message[key])
    return formatted


def _part(part: Any) -> JsonValue:
    """A content part; tool calls of the AI SDK, Mastra and Gemini become ``function`` blocks."""
    part = plain(part)
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not is_mapping(part):
        return json_safe(part)
    kind = part.get("type")
    if kind == "tool-call":
        function = _as_mapping(part.get("function"))
        return _function_block(
            part.get("id", part.get("toolCallId")),
            function.get("name", part.get("toolName")),
            function.get("arguments", part.get("args", part.get("input"))),
        )
    if kind is None:
        call = plain(part.get("function_call", part.get("functionCall")))
        if is_mapping(call):  # a Gemini part
            return _function_block(call.get("id"), call.get("name"), call.get("args"))
        if isinstance(part.get("text"), str):
            return {"type": "text", "text": part["text"]}
    return json_safe(part)


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if is_mapping(value) else {}


def _function_block(call_id: Any, name: Any, arguments: Any) -> JsonValue:
    """A tool call as the ``posthog.ai`` wrappers write it (PostHog counts these)."""
    block: dict[str, JsonValue] = {"type": "function"}
    if call_id is not None:
        block["id"] = json_safe(call_id)
    block["function"] = {"name": json_safe(name), "arguments": json_safe(arguments)}
    return block


def _responses_message(items: list[Any]) -> JsonValue:
    """An OpenAI Responses output as one assistant message, as the wrappers send it."""
    content: list[JsonValue] = []
    for item in items:
        if not is_mapping(item):
            content.append(json_safe(item))
        elif item.get("type") == "function_call":
            call_id = item.get("call_id", item.get("id"))
            content.append(_function_block(call_id, item.get("name"), item.get("arguments")))
        elif item.get("type") == "message" and isinstance(item.get("content"), list):
            content.extend(_output_text(part) for part in item["content"])
        else:
            content.append(json_safe(item))
    return {"role": "assistant", "content": content}


def _output_text(part: Any) -> JsonValue:
    part = plain(part)
    if is_mapping(part) and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    return json_safe(part)


def _sdk_tool_call(call: Mapping[str, Any]) -> JsonValue:
    """A Mastra / AI SDK tool call as a ``function`` block (``args``, or AI SDK 5's ``input``)."""
    return _function_block(
        call.get("toolCallId"), call.get("toolName"), call.get("args", call.get("input"))
    )
