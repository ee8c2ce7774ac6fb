"""Property-based: arbitrary values as span, span_event and feedback never hurt.

The logging call never raises (with ``logging.raiseExceptions`` on), the
listener survives, a valid span logged afterwards is delivered, and every
record is accounted for: mapped, or dropped and counted.  The strategies mix
arbitrary values with spans and feedback that carry the ids the mapping needs
(and arbitrary values everywhere else), so events are built, and checked, in a
good share of the examples: the test counts them and insists on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .helpers import tool_span


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
#: Ids as the mapping takes them (text that identifies), and times it parses.
ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=32)
times = st.one_of(
    st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.floats(min_value=0, max_value=4e9),
    st.just("2025-01-01T00:00:00.000Z"),
)
#: Spans with the ids and start time a span event needs, and anything in the other
#: fields (an unparseable endTime, say, still makes it a counted drop).
valid_spans = st.fixed_dictionaries(
    {"id": ids, "traceId": ids, "startTime": times},
    optional={
        "parentSpanId": st.one_of(ids, values),
        "name": values,
        "type": st.one_of(
            st.sampled_from(["agent_run", "model_generation", "tool_call", "generic"]), values
        ),
        "endTime": times,
        "attributes": values,
        "metadata": st.one_of(st.fixed_dictionaries({}, optional={"userId": values}), values),
        "input": values,
        "output": values,
        "errorInfo": values,
        "isEvent": st.booleans(),
        "isRootSpan": st.one_of(st.booleans(), values),
        "tags": values,
    },
)
spans = st.one_of(values, st.dictionaries(span_keys, values, max_size=15), valid_spans)
span_events = st.one_of(
    st.none(), st.sampled_from(["span_started", "span_updated", "span_ended", "SPAN_ENDED"]), values
)
#: A span record: anything as span and span_event, or (half the time) a valid span
#: logged as started or ended.
span_records = st.one_of(
    st.tuples(spans, span_events),
    st.tuples(valid_spans, st.sampled_from([None, "span_started", "span_ended"])),
)
#: Feedback with a trace id, and anything in the other fields.
valid_feedback = st.fixed_dictionaries(
    {"traceId": ids},
    optional=dict.fromkeys(
        ("value", "comment", "metadata", "timestamp", "feedbackId", "source"), values
    ),
)
#: Two valid feedbacks to one arbitrary value.
feedbacks = st.one_of(valid_feedback, valid_feedback, values)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[CaptureServer]:
    """One server for every example (each example clears it and closes its handler)."""
    with CaptureServer() as server:
        yield server


def log_strictly(log: logging.Logger, span: Any, span_event: Any, feedback: Any) -> None:
    """Log one span record and one feedback record with ``logging.raiseExceptions`` on."""
    previous = logging.raiseExceptions
    logging.raiseExceptions = True
    try:
        log.info("span", extra={"span": span, "span_event": span_event})
        log.info("feedback", extra={"feedback": feedback})
    finally:
        logging.raiseExceptions = previous


#: Drop reasons a bad record may cause; anything else is a bug in the handler.
RECORD_DROPS = {"invalid_span", "invalid_feedback"}


#: Examples drawn: each builds, logs and closes a handler of its own.
EXAMPLES = 200
#: The share of examples that must build a span event, and a feedback event: a
#: strategy that stopped making them would leave the checks below with nothing to check.
MIN_BUILT_SHARE = 0.2


def test_arbitrary_records_never_raise_and_are_accounted_for(
    shared_server: CaptureServer,
) -> None:
    built: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(span_record=span_records, feedback=feedbacks)
    def check(span_record: tuple[Any, Any], feedback: Any) -> None:
        span, span_event = span_record
        shared_server.clear()
        handler = PosthogLogHandler(api_key=DUMMY_KEY, host=shared_server.url, flush_at=50)
        try:
            # Never raise: an exception out of emit() would propagate from here.
            log_strictly(span_logger("test.properties", handler), span, span_event, feedback)
        finally:
            handler.close()  # aborts open spans and delivers everything
        stats = handler.stats()
        events = shared_server.events
        dropped = stats["dropped"]
        # Every record reached the listener (None is no span/feedback at all: ignored) ...
        queued = (span is not None) + (feedback is not None)
        assert (stats["received"], stats["ignored"]) == (queued, 2 - queued)
        assert set(dropped) <= RECORD_DROPS, dropped
        # ... and every event built was delivered: nothing lost on the way.
        assert stats.get("mapped", 0) == stats.get("sent", 0) == len(events)
        feedback_events = [e for e in events if e["event"] == "$ai_feedback"]
        span_events_sent = len(events) - len(feedback_events)
        rejected_feedback = dropped.get("invalid_feedback", 0)
        rejected_span = dropped.get("invalid_span", 0)
        # The feedback became one event or one counted drop.
        assert len(feedback_events) + rejected_feedback == (feedback is not None)
        # The span became its event(s) (a root generation makes two) or one counted drop;
        # only a span_updated of a valid span is ignored by design (mapping-spec §1.2).
        assert rejected_span <= 1 and span_events_sent <= 2
        if span is None:
            assert span_events_sent + rejected_span == 0
        elif span_event != "span_updated":
            assert (span_events_sent > 0) != (rejected_span == 1)
        for kind, count in (("span", span_events_sent), ("feedback", len(feedback_events))):
            if count:
                built[kind] += 1
                event(f"{kind} event built")

    check()
    # Hypothesis draws more than EXAMPLES when it shrinks, never fewer on success.
    assert built["span"] >= MIN_BUILT_SHARE * EXAMPLES, built
    assert built["feedback"] >= MIN_BUILT_SHARE * EXAMPLES, built


NASTY_VALUES: list[Any] = [
    BadStr(),
    _cyclic(),
    math.nan,
    "x" * 100_000,
    object(),
    b"\xff\xfe",
    [BadStr(), _cyclic()],
    {"id": BadStr(), "traceId": "t"},
    {"id": "s", "traceId": "t", "startTime": BadStr(), "endTime": "soon"},
    {
        "id": "s",
        "traceId": "t",
        "parentSpanId": _cyclic(),
        "type": BadStr(),
        "startTime": math.inf,
        "attributes": _cyclic(),
        "metadata": {"userId": BadStr(), "sessionId": _cyclic()},
        "input": BadStr(),
        "output": _cyclic(),
        "errorInfo": BadStr(),
        "tags": [BadStr(), None, _cyclic()],
    },
    {"id": "s", "traceId": "t", "isEvent": True, "isRootSpan": BadStr(), "input": object()},
]


def test_listener_survives_and_delivers_after_a_storm_of_bad_records(
    capture_server: CaptureServer,
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, flush_at=50)
    log = span_logger("test.properties.storm", handler)
    try:
        storm = [
            (value, span_event, value)
            for value in NASTY_VALUES
            for span_event in (None, "span_started", "span_ended", "bogus", BadStr())
        ]
        for span, span_event, feedback in storm:
            log_strictly(log, span, span_event, feedback)
        log.info("good", extra={"span": tool_span(424242)})
        handler.flush()
        stats = handler.stats()
    finally:
        handler.close()
    assert stats["listener_alive"] is True
    assert stats["received"] == 2 * len(storm) + 1
    assert any(
        e["properties"].get("$ai_span_id") == f"{424242:016x}" for e in capture_server.events
    )
    assert set(stats["dropped"]) <= RECORD_DROPS, stats["dropped"]
    assert stats.get("mapped", 0) == stats.get("sent", 0)
    feedback_sent = sum(e["event"] == "$ai_feedback" for e in capture_server.events)
    assert feedback_sent + stats["dropped"]["invalid_feedback"] == len(storm)
