"""``docs/mapping-rules.md`` §1.13: a feedback record becomes one ``$ai_feedback`` event."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..values import JsonValue, is_mapping, is_truthy, js_string, json_safe, time_ms, truthy_text
from .envelope import Event, MappingOptions, RecordRejected, make_event
from .layers import LIBRARY, merge_layers, passthrough
from .spans import CONSUMED_METADATA, as_mapping, required_id_text

_FIELDS = (
    ("feedbackId", "feedback_id"),
    ("feedbackType", "feedback_type"),
    ("value", "feedback_value"),
)
#: Plain properties, not among the ids Part 3 makes strings: sent as given.
_SOURCE_IDS = (("spanId", "span_id"), ("sourceId", "source_id"))


class FeedbackEventBuilder:
    """Builds ``$ai_feedback`` events; feedback needs no per-trace state."""

    def __init__(self, options: MappingOptions, on_dropped: Callable[[str], None]) -> None:
        self.options = options
        self.on_dropped = on_dropped

    def build(self, feedback: Any, now_ms: int) -> Event:
        """The event; raises :class:`RecordRejected` for feedback without a usable trace id
        (none at all, or one with no text that identifies; compat mode takes
        JavaScript's text of any value JavaScript has)."""
        if not is_mapping(feedback):
            raise RecordRejected(f"feedback is a {type(feedback).__name__}, not a mapping")
        if not is_truthy(feedback.get("traceId")):
            raise RecordRejected("feedback has no traceId")
        # Default mode: a trace id with no text that identifies is dropped (Part 2);
        # compat mode sends js-string of it, as Mastra does (§1.13), like a span's,
        # unless JavaScript has no such value.  A bad value, not the missing trace
        # id above (DEBUG only, §1.13), is reported as an ERROR.
        trace_id = required_id_text(
            feedback["traceId"],
            "feedback dropped: its trace id",
            mastra_compat=self.options.mastra_compat,
        )
        metadata = as_mapping(feedback.get("metadata"))
        properties: dict[str, JsonValue] = {"$ai_trace_id": trace_id}
        properties["$ai_feedback_text"] = self._text(feedback)
        for key, prop in _FIELDS:
            if key in feedback:
                properties[prop] = json_safe(feedback[key])
        source = feedback.get("feedbackSource")
        if source is None:
            source = feedback.get("source")
        if is_truthy(source):
            properties["feedback_source"] = json_safe(source)
        for key, prop in _SOURCE_IDS:
            if is_truthy(feedback.get(key)):
                properties[prop] = json_safe(feedback[key])
        session = truthy_text(metadata.get("sessionId"))
        if session is not None:
            properties["$ai_session_id"] = session
        layers = [passthrough(metadata, CONSUMED_METADATA), (LIBRARY, properties)]
        properties = merge_layers(layers, self.options.mastra_compat, self.on_dropped)
        distinct_id = self._distinct_id(feedback, metadata)
        if distinct_id is None:
            distinct_id = trace_id
            properties["$process_person_profile"] = False
        timestamp_ms = time_ms(feedback.get("timestamp"))
        if timestamp_ms is None and not self.options.mastra_compat:
            timestamp_ms = now_ms
        feedback_id = truthy_text(feedback.get("feedbackId"))
        identity = None if feedback_id is None else (trace_id, feedback_id)
        return make_event("$ai_feedback", distinct_id, properties, timestamp_ms, identity)

    @staticmethod
    def _text(feedback: Mapping[str, Any]) -> JsonValue:
        """``comment ?? String(value)``: a comment goes out as given, a value as text."""
        comment = feedback.get("comment")
        if comment is not None:
            return json_safe(comment)
        return js_string(feedback["value"]) if "value" in feedback else "undefined"

    def _distinct_id(self, feedback: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
        """§1.13 distinct id; None means "personless, use the trace id" (Part 2 (g))."""
        chosen: Any = None
        for source in (
            feedback.get("feedbackUserId"),
            feedback.get("userId"),
            metadata.get("userId"),
        ):
            if source is not None:
                chosen = source
                break
        text = truthy_text(chosen)
        if text is not None:
            return text
        default = self.options.default_distinct_id
        if default is not None:
            return default
        return "anonymous" if self.options.mastra_compat else None
