"""Property-based: arbitrary values as span, span_event and feedback never hurt.

The logging call never raises (with ``logging.raiseExceptions`` on), the
listener survives, a valid span logged afterwards is delivered, and every
record is accounted for: mapped, or dropped and counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .test_handler import tool_span


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    __repr__ = __str__


def _cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {"id": "c", "traceId": "t"}
    value["self"] = value
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=20),
    st.just(math.nan),
    st.just("x" * 100_000),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.timezone(dt.timedelta(hours=5, minutes=30)))),
    st.builds(BadStr),
    st.builds(_cyclic),
    st.builds(object),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)
span_keys = st.sampled_from(
    [
        "id",
        "traceId",
        "parentSpanId",
        "name",
        "type",
        "startTime",
        "endTime",
        "attributes",
        "metadata",
        "input",
        "output",
        "errorInfo",
        "isEvent",
        "isRootSpan",
        "tags",
    ]
)
spans = st.one_of(values, st.dictionaries(span_keys, values, max_size=15))
span_events = st.one_of(
    st.none(), st.sampled_from(["span_started", "span_updated", "span_ended", "SPAN_ENDED"]), values
)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared_handler(shared_server: CaptureServer) -> Iterator[PosthogLogHandler]:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=shared_server.url, flush_at=50)
    yield handler
    handler.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(span=spans, span_event=span_events, feedback=values)
def test_arbitrary_records_never_raise_and_are_accounted_for(
    shared_handler: PosthogLogHandler, span: Any, span_event: Any, feedback: Any
) -> None:
    log = span_logger("test.properties", shared_handler)
    previous = logging.raiseExceptions
    logging.raiseExceptions = True
    try:
        log.info("span", extra={"span": span, "span_event": span_event})
        log.info("feedback", extra={"feedback": feedback})
    finally:
        logging.raiseExceptions = previous


def test_listener_survives_and_delivers_after_the_storm(
    shared_handler: PosthogLogHandler, shared_server: CaptureServer
) -> None:
    log = span_logger("test.properties", shared_handler)
    log.info("good", extra={"span": tool_span(424242)})
    shared_handler.flush()
    stats = shared_handler.stats()
    assert stats["listener_alive"] is True
    assert any(e["properties"].get("$ai_span_id") == f"{424242:016x}" for e in shared_server.events)
    # Every record was queued (None values are no span at all: ignored), and each
    # became events (starts and updates make none) or was dropped and counted.
    assert stats["received"] + stats["ignored"] >= 601
    assert sum(stats["dropped"].values()) > 0
    assert "internal_error" not in stats["dropped"]
    assert "emit_error" not in stats["dropped"]
