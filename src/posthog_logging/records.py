"""Where a ``LogRecord`` carries its span, feedback or PostHog event.

``logging`` puts ``extra={...}`` keys on the record itself.  loguru's
standard-library sink (``logger.add(handler)``) does not: it puts everything
bound with ``logger.bind(...)`` (or passed as keyword arguments) in one
attribute, ``record.extra``.  Both the handler and the formatter read the
payload through :func:`payload_fields`, so a loguru program needs nothing but
``logger.add(PosthogLogHandler(...))``.

The way in, for the library's own emitters (the tracing API, the ``posthog.ai``
client, the OpenTelemetry processor), is :func:`log_payload`; the handlers such
a record reaches are :func:`reached_handlers`.

The way back, from a JSON line ``SpanJsonFormatter`` wrote to the record it
stands for, is :func:`record_line`, shared by ``send`` and ``replay``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from .contract import FEEDBACK_ATTR, POSTHOG_EVENT_ATTR, SPAN_ATTR, SPAN_EVENT_ATTR
from .values import time_ms

#: The attributes that make a record one of ours.
PAYLOAD_ATTRS = (SPAN_ATTR, FEEDBACK_ATTR, POSTHOG_EVENT_ATTR)
#: The attribute loguru's standard-library sink puts bound data in.
LOGURU_EXTRA_ATTR = "extra"


def log_payload(
    logger: logging.Logger,
    source: str,
    extra: Mapping[str, object],
    message: str,
    *args: object,
) -> None:
    """Log one INFO record carrying ``extra`` (a span, feedback or PostHog event).

    ``logger.info`` without ``findCaller()``: the caller's file and line would
    only ever point into the library (``source``, the emitting module's file),
    and finding them costs a third of the call.  Callers check
    ``logger.isEnabledFor(logging.INFO)`` before they build ``extra``.
    """
    record = logger.makeRecord(
        logger.name, logging.INFO, source, 0, message, args, None, extra=extra
    )
    logger.handle(record)


def reached_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record logged on ``logger`` reaches, as ``Logger.callHandlers``
    walks them (up through the parents while ``propagate`` is set)."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    return handlers


def payload_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    """The record's attributes, or loguru's ``record.extra`` when the payload is there.

    Attributes set on the record win: a record that has any payload attribute of
    its own is read as it is, whatever ``extra`` holds.
    """
    fields = record.__dict__
    extra = fields.get(LOGURU_EXTRA_ATTR)
    if type(extra) is dict and not any(fields.get(name) is not None for name in PAYLOAD_ATTRS):
        return extra
    return fields


class BadLine(Exception):
    """A line that is not a span record, a feedback record or an event (its reason)."""


class RecordLine(NamedTuple):
    """The record one ``SpanJsonFormatter`` line stands for."""

    attr: str  # SPAN_ATTR, FEEDBACK_ATTR or POSTHOG_EVENT_ATTR: the record's kind
    payload: Any  # the span, feedback or PostHog event
    span_event: Any  # a span line's ``span_event`` (checked when mapped), else None
    created_ms: int | None  # when it was logged (``created``, else ``time``), if known


def json_object(line: str | bytes) -> dict[str, Any]:
    """One JSON line as an object; raises :class:`BadLine` when it is not one."""
    try:
        parsed = json.loads(line)
    except ValueError:
        raise BadLine("not_json") from None
    if not isinstance(parsed, dict):
        raise BadLine("not_an_object")
    return parsed


def record_line(line: Mapping[str, Any]) -> RecordLine | None:
    """The record a JSON object stands for, read in the handler's order (span,
    feedback, PostHog event); None when it carries none of them."""
    created_ms = time_ms(line.get("created")) or time_ms(line.get("time"))
    if SPAN_ATTR in line:
        return RecordLine(SPAN_ATTR, line[SPAN_ATTR], line.get(SPAN_EVENT_ATTR), created_ms)
    for attr in (FEEDBACK_ATTR, POSTHOG_EVENT_ATTR):
        if attr in line:
            return RecordLine(attr, line[attr], None, created_ms)
    return None
