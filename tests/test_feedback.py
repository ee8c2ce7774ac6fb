"""Feedback whose trace id has no text is dropped with a reason by default, never sent with a
made-up id; compat mode sends js-string of it, as Mastra does (§1.13)."""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.mapping import RecordRejected
from posthog_logging.values import id_text

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .helpers import NOW_MS, TRACE, mapper


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("no text")


class TraceKey:
    """An id type of the application's own: its text is the id."""

    def __str__(self) -> str:
        return "trace-key-7"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (TRACE, TRACE),
        (42, "42"),
        (4.0, "4"),
        (1.5, "1.5"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (TraceKey(), "trace-key-7"),
    ],
)
def test_feedback_trace_ids_with_text_are_sent_as_that_text(value: Any, text: str) -> None:
    assert id_text(value) == text
    event = mapper().map_feedback({"traceId": value, "value": 1}, NOW_MS)
    assert event["properties"]["$ai_trace_id"] == text


@pytest.mark.parametrize(
    "value",
    [
        BrokenStr(),
        object(),
        {"id": "t"},
        ["t"],
        ("t",),
        {"t"},
        b"t",
        True,
        math.inf,
        TraceKey,  # the class, not an id: its text is a repr
    ],
    ids=lambda value: type(value).__name__,
)
def test_feedback_whose_trace_id_has_no_text_is_rejected_by_default(value: Any) -> None:
    with pytest.raises(RecordRejected, match=r"trace id \(a \w+\) has no text"):
        mapper().map_feedback({"traceId": value, "value": 1}, NOW_MS)


@pytest.mark.parametrize(
    ("value", "text"),
    [({"id": "t"}, "[object Object]"), (["t", None, 2], "t,,2"), (True, "true"), (4.0, "4")],
)
def test_compat_mode_sends_js_string_of_the_feedback_trace_id_like_mastra(
    value: Any, text: str
) -> None:
    event = mapper(True).map_feedback({"traceId": value, "value": 1}, NOW_MS)
    assert event["properties"]["$ai_trace_id"] == text
    assert event["distinct_id"] == "anonymous"  # §1.13: no user and no default distinct id


@pytest.mark.parametrize(
    "value", [BrokenStr(), object(), b"t", {"t"}], ids=lambda value: type(value).__name__
)
def test_compat_mode_never_makes_up_a_feedback_trace_id_javascript_would_not_have(
    value: Any,
) -> None:
    """JavaScript has no such value: its Python text is a placeholder or an address."""
    with pytest.raises(RecordRejected, match=r"trace id \(a \w+\) has no text"):
        mapper(True).map_feedback({"traceId": value, "value": 1}, NOW_MS)


def test_unusable_trace_id_is_counted_and_logged_not_sent(
    capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    log = span_logger("test.feedback", handler)
    log.info("bad", extra={"feedback": {"traceId": BrokenStr(), "value": 1}})
    log.info("good", extra={"feedback": {"traceId": TRACE, "value": 1}})
    handler.close()
    assert [e["properties"]["$ai_trace_id"] for e in capture_server.events] == [TRACE]
    assert handler.stats()["dropped"] == {"invalid_feedback": 1}
    errors = library_logs.messages(logging.ERROR)
    assert len(errors) == 1
    assert "trace id (a BrokenStr) has no text" in errors[0]
