"""OpenTelemetry GenAI span attributes → a Mastra exported-span mapping.

PostHog's own OTLP ingestion (``/i/v0/ai/otel``) reads the GenAI semantic
conventions in all three generations still emitted today, plus the older
namespaces of OpenLLMetry (``llm.*``, ``traceloop.*``, flattened
``gen_ai.prompt.{i}.*``) and the Vercel AI SDK (``ai.*``); OpenInference
(:mod:`.openinference`) and Logfire (:mod:`.logfire`) are read after them.
This module reads
the same attributes, with the same precedence (newest name first, the older
name as a fallback), but writes them into the span shape the rest of this
library maps (``attributes.model``, ``attributes.usage.inputTokens``,
``input``/``output`` messages, ``errorInfo``...), so an OTel span becomes
exactly the events a ``pl.generation`` with the same facts would.

Every reader here is defensive: an attribute of the wrong type or with
unparseable JSON is skipped, and the span keeps whatever else is known.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from ..contract import SpanType
from ..values import is_number, safe_str
from . import logfire, openinference
from .privacy import passthrough_attributes

#: Prefixes that mark a span as AI work, as PostHog's OTel exporters filter them
#: (``posthog.ai.otel.is_ai_span``): the span name or any attribute key.  An
#: OpenInference span kind marks one too (its chains and agents have no ``llm.``).
AI_SPAN_PREFIXES = ("gen_ai.", "llm.", "ai.", "traceloop.")

#: Operation names (``gen_ai.operation.name`` or OpenLLMetry's ``llm.request.type``).
_OPERATION_TYPES = {
    "chat": SpanType.MODEL_GENERATION.value,
    "text_completion": SpanType.MODEL_GENERATION.value,
    "completion": SpanType.MODEL_GENERATION.value,
    "generate_content": SpanType.MODEL_GENERATION.value,
    # Part 2 (n): ``model_embedding`` becomes ``$ai_embedding``.
    "embeddings": "model_embedding",
    "embedding": "model_embedding",
    "execute_tool": SpanType.TOOL_CALL.value,
    "invoke_agent": SpanType.AGENT_RUN.value,
    "create_agent": SpanType.AGENT_RUN.value,
}
#: OpenLLMetry's ``traceloop.span.kind``.
_TRACELOOP_KINDS = {
    "workflow": SpanType.WORKFLOW_RUN.value,
    "agent": SpanType.AGENT_RUN.value,
    "tool": SpanType.TOOL_CALL.value,
}
#: Vercel AI SDK operation ids (``ai.operationId``, also the span name).
_VERCEL_OPERATIONS = {
    "ai.generateText.doGenerate": SpanType.MODEL_GENERATION.value,
    "ai.streamText.doStream": SpanType.MODEL_GENERATION.value,
    "ai.generateObject.doGenerate": SpanType.MODEL_GENERATION.value,
    "ai.streamObject.doStream": SpanType.MODEL_GENERATION.value,
    "ai.embed.doEmbed": "model_embedding",
    "ai.embedMany.doEmbed": "model_embedding",
    "ai.toolCall": SpanType.TOOL_CALL.value,
}
_MODEL_TYPES = frozenset({SpanType.MODEL_GENERATION.value, "model_embedding"})

# Attribute names, newest first.
_MODEL = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "ai.response.model",
    "ai.model.id",
    *openinference.MODEL,
)
_PROVIDER = ("gen_ai.provider.name", "gen_ai.system", *openinference.PROVIDER)
_INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    *openinference.INPUT_TOKENS,
)
_OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
    *openinference.OUTPUT_TOKENS,
)
_CACHE_READ = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "ai.usage.cachedInputTokens",
    *openinference.CACHE_READ,
)
_CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    *openinference.CACHE_WRITE,
)
_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "ai.usage.reasoningTokens",
    *openinference.REASONING,
)
_PARAMETERS = {
    "temperature": ("gen_ai.request.temperature", "ai.settings.temperature"),
    "maxOutputTokens": ("gen_ai.request.max_tokens", "ai.settings.maxOutputTokens"),
    "topP": ("gen_ai.request.top_p", "ai.settings.topP"),
    "topK": ("gen_ai.request.top_k", "ai.settings.topK"),
    "frequencyPenalty": ("gen_ai.request.frequency_penalty",),
    "presencePenalty": ("gen_ai.request.presence_penalty",),
    "seed": ("gen_ai.request.seed",),
    "stopSequences": ("gen_ai.request.stop_sequences",),
}
_USER_ID = ("posthog.distinct_id", "user.id", "ai.telemetry.metadata.posthog_distinct_id")
_SESSION_ID = (
    "posthog.session_id",
    "session.id",
    "gen_ai.conversation.id",
    "ai.telemetry.metadata.$ai_session_id",
)

#: Older-spec message span events (the role each one stands for).
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def is_ai_span(name: str, attributes: Mapping[str, Any]) -> bool:
    """True when the span name or an attribute key has one of :data:`AI_SPAN_PREFIXES`,
    or the span has an OpenInference span kind."""
    if name.startswith(AI_SPAN_PREFIXES) or openinference.SPAN_KIND in attributes:
        return True
    return any(key.startswith(AI_SPAN_PREFIXES) for key in attributes)


def hex_trace_id(trace_id: int) -> str:
    return f"{trace_id:032x}"


def hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def span_time(nanos: Any) -> dt.datetime | None:
    """An OTel timestamp (integer nanoseconds since the epoch) as a UTC datetime."""
    if not isinstance(nanos, int) or isinstance(nanos, bool) or nanos <= 0:
        return None
    try:
        return _EPOCH + dt.timedelta(microseconds=nanos // 1000)
    except OverflowError:
        return None


def span_dict(
    span: ReadableSpan,
    *,
    start_only: bool = False,
    host: tuple[str, str] | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """The Mastra exported-span mapping for one OTel span.

    ``start_only`` renders the span as it was when it started (no end time,
    output or error), for the ``span_started`` record of a trace's root.
    ``host`` is ``(trace id, span id)`` of the ``pl.span`` the span's OTel trace
    began in: the span joins that trace, and the OTel root hangs under that span.
    ``private`` (privacy mode) leaves out input, output and every attribute that
    may hold text (:mod:`.privacy`), and names a Logfire span by its template.
    """
    context = span.get_span_context()
    attributes: Mapping[str, Any] = span.attributes or {}
    parent = span.parent
    span_type = span_type_of(span.name, attributes)
    record: dict[str, Any] = {
        "id": hex_span_id(context.span_id) if context is not None else "",
        "traceId": hex_trace_id(context.trace_id) if context is not None else "",
        "name": logfire.span_name(span.name, attributes, private=private),
        "type": span_type,
        "startTime": span_time(span.start_time),
        "attributes": _attributes(span_type, attributes, private=private),
        "metadata": _metadata(attributes, span.resource.attributes),
        "isEvent": False,
        # A span with a remote parent continues a trace begun elsewhere: not a root.
        "isRootSpan": parent is None and host is None,
    }
    if parent is not None:
        record["parentSpanId"] = hex_span_id(parent.span_id)
    if host is not None:
        record["traceId"] = host[0]
        record.setdefault("parentSpanId", host[1])
    tags = openinference.tags(attributes)
    if tags:
        record["tags"] = tags
    input_value = None if private else _input(span_type, attributes, span.events)
    if input_value is not None:
        record["input"] = input_value
    if start_only:
        return record
    record["endTime"] = span_time(span.end_time)
    duration = logfire.log_duration(attributes)
    if duration is not None and span.end_time is not None:
        # A Logfire log reports when the work ended and how long it took.
        record["startTime"] = span_time(span.end_time - duration)
    output_value = None if private else _output(span_type, attributes, span.events)
    if output_value is not None:
        record["output"] = output_value
    if span_type in _MODEL_TYPES:
        _add_response_facts(record, attributes)
    error = _error_info(span)
    if error is not None:
        record["errorInfo"] = error
    return record


# --------------------------------------------------------------------- type
def span_type_of(name: str, attributes: Mapping[str, Any]) -> str:
    """The Mastra span type: from the operation name, else the library's own markers."""
    for key in ("gen_ai.operation.name", "llm.request.type"):
        operation = attributes.get(key)
        if isinstance(operation, str) and operation.lower() in _OPERATION_TYPES:
            return _OPERATION_TYPES[operation.lower()]
    operation_id = attributes.get("ai.operationId")
    for candidate in (operation_id, name):
        if isinstance(candidate, str) and candidate in _VERCEL_OPERATIONS:
            return _VERCEL_OPERATIONS[candidate]
    kind = attributes.get("traceloop.span.kind")
    if isinstance(kind, str) and kind in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[kind]
    openinference_type = openinference.span_type(attributes)
    if openinference_type is not None:
        return openinference_type
    # As PostHog's ingestion falls back: a provider, a model and token counts make a generation.
    has_model = _first(attributes, _MODEL) is not None and _first(attributes, _PROVIDER) is not None
    if has_model and _count(attributes, _INPUT_TOKENS) is not None:
        return SpanType.MODEL_GENERATION.value
    return SpanType.GENERIC.value


