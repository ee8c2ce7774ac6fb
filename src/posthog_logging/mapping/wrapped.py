"""A ready PostHog AI event (a ``posthog_event`` record) becomes the event sent.

The ``posthog.ai`` wrappers build their ``$ai_*`` events themselves, and
:func:`posthog_logging.posthog_client` logs each as a record carrying
``{"event", "distinct_id", "properties", "timestamp", "uuid", "groups"}`` (the
arguments of ``posthog.Client.capture``), already placed in the enclosing
``pl.span`` trace; ``pl.metric`` logs its ``$ai_metric`` the same way.  What is
left here is what the handler promises for every event it sends: only events
PostHog's LLM analytics shows (the ``$ai_*`` events, and user feedback surveys and
exceptions that name their trace), ids as strings, JSON-safe values,
the trace's user or ``default_distinct_id``, a stable uuid and the
library's properties.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ..values import is_mapping, is_truthy, js_string, json_safe, time_ms
from .envelope import Event, MappingOptions, RecordRejected, make_event

#: Events PostHog's LLM analytics joins to a trace when they carry ``$ai_trace_id``:
#: user feedback from a survey, and Error tracking's exceptions.  Every ``$ai_*``
#: event is accepted too; anything else is dropped, counted.
TRACE_LINKED_EVENTS = frozenset({"survey sent", "survey shown", "$exception"})
#: Properties holding ids; LangChain's handler passes ``uuid.UUID`` objects.
ID_PROPERTIES = ("$ai_trace_id", "$ai_parent_id", "$ai_span_id", "$ai_session_id")


class WrappedEventBuilder:
    """Checks and finishes ready PostHog AI events; holds no per-trace state."""

    def __init__(self, options: MappingOptions) -> None:
        self.options = options

    def build(self, payload: Any, now_ms: int, trace_user: Callable[[str], str | None]) -> Event:
        """The event; raises :class:`RecordRejected` for anything LLM analytics does not show.

        ``trace_user`` gives the user of a known trace, for an event logged with
        no distinct id (``pl.metric`` outside the trace's spans)."""
        if not is_mapping(payload):
            raise RecordRejected(f"posthog_event is a {type(payload).__name__}, not a mapping")
        name = payload.get("event")
        if not isinstance(name, str) or not name:
            raise RecordRejected("posthog_event has no event name")
        given = payload.get("properties")
        if given is not None and not is_mapping(given):
            raise RecordRejected(f"posthog_event properties are a {type(given).__name__}")
        if not name.startswith("$ai_") and not (
            name in TRACE_LINKED_EVENTS and given and given.get("$ai_trace_id") is not None
        ):
            raise RecordRejected(
                f"posthog_event {name[:40]!r} is neither an $ai_ event nor a survey or "
                "$exception event with $ai_trace_id"
            )
        properties: dict[str, Any] = json_safe(dict(given or {}))
        for key in ID_PROPERTIES:
            value = properties.get(key)
            if value is not None and not isinstance(value, str):
                properties[key] = js_string(value)
        groups = payload.get("groups")
        if is_mapping(groups) and groups:
            properties["$groups"] = json_safe(groups)
        given_id = payload.get("distinct_id")
        trace_id = properties.get("$ai_trace_id")
        if not is_truthy(given_id) and isinstance(trace_id, str):
            given_id = trace_user(trace_id)
        distinct_id = self._distinct_id(given_id, properties)
        timestamp_ms = time_ms(payload.get("timestamp"))
        span_id = properties.get("$ai_span_id")
        identity = (trace_id, span_id) if trace_id and span_id else None
        event = make_event(
            name,
            distinct_id,
            properties,
            now_ms if timestamp_ms is None else timestamp_ms,
            identity,
        )
        given_uuid = _uuid_text(payload.get("uuid"))
        if given_uuid is not None:
            event["uuid"] = given_uuid
        return event

    def _distinct_id(self, given: Any, properties: dict[str, Any]) -> str:
        """The capture's distinct id; a personless event takes ``default_distinct_id``.

        The wrappers mark an event without a user ``$process_person_profile: False``
        and use the trace id (or a run id) as its distinct id.
        """
        personless = properties.get("$process_person_profile") is False or not is_truthy(given)
        default = self.options.default_distinct_id
        if personless and default is not None:
            properties.pop("$process_person_profile", None)
            return default
        if personless:
            properties["$process_person_profile"] = False
        if is_truthy(given):
            return js_string(given)
        trace_id = properties.get("$ai_trace_id")
        return trace_id if isinstance(trace_id, str) and trace_id else "anonymous"


def _uuid_text(value: Any) -> str | None:
    """The caller's event uuid in canonical form, or None when absent or not a uuid."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
