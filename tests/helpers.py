"""Builders shared by several test modules (fixtures live in conftest.py).

Test modules import these from here, never from one another, so each test
module can be run, moved or deleted on its own.
"""

from __future__ import annotations

import re
from typing import Any

from posthog_logging.contract import SpanEvent
from posthog_logging.mapping import Event, EventMapper, MappingOptions, SpanRejected

#: Trace of the mapper-level span builders below.
TRACE = "a" * 32
ROOT = "1" * 16
NOW_MS = 1_735_689_660_000  # 2025-01-01T00:01:00Z
#: Trace of :func:`tool_span`, the span the handler-level tests log.
TOOL_TRACE = "b" * 32


def mapper(compat: bool = False, **options: Any) -> EventMapper:
    """A mapper that keeps rejected aborts to itself."""
    rejected: list[SpanRejected] = []
    return EventMapper(MappingOptions(mastra_compat=compat, **options), rejected.append)


def span(span_id: str, **fields: Any) -> dict[str, Any]:
    """A complete non-root generic span of :data:`TRACE`, 2.5 s long."""
    base: dict[str, Any] = {
        "id": span_id,
        "traceId": TRACE,
        "name": f"span {span_id}",
        "type": "generic",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:02.500Z",
        "isEvent": False,
        "isRootSpan": False,
    }
    base.update(fields)
    return base


def root(**fields: Any) -> dict[str, Any]:
    return span(ROOT, type="agent_run", isRootSpan=True, **fields)


def generation(**attributes: Any) -> dict[str, Any]:
    return span("2" * 16, type="model_generation", parentSpanId=ROOT, attributes=attributes)


def run(m: EventMapper, *steps: tuple[str, dict[str, Any]]) -> list[Event]:
    """Feed ``(span_event, span)`` steps to ``m``; every event they produce."""
    events: list[Event] = []
    for span_event, payload in steps:
        events.extend(m.map_span(payload, SpanEvent(span_event), NOW_MS))
    return events


def tool_span(n: int, **fields: Any) -> dict[str, Any]:
    """The ``n``-th ended tool call of :data:`TOOL_TRACE` (span id ``n`` in hex)."""
    tool: dict[str, Any] = {
        "id": f"{n:016x}",
        "traceId": TOOL_TRACE,
        "parentSpanId": "f" * 16,
        "name": f"tool {n}",
        "type": "tool_call",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:01.000Z",
        "metadata": {"userId": "u"},
    }
    tool.update(fields)
    return tool


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_emails(value: Any) -> Any:
    """A typical ``mask``: e-mail addresses out of every string, at any depth."""
    if isinstance(value, str):
        return _EMAIL.sub("<email>", value)
    if isinstance(value, list):
        return [scrub_emails(item) for item in value]
    if isinstance(value, dict):
        return {key: scrub_emails(item) for key, item in value.items()}
    return value


def label_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """A typical ``before_send``: drop feedback, label everything else."""
    if event["event"] == "$ai_feedback":
        return None
    event["properties"]["labelled_by"] = "before_send"
    return event
