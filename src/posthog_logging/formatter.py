"""``SpanJsonFormatter``: span, feedback and PostHog-event records as JSON lines.

A team that already ships JSON logs (files, stdout, a collector) gets the
same span data there as PostHog gets, one object per line::

    {"time": "2025-01-01T00:00:05.000Z", "logger": "app.ai", "level": "INFO",
     "message": "llm call", "span_event": "span_ended", "span": {...}}

Datetimes anywhere inside are ``docs/mapping-rules.md`` Part 3 timestamps (ISO-8601 UTC, three
fractional digits, ``Z``) and values JSON cannot carry become strings, so a
line never fails to format.  ``posthog-logging replay`` reads these lines
and sends them to PostHog later, mapping them on the way.
A ``posthog_event`` record (from :func:`posthog_logging.posthog_client`)
is written as ``"posthog_event": {"event": ..., "properties": ...}``.
Records without any of these are formatted as python-json-logger
always does, so one formatter serves a whole logger tree.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from .contract import (
    FEEDBACK_ATTR,
    POSTHOG_EVENT_ATTR,
    SPAN_ATTR,
    SPAN_EVENT_ATTR,
    SupportsSpanDict,
)
from .records import payload_fields
from .values import format_timestamp_ms, json_safe, time_ms


class SpanJsonFormatter(JsonFormatter):
    """python-json-logger formatter that writes a record's span, feedback or PostHog event."""

    def add_fields(
        self,
        log_record: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        attributes = payload_fields(record)
        span = attributes.get(SPAN_ATTR)
        feedback = attributes.get(FEEDBACK_ATTR)
        posthog_event = attributes.get(POSTHOG_EVENT_ATTR)
        if span is None and feedback is None and posthog_event is None:
            super().add_fields(log_record, record, message_dict)
            return
        log_record["time"] = format_timestamp_ms(time_ms(record.created) or 0)
        log_record["logger"] = record.name
        log_record["level"] = record.levelname
        log_record["message"] = record.getMessage()
        if span is not None:
            if isinstance(span, SupportsSpanDict):
                span = span.to_span_dict()
            log_record[SPAN_EVENT_ATTR] = json_safe(attributes.get(SPAN_EVENT_ATTR) or "span_ended")
            log_record[SPAN_ATTR] = json_safe(span)
        elif feedback is not None:
            log_record[FEEDBACK_ATTR] = json_safe(feedback)
        else:
            log_record[POSTHOG_EVENT_ATTR] = json_safe(posthog_event)
