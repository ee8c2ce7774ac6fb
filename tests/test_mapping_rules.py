"""Compat rules of mapping-spec Part 1 that the public fixtures do not pin down."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_logging.contract import SpanEvent
from posthog_logging.mapping import EventMapper, MappingOptions, SpanRejected
from posthog_logging.mapping.messages import format_messages
from posthog_logging.mapping.state import TraceRegistry

from .helpers import NOW_MS, ROOT, TRACE, generation, root, run, span


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def compat_mapper(registry: TraceRegistry | None = None) -> tuple[EventMapper, list[SpanRejected]]:
    rejected: list[SpanRejected] = []
    return EventMapper(MappingOptions(mastra_compat=True), rejected.append, registry), rejected


def child(span_id: str = "3" * 16, **fields: Any) -> dict[str, Any]:
    return span(span_id, parentSpanId=ROOT, **fields)


def test_span_updated_is_ignored_and_end_twice_sends_twice() -> None:
    m, _ = compat_mapper()
    events = run(
        m,
        ("span_started", child()),
        ("span_updated", child(input="x")),
        ("span_ended", child()),
        ("span_ended", child()),
    )
    assert len(events) == 2 and events[0] == events[1]
    assert "$ai_input_state" not in events[0]["properties"]


def test_end_borrows_only_input_from_start_snapshot() -> None:
    m, _ = compat_mapper()
    start = child(input="question", metadata={"k": "start"})
    events = run(m, ("span_started", start), ("span_ended", child(metadata={"k": "end"})))
    props = events[0]["properties"]
    assert props["$ai_input_state"] == "question"
    assert props["k"] == "end"


def test_trace_user_comes_from_first_start_and_beats_default() -> None:
    m = EventMapper(MappingOptions(mastra_compat=True, default_distinct_id="svc"), print)
    events = run(
        m,
        ("span_started", root()),
        ("span_started", child(metadata={"userId": 7})),
        ("span_started", child("4" * 16, metadata={"userId": "later"})),
        ("span_ended", root()),
    )
    assert events[0]["distinct_id"] == "7"


def test_parent_id_is_trace_id_only_for_a_cached_root_parent() -> None:
    m, _ = compat_mapper()
    orphan = run(m, ("span_ended", child()))[0]["properties"]
    assert orphan["$ai_parent_id"] == ROOT
    m, _ = compat_mapper()
    linked = run(m, ("span_started", root()), ("span_ended", child()))[0]["properties"]
    assert linked["$ai_parent_id"] == TRACE
    no_parent = run(m, ("span_ended", span("9" * 16)))[0]["properties"]
    assert "$ai_parent_id" not in no_parent


def test_trace_state_forgotten_30_seconds_after_last_record() -> None:
    clock = FakeClock()
    m, _ = compat_mapper(TraceRegistry(clock=clock))
    run(m, ("span_started", root()), ("span_ended", root()))
    clock.now += 29.9
    m.traces.expire()
    assert run(m, ("span_ended", child()))[0]["properties"]["$ai_parent_id"] == TRACE
    clock.now += 29.9  # the child's end re-armed the timer
    m.traces.expire()
    assert len(m.traces) == 1
    clock.now += 0.2
    m.traces.expire()
    assert len(m.traces) == 0
    assert run(m, ("span_ended", child()))[0]["properties"]["$ai_parent_id"] == ROOT


def test_at_most_100_traces_wait_for_cleanup() -> None:
    m, _ = compat_mapper(TraceRegistry(clock=FakeClock()))
    for n in range(101):
        trace = f"{n:032x}"
        run(m, ("span_started", root(traceId=trace)), ("span_ended", root(traceId=trace)))
    assert len(m.traces) == 100
    assert m.traces.get(f"{0:032x}") is None


def test_trace_cap_aborts_the_oldest_open_trace() -> None:
    m, _ = compat_mapper(TraceRegistry(max_traces=3))
    events = []
    for n in range(4):
        events += run(m, ("span_started", root(traceId=f"{n:032x}", endTime=None)))
    assert len(events) == 1
    aborted = events[0]
    assert aborted["event"] == "$ai_trace"
    assert aborted["properties"]["$ai_trace_id"] == f"{0:032x}"
    assert aborted["properties"]["$ai_error"] == {
        "message": "Trace killed due to memory cap enforcement.",
        "id": "TRACE_CAP_EXCEEDED",
        "category": "SYSTEM",
    }
    assert aborted["timestamp"] == "2025-01-01T00:01:00.000Z"


def test_abort_on_close_in_order_of_first_start() -> None:
    m, _ = compat_mapper()
    run(
        m,
        ("span_started", root(endTime=None)),
        ("span_started", child(endTime=None)),
        ("span_started", root(endTime=None)),
    )
    events = m.abort_open_spans(NOW_MS)
    assert [e["event"] for e in events] == ["$ai_trace", "$ai_span"]
    assert events[1]["properties"]["error_id"] == "SHUTDOWN"
    assert events[1]["properties"]["$ai_latency"] == 60.0
    assert m.abort_open_spans(NOW_MS) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not a span", "not a mapping"),
        ({"traceId": TRACE}, "no id"),
        ({"id": "x"}, "no traceId"),
        (span("7" * 16, parentSpanId=ROOT, startTime=None), "no usable startTime"),
        (span("7" * 16, parentSpanId=ROOT, endTime="soon"), "unparseable endTime"),
    ],
)
def test_unbuildable_spans_are_rejected_with_a_reason(payload: Any, reason: str) -> None:
    m, _ = compat_mapper()
    with pytest.raises(SpanRejected, match=reason):
        m.map_span(payload, SpanEvent.ENDED, NOW_MS)


def test_rejected_span_still_counts_as_ended() -> None:
    m, _ = compat_mapper()
    bad = child(startTime=None, endTime=None)
    m.map_span(bad, SpanEvent.STARTED, NOW_MS)
    with pytest.raises(SpanRejected):
        m.map_span(bad, SpanEvent.ENDED, NOW_MS)
    assert m.abort_open_spans(NOW_MS) == []


def test_generation_defaults_and_tools() -> None:
    m, _ = compat_mapper()
    gen = generation(
        model="",
        tools=[{"type": "function", "name": "f", "extra": 1}, "x"],
        parameters={"temperature": 0},
        streaming=False,
    )
    props = run(m, ("span_ended", gen))[0]["properties"]
    assert props["$ai_model"] == "unknown-model"
    assert props["$ai_provider"] == "unknown-provider"
    assert props["$ai_tools"] == [{"type": "function", "function": {"name": "f"}}, "x"]
    assert props["$ai_temperature"] == 0
    assert props["$ai_stream"] is False


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"messages": "x"},
            [{"role": "user", "content": [{"type": "text", "text": '{"messages":"x"}'}]}],
        ),
        (
            {"text": "", "toolCalls": []},
            [{"role": "user", "content": [{"type": "text", "text": ""}]}],
        ),
        (
            [1, {"role": "u"}],
            [{"role": "user", "content": [{"type": "text", "text": '[1,{"role":"u"}]'}]}],
        ),
        ([], []),
        ([{"role": "tool", "content": None, "name": "x"}], [{"role": "tool", "content": None}]),
        (
            {"text": "t", "toolCalls": [{"toolCallId": "c", "toolName": "f", "args": {"a": 1}}]},
            [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "t"},
                        {
                            "type": "tool-call",
                            "id": "c",
                            "function": {"name": "f", "arguments": {"a": 1}},
                        },
                    ],
                }
            ],
        ),
        (5, [{"role": "user", "content": [{"type": "text", "text": "5"}]}]),
    ],
)
def test_message_formatting(data: Any, expected: Any) -> None:
    assert format_messages(data, "user", compat=True) == expected


def test_metadata_overwrites_everything_in_compat() -> None:
    m, _ = compat_mapper()
    gen = generation(model="m", usage={"inputTokens": 3})
    gen["metadata"] = {"$ai_model": "meta", "$ai_input_tokens": "x", "posthog": 1, "$groups": [1]}
    props = run(m, ("span_ended", gen))[0]["properties"]
    assert props["$ai_model"] == "meta"
    assert props["$ai_input_tokens"] == "x"
    assert props["posthog"] == 1
    assert props["$groups"] == [1]


def test_feedback_values_go_out_as_given_where_the_spec_says_so() -> None:
    m, _ = compat_mapper()
    event = m.map_feedback(
        {
            "traceId": 42,
            "comment": 5,
            "spanId": 7,
            "sourceId": ["s"],
            "value": None,
            "feedbackUserId": 0,
            "userId": "hidden",
            "feedbackSource": None,
            "source": "qa",
        },
        NOW_MS,
    )
    props = event["properties"]
    assert props["$ai_trace_id"] == "42"  # an id the library sets: a string
    assert props["$ai_feedback_text"] == 5  # comment ?? String(value): the comment as given
    assert props["span_id"] == 7 and props["source_id"] == ["s"]
    assert props["feedback_value"] is None and props["feedback_source"] == "qa"
    assert event["distinct_id"] == "anonymous"  # feedbackUserId 0 hides userId (bug kept)
    assert event["timestamp"] is None
    value_only = m.map_feedback({"traceId": "t", "value": 4.0}, NOW_MS)
    assert value_only["properties"]["$ai_feedback_text"] == "4"
    no_value = m.map_feedback({"traceId": "t"}, NOW_MS)
    assert no_value["properties"]["$ai_feedback_text"] == "undefined"
    assert "feedback_value" not in no_value["properties"]
