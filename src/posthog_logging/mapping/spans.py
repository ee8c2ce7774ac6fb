"""``docs/mapping-rules.md`` §1.3-§1.10 (and Part 2): one span becomes its event(s).

Properties are assembled from *layers* in the order the rules list them.  A
layer is either the library's own keys or a passthrough of user data (tags,
attributes, metadata).  Compat mode merges the layers in order, so a later
passthrough overwrites the library's keys exactly as ``@mastra/posthog`` does;
default mode merges the passthrough layers first and the library's keys on
top, dropping the passthrough values of the keys the library owns (Part 2
(c), (l)).  Default mode also sends ``model_embedding`` spans as
``$ai_embedding`` (Part 2 (n)), reads provider messages and tool calls (p),
raw usage and web searches (q), names the error type (r), replaces inline media
(s), and with ``capture_exceptions`` sends a span's exception as ``$exception``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..contract import PRIVATE_CONTENT_PROPERTIES, SpanType
from ..errors import exception_list
from ..usage import normalize_usage, web_search_count
from ..values import (
    PLAIN_TYPES,
    JsonValue,
    id_text,
    is_mapping,
    is_number,
    is_truthy,
    js_id_text,
    js_string,
    json_safe,
    json_text,
    plain,
    seconds_between,
    time_ms,
    truthy_text,
)
from .envelope import Event, MappingOptions, RecordRejected, make_event
from .layers import LIBRARY, PASSTHROUGH, Layer, merge_layers, passthrough
from .media import redact_media
from .messages import format_messages, format_tools

#: Metadata keys that are read by the mapping and never passed through.
CONSUMED_METADATA = frozenset({"userId", "sessionId"})

_GENERATION = SpanType.MODEL_GENERATION.value
_EMBEDDING = SpanType.MODEL_EMBEDDING.value
_CHUNK = SpanType.MODEL_CHUNK.value


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A span field that should be a mapping, or an empty one when it is not."""
    return value if is_mapping(value) else {}


class SpanFacts:
    """The fields of one span the mapping reads, parsed once.

    Raises :class:`RecordRejected` when the span is not a mapping or lacks ``id``
    or ``traceId`` (§1.2: such a record is dropped).  Default mode also drops a
    span whose ``traceId``, ``id`` or ``parentSpanId`` has no text that
    identifies (``values.id_text``: a dict, list, bytes, bool, NaN, an object
    whose ``str()`` fails...), as feedback does: spans with such ids would all
    share one made-up id (and one event uuid).  Compat mode sends js-string of
    them like Mastra (§0), unless JavaScript has no such value
    (``values.js_id_text``).
    """

    def __init__(self, span: Any, *, mastra_compat: bool) -> None:
        if type(span) is not dict and not isinstance(span, Mapping):  # is_mapping, inline
            raise RecordRejected(f"span is a {type(span).__name__}, not a mapping")
        self.span = span
        span_id, trace_id = span.get("id"), span.get("traceId")
        if type(span_id) is str and span_id and type(trace_id) is str and trace_id:
            # The usual ids, plain non-empty strings, are their own text in both modes.
            self.span_id, self.trace_id = span_id, trace_id
        else:
            for key in ("id", "traceId"):
                if not is_truthy(span.get(key)):
                    raise RecordRejected(f"span has no {key}")
            self.trace_id = required_id_text(
                trace_id, "span dropped: its trace id", mastra_compat=mastra_compat
            )
            self.span_id = required_id_text(
                span_id, "span dropped: its id", mastra_compat=mastra_compat
            )
        span_type = span.get("type")
        self.type = span_type.lower() if isinstance(span_type, str) else ""
        # Boolean fields, read as JavaScript would: a bool (the usual) is its own truthiness.
        is_event, is_root = span.get("isEvent"), span.get("isRootSpan")
        self.is_event = is_event if type(is_event) is bool else is_truthy(is_event)
        self.is_root = is_root if type(is_root) is bool else is_truthy(is_root)
        parent_id = span.get("parentSpanId")
        if type(parent_id) is str:
            self.parent_id = parent_id or None
        elif not is_truthy(parent_id):
            self.parent_id = None
        else:
            self.parent_id = required_id_text(
                parent_id, "span dropped: its parent id", mastra_compat=mastra_compat
            )
        # as_mapping() for anything but a dict, the usual (a call less per field).
        attributes, metadata = span.get("attributes"), span.get("metadata")
        self.attributes = attributes if type(attributes) is dict else as_mapping(attributes)
        self.metadata = metadata if type(metadata) is dict else as_mapping(metadata)
        self.error_info = span.get("errorInfo")
        self.is_error = is_truthy(self.error_info)
        self.start_ms = time_ms(span.get("startTime"))

    def end_ms(self, now_ms: int) -> int:
        """§1.5: ``endTime`` when truthy (it must parse), else *now*."""
        end_time = self.span.get("endTime")
        if not is_truthy(end_time):
            return now_ms
        end_ms = time_ms(end_time)
        if end_ms is None:
            raise RecordRejected(f"span {self.span_id} has an unparseable endTime")
        return end_ms

    def user_id(self) -> str | None:
        return truthy_text(self.metadata.get("userId"))