# --------------------------------------------------------------- attributes
def _attributes(span_type: str, attributes: Mapping[str, Any], *, private: bool) -> dict[str, Any]:
    """Model spans get Mastra's keys; other spans keep their OTel attributes as given,
    less those :mod:`.privacy` holds back."""
    if span_type not in _MODEL_TYPES:
        return passthrough_attributes(attributes, private=private)
    mapped: dict[str, Any] = {}
    model = _first(attributes, _MODEL)
    if model is not None:
        mapped["model"] = model
    provider = _provider(attributes)
    if provider is not None:
        mapped["provider"] = provider
    usage = _usage(attributes)
    if usage:
        mapped["usage"] = usage
    parameters = {}
    for key, names in _PARAMETERS.items():
        name = next((name for name in names if name in attributes), None)
        if name is not None:
            parameters[key] = attributes[name]
    parameters = parameters or openinference.parameters(attributes)
    if parameters:
        mapped["parameters"] = parameters
    streaming = _first_bool(
        attributes, ("llm.is_streaming", "gen_ai.is_streaming", "gen_ai.request.stream")
    )
    if streaming is None:
        streaming = openinference.streaming(attributes)
    if isinstance(streaming, bool):
        mapped["streaming"] = streaming
    tools = _tools(attributes)
    if tools:
        mapped["tools"] = tools
    request_model = attributes.get("gen_ai.request.model")
    if isinstance(request_model, str) and request_model != model:
        mapped["requestModel"] = request_model
    response_id = attributes.get("gen_ai.response.id", attributes.get("ai.response.id"))
    if isinstance(response_id, str):
        mapped["responseId"] = response_id
    return mapped


