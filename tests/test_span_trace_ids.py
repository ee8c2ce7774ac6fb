"""A span whose trace id, id or parent id has no text is dropped in default mode (spans with
such ids would share one made-up id and one event uuid), sent as js-string in compat."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.mapping import RecordRejected

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .helpers import TRACE, mapper, run, span


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("no text")


UNUSABLE = [BrokenStr(), object(), {"id": "t"}, ["t"], b"t", True, math.inf]


@pytest.mark.parametrize("value", UNUSABLE, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize("span_event", ["span_started", "span_ended"])
def test_default_mode_rejects_a_span_whose_trace_id_has_no_text(
    value: Any, span_event: str
) -> None:
    with pytest.raises(RecordRejected, match=r"trace id \(a \w+\) has no text"):
        run(mapper(), (span_event, span("1" * 16, traceId=value)))


@pytest.mark.parametrize(
    ("value", "text"),
    [({"id": "t"}, "[object Object]"), (["t", None, 2], "t,,2"), (True, "true"), (4.0, "4")],
)
def test_compat_mode_sends_js_string_of_the_trace_id_like_mastra(value: Any, text: str) -> None:
    (event,) = run(mapper(True), ("span_ended", span("1" * 16, traceId=value)))
    assert event["properties"]["$ai_trace_id"] == text


@pytest.mark.parametrize(
    "value", [BrokenStr(), object(), b"t", {"t"}], ids=lambda value: type(value).__name__
)
def test_compat_mode_never_makes_up_a_trace_id_javascript_would_not_have(value: Any) -> None:
    """JavaScript has no such value: its Python text is a placeholder or an address."""
    with pytest.raises(RecordRejected, match=r"trace id \(a \w+\) has no text"):
        run(mapper(True), ("span_ended", span("1" * 16, traceId=value)))


def test_unusable_span_trace_id_is_counted_and_logged_not_sent(
    capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    log = span_logger("test.span_trace_ids", handler)
    log.info("bad", extra={"span": span("1" * 16, traceId={"id": "t"})})
    log.info("good", extra={"span": span("2" * 16)})
    handler.close()
    assert [e["properties"]["$ai_trace_id"] for e in capture_server.events] == [TRACE]
    assert handler.stats()["dropped"] == {"invalid_span": 1}
    errors = library_logs.messages(logging.ERROR)
    assert len(errors) == 1
    assert "trace id (a dict) has no text" in errors[0]


@pytest.mark.parametrize("value", UNUSABLE, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize(("key", "what"), [("id", "id"), ("parentSpanId", "parent id")])
def test_default_mode_rejects_a_span_whose_id_or_parent_id_has_no_text(
    value: Any, key: str, what: str
) -> None:
    with pytest.raises(RecordRejected, match=rf"its {what} \(a \w+\) has no text"):
        run(mapper(), ("span_ended", span("1" * 16, **{key: value})))


def test_compat_mode_sends_js_string_of_span_and_parent_ids_like_mastra() -> None:
    (event,) = run(
        mapper(True), ("span_ended", span("1" * 16, id={"id": 1}, parentSpanId=["p", 2]))
    )
    assert event["properties"]["$ai_span_id"] == "[object Object]"
    assert event["properties"]["$ai_parent_id"] == "p,2"


def test_spans_with_unusable_ids_are_counted_not_sent_under_one_made_up_id(
    capture_server: CaptureServer, library_logs: RecordCollector
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    log = span_logger("test.span_ids", handler)
    log.info("bad", extra={"span": span("1" * 16, id={"n": 1})})
    log.info("bad", extra={"span": span("2" * 16, id={"n": 2})})
    log.info("bad", extra={"span": span("3" * 16, parentSpanId=object())})
    log.info("good", extra={"span": span("4" * 16)})
    handler.close()
    assert [e["properties"]["$ai_span_id"] for e in capture_server.events] == ["4" * 16]
    assert handler.stats()["dropped"] == {"invalid_span": 3}
    errors = library_logs.messages(logging.ERROR)
    assert sum("its id (a dict) has no text" in error for error in errors) == 2
    assert sum("its parent id (a object) has no text" in error for error in errors) == 1
