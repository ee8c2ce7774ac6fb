"""OpenInference's conventions (``openinference-instrumentation-*``, Arize Phoenix).

OpenInference marks its spans with ``openinference.span.kind``, flattens lists
into indexed attribute names (``llm.input_messages.0.message.content``,
``...message.tool_calls.0.tool_call.function.name``) and keeps the raw request
and response as ``input.value`` / ``output.value``.  The readers here turn them
into the shapes :mod:`.conventions` already maps: messages as OpenAI chat
messages, tools as OpenAI tool definitions, parameters by Mastra's names.
Attribute names: ``openinference-semantic-conventions``' ``SpanAttributes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from ..contract import SpanType

SPAN_KIND = "openinference.span.kind"

_KINDS = {
    "LLM": SpanType.MODEL_GENERATION.value,
    "EMBEDDING": SpanType.MODEL_EMBEDDING.value,
    "TOOL": SpanType.TOOL_CALL.value,
    "AGENT": SpanType.AGENT_RUN.value,
    "CHAIN": SpanType.GENERIC.value,
    "RETRIEVER": SpanType.GENERIC.value,
    "RERANKER": SpanType.GENERIC.value,
    "GUARDRAIL": SpanType.GENERIC.value,
    "EVALUATOR": SpanType.GENERIC.value,
    "PROMPT": SpanType.GENERIC.value,
}

# Attribute names, read after the GenAI conventions' own (see conventions.py).
MODEL = ("llm.model_name", "embedding.model_name")
PROVIDER = ("llm.provider", "llm.system")
INPUT_TOKENS = ("llm.token_count.prompt",)
OUTPUT_TOKENS = ("llm.token_count.completion",)
CACHE_READ = ("llm.token_count.prompt_details.cache_read",)
CACHE_WRITE = ("llm.token_count.prompt_details.cache_write",)
REASONING = ("llm.token_count.completion_details.reasoning",)
FINISH_REASON = "llm.finish_reason"

#: ``llm.invocation_parameters`` keys (OpenAI's names) -> Mastra's parameter names.
_PARAMETERS = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "frequency_penalty": "frequencyPenalty",
    "presence_penalty": "presencePenalty",
    "seed": "seed",
    "stop": "stopSequences",
}


def span_type(attributes: Mapping[str, Any]) -> str | None:
    """The Mastra span type of an OpenInference span, None for other spans."""
    kind = attributes.get(SPAN_KIND)
    return _KINDS.get(kind.upper()) if isinstance(kind, str) else None


def messages(attributes: Mapping[str, Any], direction: str) -> list[Any] | None:
    """``llm.{direction}_messages.*`` as OpenAI chat messages (``direction``: input/output)."""
    entries = unflatten(attributes, f"llm.{direction}_messages.")
    converted = [_chat_message(entry.get("message")) for entry in entries if _is_map(entry)]
    return converted or None


def tools(attributes: Mapping[str, Any]) -> list[Any]:
    """``llm.tools.{i}.tool.json_schema``: each an OpenAI tool definition as JSON."""
    found = []
    for entry in unflatten(attributes, "llm.tools."):
        tool = entry.get("tool") if _is_map(entry) else None
        schema = _json(tool.get("json_schema")) if _is_map(tool) else None
        if schema is not None:
            found.append(schema)
    return found


def parameters(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Mastra's model parameters from ``llm.invocation_parameters`` (JSON)."""
    invocation = _json(attributes.get("llm.invocation_parameters"))
    if not _is_map(invocation):
        return {}
    return {name: invocation[key] for key, name in _PARAMETERS.items() if key in invocation}


def streaming(attributes: Mapping[str, Any]) -> bool | None:
    invocation = _json(attributes.get("llm.invocation_parameters"))
    stream = invocation.get("stream") if _is_map(invocation) else None
    return stream if isinstance(stream, bool) else None