def required_id_text(value: Any, what: str, *, mastra_compat: bool) -> str:
    """An id of a span or feedback as text (``js_id_text`` in compat mode, else
    ``id_text``); raises :class:`RecordRejected` ("``what`` (a dict) has no text")
    when it has none."""
    text = js_id_text(value) if mastra_compat else id_text(value)
    if text is None:
        raise RecordRejected(f"{what} (a {type(value).__name__}) has no text")
    return text


class SpanContext(NamedTuple):
    """What the trace state knows that the span itself does not (§1.2, §1.4, §1.7).

    A NamedTuple, not a frozen dataclass: one is made for every span, and a frozen
    dataclass's ``__init__`` costs several times as much.
    """

    trace_user: str | None = None
    parent_is_root: bool = False


#: The context of a span whose trace the state does not know (one for all: it is immutable).
NO_CONTEXT = SpanContext()


class SpanEventBuilder:
    """Builds the events of one span in either mode; holds no per-trace state."""

    def __init__(self, options: MappingOptions, on_dropped: Callable[[str], None]) -> None:
        self.options = options
        self.compat = options.mastra_compat
        #: Told of each passthrough value default mode drops (Part 2 (l)).
        self.on_dropped = on_dropped
        #: Whether content is walked for inline media (Part 2 (s)).
        self.redact = options.redact_media and not options.mastra_compat
        #: Whether a span's exception also goes out as ``$exception`` (Part 2 (r)).
        self.capture_exceptions = options.capture_exceptions and not options.mastra_compat

    # §1.3 ------------------------------------------------------------------
    def build(self, facts: SpanFacts, context: SpanContext, now_ms: int) -> list[Event]:
        """The event(s) for one span; raises :class:`RecordRejected` if none can be built."""
        end_ms = facts.end_ms(now_ms)
        name = self._child_name(facts)
        if facts.is_event:
            events = [self._child_event(name, facts, context, end_ms, latency=0)]
        elif facts.is_root:
            events = []
            if name != "$ai_span" and not self.compat:
                latency = self._latency(facts, end_ms)
                facts.parent_id = None  # Part 2 (b): a root generation has no parent
                events.append(self._child_event(name, facts, context, end_ms, latency))
            events.append(self._trace_event(facts, context, end_ms))
        else:
            latency = self._latency(facts, end_ms)
            events = [self._child_event(name, facts, context, end_ms, latency)]
        error = facts.span.get("exception")
        if self.capture_exceptions and isinstance(error, BaseException):
            events.append(self._exception_event(error, facts, context, end_ms))
        return events

    def _child_name(self, facts: SpanFacts) -> str:
        """§1.3, and Part 2 (n): embeddings are their own event in default mode."""
        if facts.type == _GENERATION:
            return "$ai_generation"
        if facts.type == _EMBEDDING and not self.compat:
            return "$ai_embedding"
        return "$ai_span"

    def _latency(self, facts: SpanFacts, end_ms: int) -> float:
        if facts.start_ms is None:
            raise RecordRejected(f"span {facts.span_id} has no usable startTime")
        return seconds_between(facts.start_ms, end_ms)

    # §1.4 ------------------------------------------------------------------
    def _distinct_id(self, facts: SpanFacts, context: SpanContext) -> tuple[str, bool]:
        """The distinct id, and whether it is personless (Part 2 (g))."""
        for candidate in (facts.user_id(), context.trace_user, self.options.default_distinct_id):
            if candidate:
                return candidate, False
        if self.compat:
            return "anonymous", False
        return facts.trace_id, True

    # §1.6 ------------------------------------------------------------------
    def _trace_event(self, facts: SpanFacts, context: SpanContext, end_ms: int) -> Event:
        span = facts.span
        keys: dict[str, JsonValue] = {
            "$ai_trace_id": facts.trace_id,
            "$ai_is_error": facts.is_error,
        }
        if "name" in span:
            keys["$ai_span_name"] = json_safe(span["name"])
        if not self.compat and facts.start_ms is not None:
            keys["$ai_latency"] = seconds_between(facts.start_ms, end_ms)
        self._add_session(keys, facts)
        self._add_states(keys, span)
        if facts.is_error and self.compat:
            keys["$ai_error"] = self._trace_error(as_mapping(facts.error_info))
        elif facts.is_error:
            self._add_error_keys(keys, facts)  # Part 2 (k)
        layers = [(LIBRARY, keys), self._tags(span), self._metadata(facts)]
        return self._event("$ai_trace", facts, context, end_ms, layers)

    @staticmethod
    def _trace_error(error: Mapping[str, Any]) -> dict[str, JsonValue]:
        reported: dict[str, JsonValue] = {}
        if "message" in error:
            reported["message"] = json_safe(error["message"])
        for key in ("id", "category"):
            if is_truthy(error.get(key)):
                reported[key] = json_safe(error[key])
        return reported

    # §1.7 ------------------------------------------------------------------
    def _shared(self, facts: SpanFacts, context: SpanContext, latency: float) -> list[Layer]:
        shared: dict[str, JsonValue] = {
            "$ai_trace_id": facts.trace_id,
            "$ai_latency": latency,
            "$ai_is_error": facts.is_error,
        }
        if facts.parent_id is not None:
            by_rule = facts.trace_id if context.parent_is_root else facts.parent_id
            compat_event = self.compat and facts.is_event
            shared["$ai_parent_id"] = facts.parent_id if compat_event else by_rule
        self._add_session(shared, facts)
        layers = [(LIBRARY, shared)]
        if facts.is_event and facts.is_root:
            layers.append(self._tags(facts.span))
        return layers

    @staticmethod
    def _add_session(keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        session = truthy_text(facts.metadata.get("sessionId"))
        if session is not None:
            keys["$ai_session_id"] = session

    @staticmethod
    def _add_states(keys: dict[str, JsonValue], span: Mapping[str, Any]) -> None:
        state = span.get("input")
        if is_truthy(state):
            keys["$ai_input_state"] = json_safe(state)
        state = span.get("output")
        if is_truthy(state):
            keys["$ai_output_state"] = json_safe(state)

    # §1.8 / §1.9 -----------------------------------------------------------
    def _child_event(
        self,
        name: str,
        facts: SpanFacts,
        context: SpanContext,
        end_ms: int,
        latency: float,
    ) -> Event:
        layers = self._shared(facts, context, latency)
        if name == "$ai_span":
            self._add_span_keys(self._library_keys(layers), facts)
            layers.append(passthrough(facts.attributes))
        elif name == "$ai_embedding":
            self._add_embedding_keys(self._library_keys(layers), facts)
        else:
            self._add_generation_keys(self._library_keys(layers), facts)
        if facts.is_error:  # else there are no error keys to add
            self._add_error_keys(self._library_keys(layers), facts)
        layers.append(self._metadata(facts))
        return self._event(name, facts, context, end_ms, layers)

    def _library_keys(self, layers: list[Layer]) -> dict[str, JsonValue]:
        """The dict the library's next keys go into, the layers so far being ``layers``
        (the first one the library's).  Default mode merges every library key over all
        passthrough, in the order they were added, so the first layer takes them all;
        compat mode merges in order, so keys that follow a passthrough layer get a
        layer of their own after it."""
        if not self.compat:
            return layers[0][1]
        if layers[-1][0] is PASSTHROUGH:
            layers.append((LIBRARY, {}))
        return layers[-1][1]

    def _add_span_keys(self, keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        self._add_span_identity(keys, facts)
        self._add_states(keys, facts.span)
        if facts.type == _CHUNK:
            attributes = facts.attributes
            if is_truthy(attributes.get("chunkType")):
                keys["chunk_type"] = json_safe(attributes["chunkType"])
            if "sequenceNumber" in attributes:
                keys["chunk_sequence_number"] = json_safe(attributes["sequenceNumber"])

    def _add_generation_keys(self, keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        span, attributes = facts.span, facts.attributes
        keys["$ai_generation_id"] = facts.span_id
        if not self.compat:
            self._add_span_identity(keys, facts)
        self._add_model_keys(keys, attributes)
        if is_truthy(span.get("input")):
            keys["$ai_input"] = format_messages(span["input"], "user", compat=self.compat)
        if is_truthy(span.get("output")):
            keys["$ai_output_choices"] = format_messages(
                span["output"], "assistant", compat=self.compat
            )
        self._add_usage_keys(keys, attributes)
        parameters = attributes.get("parameters")
        if is_truthy(parameters) and is_mapping(parameters):
            if "temperature" in parameters:
                keys["$ai_temperature"] = json_safe(parameters["temperature"])
            if "maxOutputTokens" in parameters:
                max_tokens = self._token_value(parameters["maxOutputTokens"])
                if max_tokens is not _OMIT:
                    keys["$ai_max_tokens"] = max_tokens
            if not self.compat:
                keys["$ai_model_parameters"] = json_safe(parameters)  # Part 2 (m)
        if "streaming" in attributes:
            keys["$ai_stream"] = json_safe(attributes["streaming"])
        tools = attributes.get("tools")
        if tools and isinstance(tools, list if self.compat else (list, Mapping)):
            keys["$ai_tools"] = format_tools(tools, self.compat)
        if not self.compat:
            self._add_default_generation_keys(keys, facts)

    @staticmethod
    def _add_span_identity(keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        keys["$ai_span_id"] = facts.span_id
        if "name" in facts.span:
            name = facts.span["name"]  # a str, the usual, needs no json_safe() call
            keys["$ai_span_name"] = name if type(name) in PLAIN_TYPES else json_safe(name)

    def _add_model_keys(self, keys: dict[str, JsonValue], attributes: Mapping[str, Any]) -> None:
        keys["$ai_model"] = self._or_default(attributes.get("model"), "unknown-model")
        keys["$ai_provider"] = self._or_default(attributes.get("provider"), "unknown-provider")

    def _add_embedding_keys(self, keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        """Part 2 (n): an embedding's model, input and input tokens; it has no output."""
        self._add_span_identity(keys, facts)
        self._add_model_keys(keys, facts.attributes)
        if is_truthy(facts.span.get("input")):
            keys["$ai_input"] = json_safe(facts.span["input"])
        tokens: dict[str, JsonValue] = {}
        self._add_usage_keys(tokens, facts.attributes)
        if "$ai_input_tokens" in tokens:
            keys["$ai_input_tokens"] = tokens["$ai_input_tokens"]
        _add_cost_keys(keys, as_mapping(facts.attributes.get("costContext")))
        _add_raw_usage_keys(keys, facts.attributes, None)

    @staticmethod
    def _or_default(value: Any, fallback: str) -> JsonValue:
        if type(value) is str:  # the usual: its own JSON, truthy unless empty
            return value or fallback
        return json_safe(value) if is_truthy(value) else fallback

    #: Token properties read from ``usage.inputDetails``, in the order they are sent.
    _CACHE_ROWS = (
        ("cacheRead", "$ai_cache_read_input_tokens"),
        ("cacheWrite", "$ai_cache_creation_input_tokens"),
        ("cacheWrite5m", "$ai_cache_creation_5m_input_tokens"),
        ("cacheWrite1h", "$ai_cache_creation_1h_input_tokens"),
    )

    def _add_usage_keys(self, keys: dict[str, JsonValue], attributes: Mapping[str, Any]) -> None:
        """Token counts: §1.9 in compat mode; Part 2 (i) in default mode.

        Default mode reads every usage shape ``normalize_usage`` knows and sends
        gross input tokens, so whenever a cache count goes out it also sends
        ``$ai_cache_reporting_exclusive: false``: PostHog then subtracts the cache
        from the input, for Anthropic and Claude too, and counts every token once.
        """
        usage = attributes.get("usage")
        if not is_truthy(usage) or not is_mapping(usage):
            return
        if not self.compat:
            usage = normalize_usage(usage)
        if "inputTokens" in usage:
            keys["$ai_input_tokens"] = self._token_value(usage["inputTokens"])
        if "outputTokens" in usage:
            keys["$ai_output_tokens"] = self._token_value(usage["outputTokens"])
        details = usage.get("inputDetails")
        cached = False
        if is_mapping(details):
            for key, prop in self._CACHE_ROWS:
                if key in details:
                    keys[prop] = self._token_value(details[key])
                    cached = True
        if not self.compat:
            # Part 2 (f): reasoning tokens, from any usage shape (normalised above, so
            # outputDetails is there only with a reasoning count).
            output_details = usage.get("outputDetails")
            if output_details:
                keys["$ai_reasoning_tokens"] = self._token_value(output_details["reasoning"])
            if cached:
                keys["$ai_cache_reporting_exclusive"] = False

    def _token_value(self, value: Any) -> Any:
        """Part 3 token hygiene; ``_OMIT`` marks a value default mode leaves out."""
        if type(value) is int and math.isfinite(value):  # isfinite: an int too large raises
            return value
        if is_number(value) and math.isfinite(value):
            return int(value) if float(value).is_integer() else value
        return json_safe(value) if self.compat else _OMIT

    def _add_default_generation_keys(self, keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        """Part 2 (e), (f), (h), (l), (q): time to first token, costs, stop reason,
        prompt, raw usage and web searches."""
        attributes = facts.attributes
        first_token_ms = time_ms(attributes.get("completionStartTime"))
        if first_token_ms is not None and facts.start_ms is not None:
            keys["$ai_time_to_first_token"] = seconds_between(facts.start_ms, first_token_ms)
        cost_context = attributes.get("costContext")
        if cost_context is not None:
            _add_cost_keys(keys, as_mapping(cost_context))
        finish_reason = attributes.get("finishReason")
        if isinstance(finish_reason, str) and finish_reason:
            keys["$ai_stop_reason"] = finish_reason
        _add_prompt_keys(keys, attributes)
        _add_raw_usage_keys(keys, attributes, facts.span.get("output"))

    # §1.10 -----------------------------------------------------------------
    def _add_error_keys(self, keys: dict[str, JsonValue], facts: SpanFacts) -> None:
        """§1.10, for a span with a truthy ``errorInfo``; default mode adds ``$ai_error``,
        the message PostHog groups by (Part 2 (k))."""
        error = as_mapping(facts.error_info)
        if "message" in error:
            keys["error_message"] = json_safe(error["message"])
        for key, prop in (("id", "error_id"), ("category", "error_category")):
            if is_truthy(error.get(key)):
                keys[prop] = json_safe(error[key])
        if not self.compat:
            info = facts.error_info
            message = error.get("message") if is_mapping(info) else info
            keys["$ai_is_error"] = True
            keys["$ai_error"] = js_string(message) if is_truthy(message) else json_text(info)
            error_type = truthy_text(error.get("name") or error.get("id") or error.get("category"))
            if error_type is not None:  # Part 2 (r)
                keys["$ai_error_type"] = error_type

    # Part 2 (r) --------------------------------------------------------------
    def _exception_event(
        self, error: BaseException, facts: SpanFacts, context: SpanContext, end_ms: int
    ) -> Event:
        """``$exception`` for Error tracking, linked to the span and its trace."""
        properties: dict[str, JsonValue] = {
            "$exception_list": json_safe(exception_list(error)),
            "$exception_level": "error",
            "$ai_trace_id": facts.trace_id,
            "$ai_span_id": facts.span_id,
        }
        self._add_session(properties, facts)
        distinct_id, personless = self._distinct_id(facts, context)
        if personless:
            properties["$process_person_profile"] = False
        identity = (facts.trace_id, facts.span_id)
        return make_event("$exception", distinct_id, properties, end_ms, identity)

    # §1.12 -----------------------------------------------------------------
    @staticmethod
    def _tags(span: Mapping[str, Any]) -> Layer:
        tags = span.get("tags")
        if not isinstance(tags, (list, tuple)):
            return PASSTHROUGH, {}
        return PASSTHROUGH, {js_string(tag): True for tag in tags}

    @staticmethod
    def _metadata(facts: SpanFacts) -> Layer:
        return passthrough(facts.metadata, CONSUMED_METADATA)

    def _event(
        self,
        name: str,
        facts: SpanFacts,
        context: SpanContext,
        end_ms: int,
        layers: list[Layer],
    ) -> Event:
        properties = merge_layers(layers, self.compat, self.on_dropped)
        if self.redact:
            for key in PRIVATE_CONTENT_PROPERTIES:
                if key in properties:
                    properties[key] = redact_media(properties[key])
        distinct_id, personless = self._distinct_id(facts, context)
        if personless:
            properties["$process_person_profile"] = False
        identity = (facts.trace_id, facts.span_id)
        return make_event(name, distinct_id, properties, end_ms, identity)


class _Omitted:
    """Marker for a value default mode leaves out (Part 3 token hygiene)."""


_OMIT: Any = _Omitted()


def _add_cost_keys(keys: dict[str, JsonValue], cost_context: Mapping[str, Any]) -> None:
    """Part 2 (f): USD costs from ``attributes.costContext``."""
    unit = cost_context.get("costUnit")
    if unit is not None and not (isinstance(unit, str) and unit.lower() == "usd"):
        return
    for key, prop in (
        ("estimatedCost", "$ai_total_cost_usd"),
        ("inputCost", "$ai_input_cost_usd"),
        ("outputCost", "$ai_output_cost_usd"),
    ):
        value = cost_context.get(key)
        if is_number(value) and math.isfinite(value):
            keys[prop] = value


def _add_prompt_keys(keys: dict[str, JsonValue], attributes: Mapping[str, Any]) -> None:
    """Part 2 (l): the prompt a generation used (``pl.generation(prompt_name=...)``),
    which links it on PostHog's Prompts page and in prompt experiments."""
    for key, prop in (("promptName", "$ai_prompt_name"), ("promptVersion", "$ai_prompt_version")):
        if is_truthy(attributes.get(key)):
            keys[prop] = json_safe(attributes[key])


def _add_raw_usage_keys(
    keys: dict[str, JsonValue], attributes: Mapping[str, Any], output: Any
) -> None:
    """Part 2 (q): the usage object as given (``rawUsage``, kept by the tracing API
    when it normalises ``usage``) and the web searches the provider reports."""
    usage = plain(attributes.get("rawUsage", attributes.get("usage")))
    if is_mapping(usage) and usage:
        keys["$ai_usage"] = json_safe(usage)
    searches = web_search_count(usage, plain(output))
    if searches:
        keys["$ai_web_search_count"] = searches
