"""Reading the AI events the dev server receives: ids, times and errors.

Events arrive as PostHog would get them, from any client, so every reader
here copes with a property that is missing or of the wrong type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..values import time_ms

#: Events that mark a point in a trace (a rating, a score), not a span of time.
POINT_EVENTS = frozenset({"$ai_feedback", "$ai_metric"})


def group_by_trace(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Events keyed by ``$ai_trace_id``, in order of first appearance."""
    traces: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        traces.setdefault(trace_id_of(event), []).append(event)
    return traces


def trace_id_of(event: Mapping[str, Any]) -> str:
    """The event's ``$ai_trace_id`` as text (``?`` when it has none)."""
    return str(properties(event).get("$ai_trace_id", "?"))


def properties(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event's ``properties`` (empty when it has none)."""
    props = event.get("properties")
    return props if isinstance(props, Mapping) else {}


def node_id(event: Mapping[str, Any]) -> str | None:
    """The id other events name as their ``$ai_parent_id``: the trace id of a root,
    else the span or generation id."""
    props = properties(event)
    if event.get("event") == "$ai_trace":
        return str(props.get("$ai_trace_id"))
    node = props.get("$ai_span_id") or props.get("$ai_generation_id")
    return None if node is None else str(node)


def latency_seconds(event: Mapping[str, Any]) -> float | None:
    """``$ai_latency`` when it is a number."""
    latency = properties(event).get("$ai_latency")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)):
        return None
    return float(latency)


def end_ms(event: Mapping[str, Any]) -> float | None:
    """When the span ended (its ``timestamp``), in epoch milliseconds."""
    end = time_ms(event.get("timestamp"))
    return None if end is None else float(end)


def start_ms(event: Mapping[str, Any]) -> float | None:
    """When the span started: its timestamp (the end) minus its latency."""
    end = end_ms(event)
    if end is None:
        return None
    return end - (latency_seconds(event) or 0.0) * 1000


def error_message(props: Mapping[str, Any]) -> str:
    """``error_message`` (non-root spans), else ``$ai_error.message`` (root events)."""
    message = props.get("error_message")
    error = props.get("$ai_error")
    if message is None and isinstance(error, Mapping):
        message = error.get("message")
    if message is None and isinstance(error, str):
        message = error
    return "" if message is None else str(message)