def _first_bool(attributes: Mapping[str, Any], names: Iterable[str]) -> bool | None:
    """The first of ``names`` holding True or False."""
    return next((v for name in names if isinstance(v := attributes.get(name), bool)), None)


def _first(attributes: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """The first of ``names`` holding a non-empty string."""
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _provider(attributes: Mapping[str, Any]) -> str | None:
    provider = _first(attributes, _PROVIDER)
    if provider is not None:
        return provider
    vercel = _first(attributes, ("ai.model.provider",))  # e.g. "openai.chat"
    return vercel.split(".", 1)[0] if vercel is not None else None


def _count(attributes: Mapping[str, Any], names: Iterable[str]) -> int | None:
    """The first of ``names`` holding a whole number (an int, an integral float or digits)."""
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if is_number(value) and float(value).is_integer():
            return int(value)
    return None


def _usage(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Mastra ``UsageStats``.  OTel's ``input_tokens`` includes cached input, as Mastra's does."""
    usage: dict[str, Any] = {}
    for key, names in (("inputTokens", _INPUT_TOKENS), ("outputTokens", _OUTPUT_TOKENS)):
        count = _count(attributes, names)
        if count is not None:
            usage[key] = count
    input_details = {
        key: count
        for key, names in (("cacheRead", _CACHE_READ), ("cacheWrite", _CACHE_WRITE))
        if (count := _count(attributes, names)) is not None
    }
    if input_details:
        usage["inputDetails"] = input_details
    reasoning = _count(attributes, _REASONING)
    if reasoning is not None:
        usage["outputDetails"] = {"reasoning": reasoning}
    return usage


def _tools(attributes: Mapping[str, Any]) -> list[Any]:
    """Tool definitions: ``gen_ai.tool.definitions`` or OpenLLMetry's flattened functions."""
    definitions = _parsed(attributes.get("gen_ai.tool.definitions"))
    if isinstance(definitions, list):
        return definitions
    if "llm.tools.0.tool.json_schema" in attributes:
        return openinference.tools(attributes)
    functions = _indexed(attributes, "llm.request.functions.")
    tools: list[Any] = []
    for function in functions:
        tool: dict[str, Any] = {"type": "function"}
        for key in ("name", "description"):
            if key in function:
                tool[key] = function[key]
        if "parameters" in function:
            tool["parameters"] = _parsed(function["parameters"])
        tools.append(tool)
    return tools


def _metadata(attributes: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, Any]:
    """``userId`` / ``sessionId`` from the span, else from the resource; OpenInference's
    ``metadata`` (what the application set with ``using_metadata``) passes through."""
    metadata: dict[str, Any] = openinference.metadata(attributes)
    for key, names in (("userId", _USER_ID), ("sessionId", _SESSION_ID)):
        value = _first(attributes, names) or _first(resource, names)
        if value is not None:
            metadata[key] = value
    return metadata


# ------------------------------------------------------------------ content
def _input(span_type: str, attributes: Mapping[str, Any], events: Sequence[Any]) -> Any:
    tool_keys = ("gen_ai.tool.call.arguments", "ai.toolCall.args", "traceloop.entity.input")
    if span_type == SpanType.TOOL_CALL.value and (value := _first_present(attributes, tool_keys)):
        return value
    if span_type == SpanType.MODEL_EMBEDDING.value and (
        texts := openinference.embedding_input(attributes)
    ):
        return texts
    messages = _first_found(
        lambda: _messages(attributes.get("gen_ai.input.messages")),
        lambda: _flattened_messages(attributes, "gen_ai.prompt."),
        lambda: _event_messages(events),
        lambda: _vercel_prompt(attributes),
        lambda: _first_present(attributes, ("gen_ai.prompt", "traceloop.entity.input")),
        lambda: _messages(openinference.messages(attributes, "input")),
        lambda: _messages(openinference.request_messages(attributes)),
        lambda: openinference.value(attributes, "input"),
    )
    return _with_system_instructions(messages, attributes.get("gen_ai.system_instructions"))


def _output(span_type: str, attributes: Mapping[str, Any], events: Sequence[Any]) -> Any:
    tool_keys = ("gen_ai.tool.call.result", "ai.toolCall.result", "traceloop.entity.output")
    if span_type == SpanType.TOOL_CALL.value and (value := _first_present(attributes, tool_keys)):
        return value
    messages = _first_found(
        lambda: _messages(attributes.get("gen_ai.output.messages")),
        lambda: _flattened_messages(attributes, "gen_ai.completion."),
        lambda: _choice_events(events),
        lambda: _messages(openinference.messages(attributes, "output")),
        lambda: _messages(openinference.response_messages(attributes)),
    )
    if messages is not None:
        return messages
    text = attributes.get("ai.response.text")
    tool_calls = _parsed(attributes.get("ai.response.toolCalls"))
    if isinstance(tool_calls, list) and tool_calls:
        # §1.11 rule 4 reads Mastra's {text, toolCalls}; the AI SDK 5 says ``input``.
        calls = [_vercel_tool_call(call) for call in tool_calls if isinstance(call, Mapping)]
        return {"text": text if isinstance(text, str) else "", "toolCalls": calls}
    if isinstance(text, str):
        return text
    return _first_found(
        lambda: _first_present(attributes, ("gen_ai.completion", "traceloop.entity.output")),
        lambda: openinference.value(attributes, "output"),
    )


def _first_found(*readers: Callable[[], Any]) -> Any:
    """The first reader's value that is not None: the sources of one field, in order."""
    for read in readers:
        value = read()
        if value is not None:
            return value
    return None


def _first_present(attributes: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if name in attributes:
            return _parsed(attributes[name])
    return None


def _parsed(value: Any) -> Any:
    """A JSON array or object given as text, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _messages(value: Any) -> list[Any] | None:
    """GenAI messages (``{role, parts}``, or ``{role, content}``) as ``{role, content}``."""
    parsed = _parsed(value)
    if isinstance(parsed, list):
        return [_message(item) for item in parsed]
    if isinstance(parsed, str) and parsed:
        return [{"role": "user", "content": parsed}]
    return None


def _message(item: Any) -> Any:
    if not isinstance(item, Mapping):
        return item
    role = item.get("role", "user")
    parts = item.get("parts")
    if isinstance(parts, list):
        return {"role": role, "content": [_part(part) for part in parts]}
    content = item.get("content")
    tool_calls = item.get("tool_calls")
    if isinstance(tool_calls, list) and tool_calls:
        text = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
        calls = [_part({"type": "tool_call", **c}) for c in tool_calls if isinstance(c, Mapping)]
        return {"role": role, "content": text + calls}
    if "tool_call_id" in item:
        result = {"type": "tool_call_response", "id": item["tool_call_id"], "response": content}
        return {"role": role, "content": [_part(result)]}
    return {"role": role, "content": content}


def _part(part: Any) -> Any:
    """A GenAI message part in the typed-part shape PostHog renders (Mastra's for tool calls)."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text" or (kind is None and "content" in part):
        return {"type": "text", "text": part.get("content")}
    if kind == "tool_call":
        arguments = part.get("arguments")
        function = {"name": part.get("name"), "arguments": _parsed(arguments)}
        if "function" in part and isinstance(part["function"], Mapping):  # OpenAI's nesting
            nested = part["function"]
            function = {"name": nested.get("name"), "arguments": _parsed(nested.get("arguments"))}
        return {"type": "tool-call", "id": part.get("id"), "function": function}
    if kind == "tool_call_response":
        return {"type": "tool-result", "toolCallId": part.get("id"), "result": part.get("response")}
    if kind == "reasoning":
        return {"type": "reasoning", "text": part.get("content")}
    return dict(part)


def _indexed(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry's flattened lists (``prefix.{i}.field``, ``prefix.{i}.group.{j}.field``)."""
    entries: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index, _, field = key[len(prefix) :].partition(".")
        if not index.isdigit() or not field:
            continue
        entry = entries.setdefault(int(index), {})
        group, _, rest = field.partition(".")
        sub_index, _, sub_field = rest.partition(".")
        if sub_index.isdigit() and sub_field:
            nested = entry.setdefault(group, {})
            if isinstance(nested, dict):
                nested.setdefault(int(sub_index), {})[sub_field] = value
        else:
            entry[field] = value
    result = []
    for position in sorted(entries):
        entry = entries[position]
        for group, nested in list(entry.items()):
            if isinstance(nested, dict):
                entry[group] = [nested[i] for i in sorted(nested)]
        result.append(entry)
    return result


def _flattened_messages(attributes: Mapping[str, Any], prefix: str) -> list[Any] | None:
    entries = _indexed(attributes, prefix)
    return [_message(entry) for entry in entries] if entries else None


def _event_messages(events: Sequence[Any]) -> list[Any] | None:
    """Older-spec span events: ``gen_ai.user.message`` and friends, in order."""
    messages = []
    for event in events:
        role = _MESSAGE_EVENTS.get(event.name)
        if role is None:
            continue
        attributes = event.attributes or {}
        messages.append(
            _message(
                {
                    "role": attributes.get("role", role),
                    "content": _parsed(attributes.get("content")),
                    "tool_calls": _parsed(attributes.get("tool_calls")),
                }
            )
        )
    return messages or None


def _choice_events(events: Sequence[Any]) -> list[Any] | None:
    choices = []
    for event in events:
        if event.name != "gen_ai.choice":
            continue
        attributes = event.attributes or {}
        message = _parsed(attributes.get("message"))
        if not isinstance(message, Mapping):
            message = {"role": "assistant", "content": _parsed(attributes.get("content"))}
        choices.append(_message({"role": "assistant", **message}))
    return choices or None


def _vercel_prompt(attributes: Mapping[str, Any]) -> Any:
    messages = _parsed(attributes.get("ai.prompt.messages"))
    if isinstance(messages, list):
        return messages
    prompt = _parsed(attributes.get("ai.prompt"))
    if isinstance(prompt, Mapping):
        listed = prompt.get("messages")
        if isinstance(listed, list):
            messages = list(listed)
        elif isinstance(prompt.get("prompt"), str):
            messages = [{"role": "user", "content": prompt["prompt"]}]
        else:
            return None
        if isinstance(prompt.get("system"), str):
            messages.insert(0, {"role": "system", "content": prompt["system"]})
        return messages
    return prompt


def _vercel_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    if "toolCallId" in call:
        converted["toolCallId"] = call["toolCallId"]
    if "toolName" in call:
        converted["toolName"] = call["toolName"]
    arguments = call.get("args", call.get("input"))
    if arguments is not None:
        converted["args"] = _parsed(arguments)
    return converted


def _with_system_instructions(messages: Any, instructions: Any) -> Any:
    """Gemini-style ``gen_ai.system_instructions`` as a leading system message."""
    parsed = _parsed(instructions)
    if isinstance(parsed, list):
        texts = [
            part.get("content")
            for part in parsed
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        parsed = "\n\n".join(text for text in texts if isinstance(text, str) and text)
    if not isinstance(parsed, str) or not parsed:
        return messages
    system = {"role": "system", "content": parsed}
    if messages is None:
        return [system]
    if isinstance(messages, list):
        first = messages[0] if messages else None
        if isinstance(first, Mapping) and first.get("role") == "system":
            return messages
        return [system, *messages]
    return messages


# ------------------------------------------------------ response and errors
def _add_response_facts(record: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    """``finishReason`` and ``completionStartTime`` of a model span."""
    mapped = record["attributes"]
    reason = _finish_reason(attributes)
    if reason is not None:
        mapped["finishReason"] = reason
    first_chunk = attributes.get("gen_ai.response.time_to_first_chunk")
    offset: float | None = None
    if is_number(first_chunk):
        offset = float(first_chunk)
    elif is_number(attributes.get("ai.response.msToFirstChunk")):
        offset = float(attributes["ai.response.msToFirstChunk"]) / 1000
    start = record.get("startTime")
    if offset is not None and isinstance(start, dt.datetime) and 0 <= offset < 86_400:
        mapped["completionStartTime"] = start + dt.timedelta(seconds=offset)


def _finish_reason(attributes: Mapping[str, Any]) -> str | None:
    """The first choice's finish reason, wherever the instrumentation put it."""
    reasons = attributes.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, (list, tuple)) and reasons and isinstance(reasons[0], str):
        return reasons[0]
    reason = _first(
        attributes,
        (
            "ai.response.finishReason",
            "llm.response.finish_reason",
            "gen_ai.completion.0.finish_reason",
            openinference.FINISH_REASON,
        ),
    )
    if reason is not None:
        return reason
    messages = _parsed(attributes.get("gen_ai.output.messages"))
    if isinstance(messages, list) and messages and isinstance(messages[0], Mapping):
        reason = messages[0].get("finish_reason")
        if isinstance(reason, str) and reason:
            return reason
    return None


def _error_info(span: ReadableSpan) -> dict[str, Any] | None:
    """Mastra ``errorInfo`` from status ERROR, an ``exception`` event or ``error.type``.

    An explicit status OK wins: an exception recorded and then handled is not a failure.
    """
    status = span.status
    if status.status_code is StatusCode.OK:
        return None
    attributes = span.attributes or {}
    exception = next((e for e in reversed(span.events) if e.name == "exception"), None)
    exception_attributes = (exception.attributes or {}) if exception is not None else {}
    error_type = attributes.get("error.type")
    if status.status_code is not StatusCode.ERROR and exception is None and error_type is None:
        return None
    message = (
        status.description
        or exception_attributes.get("exception.message")
        or (safe_str(error_type) if error_type is not None else None)
        or "error"
    )
    info: dict[str, Any] = {"message": safe_str(message)}
    name = exception_attributes.get("exception.type")
    if name is not None:
        info["name"] = safe_str(name)
    if error_type is not None:
        info["id"] = safe_str(error_type)
    return info