def value(attributes: Mapping[str, Any], direction: str) -> Any:
    """``input.value`` / ``output.value``, parsed when its mime type says JSON."""
    raw = attributes.get(f"{direction}.value")
    if raw is None:
        return None
    if attributes.get(f"{direction}.mime_type") == "application/json":
        parsed = _json(raw)
        return raw if parsed is None else parsed
    return raw


def request_messages(attributes: Mapping[str, Any]) -> list[Any] | None:
    """An LLM span's prompt when only the raw request was recorded (``input.value``)."""
    request = value(attributes, "input")
    listed = request.get("messages") if _is_map(request) else None
    return listed if isinstance(listed, list) else None


def response_messages(attributes: Mapping[str, Any]) -> list[Any] | None:
    """An LLM span's reply when only the raw response was recorded (``output.value``)."""
    response = value(attributes, "output")
    choices = response.get("choices") if _is_map(response) else None
    if not isinstance(choices, list):
        return None
    replies = [choice["message"] for choice in choices if _is_map(choice) and "message" in choice]
    return replies or None


def embedding_input(attributes: Mapping[str, Any]) -> list[Any] | None:
    """``embedding.embeddings.{i}.embedding.text``: the texts embedded, in order."""
    texts = [
        entry["embedding"]["text"]
        for entry in unflatten(attributes, "embedding.embeddings.")
        if _is_map(entry) and _is_map(entry.get("embedding")) and "text" in entry["embedding"]
    ]
    return texts or None


def metadata(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The user's ``metadata`` (a JSON object), passed through like ``pl`` metadata."""
    parsed = _json(attributes.get("metadata"))
    return dict(parsed) if _is_map(parsed) else {}


def tags(attributes: Mapping[str, Any]) -> list[str]:
    listed = attributes.get("tag.tags")
    if isinstance(listed, (list, tuple)):
        return [tag for tag in listed if isinstance(tag, str)]
    return []


def unflatten(attributes: Mapping[str, Any], prefix: str) -> list[Any]:
    """The list flattened under ``prefix``: ``prefix.{i}.a.b`` -> ``[{"a": {"b": ...}}]``.

    Every all-digit level becomes a list in index order; a name that is both a
    value and a group (malformed) keeps the value.
    """
    root: dict[str, Any] = {}
    for key, item in attributes.items():
        if not key.startswith(prefix):
            continue
        path = key[len(prefix) :].split(".")
        if not path[0].isdigit():
            continue
        node = root
        for step in path[:-1]:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node.setdefault(path[-1], item)
    listed = _as_lists(root)
    return listed if isinstance(listed, list) else []


def _as_lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _as_lists(child) for key, child in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _chat_message(message: Any) -> dict[str, Any]:
    """One OpenInference message as an OpenAI chat message."""
    if not _is_map(message):
        return {"role": "user", "content": None}
    chat: dict[str, Any] = {"role": message.get("role") or "user"}
    content = message.get("content")
    contents = message.get("contents")
    if content is None and isinstance(contents, list):
        content = [_content_part(part.get("message_content")) for part in contents if _is_map(part)]
    chat["content"] = content
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        chat["tool_calls"] = [_tool_call(call.get("tool_call")) for call in calls if _is_map(call)]
    if "tool_call_id" in message:
        chat["tool_call_id"] = message["tool_call_id"]
    return chat


def _content_part(part: Any) -> Any:
    if not _is_map(part):
        return part
    if part.get("type") == "image":
        image = part.get("image")
        url = image.get("image", {}).get("url") if _is_map(image) else None
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "text", "text": part.get("text")}


def _tool_call(call: Any) -> dict[str, Any]:
    call = call if _is_map(call) else {}
    function = call.get("function")
    function = function if _is_map(function) else {}
    return {
        "id": call.get("id"),
        "function": {"name": function.get("name"), "arguments": function.get("arguments")},
    }


def _json(raw: Any) -> Any:
    """A JSON document given as text, parsed; None when it is not one."""
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _is_map(item: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(item, Mapping)
