"""loguru and structlog programs reach the handler, with the real libraries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

import posthog_logging as pl
from posthog_logging import PosthogLogHandler, SpanJsonFormatter
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger

TRACE = "7" * 32


def generation_span(span_id: str, **fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "id": span_id,
        "traceId": TRACE,
        "parentSpanId": "a" * 16,
        "name": "llm",
        "type": "model_generation",
        "startTime": "2025-01-01T00:00:00.000Z",
        "endTime": "2025-01-01T00:00:02.000Z",
        "attributes": {"model": "gpt-4o-mini", "usage": {"inputTokens": 3, "outputTokens": 4}},
        "metadata": {"userId": "u-1"},
    }
    span.update(fields)
    return span


ROOT = {
    "id": "a" * 16,
    "traceId": TRACE,
    "name": "agent",
    "type": "agent_run",
    "startTime": "2025-01-01T00:00:00.000Z",
    "isRootSpan": True,
    "metadata": {"userId": "u-1"},
}


@pytest.fixture
def handler(capture_server: CaptureServer) -> Iterator[PosthogLogHandler]:
    posthog = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    yield posthog
    posthog.close()


# ------------------------------------------------------------------- loguru


@pytest.fixture
def loguru_sink(handler: PosthogLogHandler) -> Iterator[PosthogLogHandler]:
    """The handler added to loguru as a standard-library sink, as loguru documents."""
    sink_id = loguru_logger.add(handler, format="{message}", level="INFO")
    yield handler
    loguru_logger.remove(sink_id)


def test_loguru_bound_spans_and_feedback_arrive(
    loguru_sink: PosthogLogHandler, capture_server: CaptureServer
) -> None:
    loguru_logger.bind(span=ROOT, span_event="span_started").info("agent start")
    loguru_logger.bind(span=generation_span("b" * 16)).info("llm call")
    loguru_logger.info("keyword form", span=generation_span("c" * 16))
    loguru_logger.bind(span={**ROOT, "endTime": "2025-01-01T00:00:03.000Z"}).info("agent end")
    loguru_logger.bind(feedback={"traceId": TRACE, "value": 1, "userId": "u-1"}).info("fb")
    loguru_logger.info("just a log line")
    loguru_sink.flush()
    events = capture_server.events
    assert sorted(e["event"] for e in events) == [
        "$ai_feedback",
        "$ai_generation",
        "$ai_generation",
        "$ai_trace",
    ]
    generation = next(e for e in events if e["event"] == "$ai_generation")
    assert generation["properties"]["$ai_parent_id"] == TRACE  # the root was seen starting
    assert generation["properties"]["$ai_output_tokens"] == 4
    assert loguru_sink.stats()["ignored"] == 1


def test_loguru_bound_tracing_api_span_and_posthog_event(
    loguru_sink: PosthogLogHandler, capture_server: CaptureServer
) -> None:
    quiet = logging.getLogger("test.loguru.quiet")
    quiet.setLevel(logging.WARNING)  # the span's own records stay off: only loguru logs it
    span = pl.Span("step", logger=quiet)
    span.end()
    loguru_logger.bind(span=span).info("tracing API span object")
    event = {"event": "$ai_embedding", "properties": {"$ai_model": "e-3", "$ai_trace_id": "t"}}
    loguru_logger.bind(posthog_event=event).info("ready event")
    loguru_sink.flush()
    assert sorted(e["event"] for e in capture_server.events) == ["$ai_embedding", "$ai_trace"]


def test_a_record_attribute_wins_over_loguru_extra(
    handler: PosthogLogHandler, capture_server: CaptureServer
) -> None:
    logger = span_logger("test.loguru.attribute", handler)
    logger.info("both", extra={"span": generation_span("d" * 16), "extra": {"span": "not a span"}})
    handler.flush()
    assert [e["event"] for e in capture_server.events] == ["$ai_generation"]


def test_span_json_formatter_as_a_loguru_sink() -> None:
    stream = io.StringIO()
    json_handler = logging.StreamHandler(stream)
    json_handler.setFormatter(SpanJsonFormatter())
    sink_id = loguru_logger.add(json_handler, format="{message}", level="INFO")
    try:
        loguru_logger.bind(span=generation_span("e" * 16)).info("llm call")
    finally:
        loguru_logger.remove(sink_id)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["span"]["id"] == "e" * 16 and line["span_event"] == "span_ended"


# ---------------------------------------------------------------- structlog


@pytest.fixture
def structlog_logger(handler: PosthogLogHandler) -> Iterator[Any]:
    """structlog configured as the README shows: stdlib loggers, render_to_log_kwargs."""
    span_logger("test.structlog", handler)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    yield structlog.get_logger("test.structlog")
    structlog.reset_defaults()


def test_structlog_keyword_spans_and_feedback_arrive(
    structlog_logger: Any, handler: PosthogLogHandler, capture_server: CaptureServer
) -> None:
    structlog_logger.info("agent start", span=ROOT, span_event="span_started")
    structlog_logger.info("llm", span=generation_span("b" * 16))
    structlog_logger.bind(request_id="r-1").info("llm again", span=generation_span("c" * 16))
    structlog_logger.info("agent end", span={**ROOT, "endTime": "2025-01-01T00:00:03.000Z"})
    structlog_logger.info("thumbs up", feedback={"traceId": TRACE, "value": 1})
    structlog_logger.info("plain line", user="u-1")
    handler.flush()
    events = capture_server.events
    assert sorted(e["event"] for e in events) == [
        "$ai_feedback",
        "$ai_generation",
        "$ai_generation",
        "$ai_trace",
    ]
    assert {e["distinct_id"] for e in events if e["event"] != "$ai_feedback"} == {"u-1"}
    assert handler.stats()["ignored"] == 1


def test_structlog_with_a_tracing_api_span(
    structlog_logger: Any, handler: PosthogLogHandler, capture_server: CaptureServer
) -> None:
    with pl.span("agent", type="agent_run", logger="test.structlog") as root:
        structlog_logger.info("note", span=root.event_span_dict("note", "text", {}))
    handler.flush()
    events = capture_server.events
    assert sorted(e["event"] for e in events) == ["$ai_span", "$ai_trace"]
    note = next(e for e in events if e["event"] == "$ai_span")
    assert note["properties"]["$ai_parent_id"] == root.trace_id
