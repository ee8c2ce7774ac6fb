"""mask= and before_send= on built events: what each sees, what a failure costs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from posthog_logging.contract import CONTENT_PROPERTIES
from posthog_logging.redaction import OutgoingEvents
from posthog_logging.sampling import SAMPLE_RATE_PROPERTY, TraceSampler
from posthog_logging.stats import Stats

from .conftest import RecordCollector
from .helpers import (
    NOW_MS,
    ROOT,
    TRACE,
    generation,
    mapper,
    root,
    run,
    scrub_emails,
    span,
    trace_sample_position,
)


def content_events() -> list[dict[str, Any]]:
    """Every event kind the mapper builds, each carrying user content with an address."""
    secret = "mail bob@example.com"
    m = mapper()
    events = run(
        m,
        ("span_started", root(input=secret)),
        (
            "span_ended",
            generation(model="m", provider="p")
            | {
                "input": secret,
                "output": {
                    "text": secret,
                    "toolCalls": [
                        {"toolCallId": "c", "toolName": "send", "args": {"to": "bob@example.com"}}
                    ],
                },
            },
        ),
        (
            "span_ended",
            span(
                "3" * 16,
                type="tool_call",
                parentSpanId=ROOT,
                input={"to": "bob@example.com"},
                output=secret,
                errorInfo={"message": f"failed for {secret}"},
            ),
        ),
        ("span_ended", root(input=secret, output=secret, errorInfo={"message": secret})),
    )
    events.append(m.map_feedback({"traceId": TRACE, "value": 1, "comment": secret}, NOW_MS))
    wrapped = {"$ai_trace_id": TRACE, "$ai_instructions": secret, "$ai_output": secret}
    events.append(m.map_posthog_event({"event": "$ai_generation", "properties": wrapped}, NOW_MS))
    return events


def test_mask_sees_every_content_property_and_nothing_else() -> None:
    seen: list[Any] = []

    def mask(value: Any) -> Any:
        seen.append(value)
        return scrub_emails(value)

    events = content_events()
    before = {
        id(e): {k: v for k, v in e["properties"].items() if k not in CONTENT_PROPERTIES}
        for e in events
    }
    carried = sum(key in e["properties"] for e in events for key in CONTENT_PROPERTIES)
    out = OutgoingEvents(Stats(), mask=mask).filter(events)
    assert len(out) == len(events) and len(seen) == carried
    for event in out:
        text = repr(event)
        assert "bob@example.com" not in text, text
        others = {k: v for k, v in event["properties"].items() if k not in CONTENT_PROPERTIES}
        assert others == before[id(event)]  # ids, tokens, names: untouched
    names = {key for event in out for key in event["properties"] if key in CONTENT_PROPERTIES}
    # Prompts, responses (tool-call arguments inside), span input/output (tool
    # arguments and results), error messages and the feedback comment: all of them.
    assert names == set(CONTENT_PROPERTIES)


def test_mask_returning_none_removes_the_property_and_results_are_made_json_safe() -> None:
    events = [
        {
            "event": "$ai_span",
            "distinct_id": "d",
            "uuid": "u",
            "properties": {"$ai_input_state": "x", "$ai_output_state": "y"},
        }
    ]
    out = OutgoingEvents(
        Stats(), mask=lambda v: None if v == "x" else {"n": float("nan"), "s": {1, 2}}
    ).filter(events)
    assert out[0]["properties"] == {"$ai_output_state": {"n": None, "s": [1, 2]}}


def test_before_send_sees_the_batch_dict_and_may_change_or_drop_it() -> None:
    seen: list[dict[str, Any]] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(dict(event))
        if event["event"] == "$ai_feedback":
            return None
        event["properties"]["team"] = "search"
        return event

    stats = Stats()
    events = content_events()
    out = OutgoingEvents(stats, before_send=before_send).filter(events)
    assert {tuple(sorted(e)) for e in seen} == {
        ("distinct_id", "event", "properties", "timestamp", "uuid")
    }
    assert [e["event"] for e in out] == [e["event"] for e in events if e["event"] != "$ai_feedback"]
    assert all(e["properties"]["team"] == "search" for e in out)
    assert stats.snapshot()["filtered_out"] == 1
    assert stats.snapshot()["dropped"] == {}


def test_hooks_run_after_sampling_and_mask_before_before_send() -> None:
    order: list[str] = []
    kept_trace, dropped_trace = "t-kept", "t-out"
    rate = (trace_sample_position(kept_trace) + trace_sample_position(dropped_trace)) / 2
    if trace_sample_position(kept_trace) > rate:
        kept_trace, dropped_trace = dropped_trace, kept_trace

    def mask(value: Any) -> Any:
        order.append("mask")
        return "masked"

    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        order.append("before_send")
        assert event["properties"]["$ai_input_state"] == "masked"
        assert event["properties"][SAMPLE_RATE_PROPERTY] == rate
        return event

    stats = Stats()
    events = [
        {
            "event": "$ai_span",
            "distinct_id": "d",
            "properties": {"$ai_trace_id": trace, "$ai_input_state": "secret"},
        }
        for trace in (kept_trace, dropped_trace)
    ]
    out = OutgoingEvents(
        stats, sampler=TraceSampler(rate), mask=mask, before_send=before_send
    ).filter(events)
    assert [e["properties"]["$ai_trace_id"] for e in out] == [kept_trace]
    assert order == ["mask", "before_send"]  # the sampled-out event met neither hook
    assert stats.snapshot()["sampled_out"] == 1


def broken_mask(value: Any) -> Any:
    raise RuntimeError("mask bug")


def broken_before_send(event: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("before_send bug")


@pytest.mark.parametrize(
    ("hooks", "reason", "logged"),
    [
        ({"mask": broken_mask}, "mask_error", "mask (on $ai_input_state) raised RuntimeError"),
        ({"before_send": broken_before_send}, "before_send_error", "before_send raised KeyError"),
        ({"before_send": lambda e: "event"}, "before_send_error", "returned a str"),
        (
            {"before_send": lambda e: {**e, "properties": None}},
            "before_send_error",
            "whose 'properties' is not a dict",
        ),
        (
            {"before_send": lambda e: {**e, "distinct_id": ""}},
            "before_send_error",
            "whose 'distinct_id' is not a non-empty str",
        ),
    ],
)
def test_a_failing_hook_drops_that_event_counted_and_logs_one_error(
    hooks: dict[str, Any], reason: str, logged: str, library_logs: RecordCollector
) -> None:
    stats = Stats()
    outgoing = OutgoingEvents(stats, **hooks)
    events = [
        {"event": "$ai_span", "distinct_id": "d", "properties": {"$ai_input_state": n}}
        for n in range(3)
    ]
    assert outgoing.filter(events) == []
    assert stats.snapshot()["dropped"] == {reason: 3}
    errors = [r for r in library_logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert logged in errors[0].getMessage()
    assert reason in errors[0].getMessage()


def test_no_hooks_means_nothing_to_do() -> None:
    assert not OutgoingEvents(Stats()).active
    assert OutgoingEvents(Stats(), mask=scrub_emails).active


def test_privacy_mode_strips_one_list_of_content_from_every_event_kind() -> None:
    m = mapper()
    secret = "private"
    events = run(
        m,
        (
            "span_ended",
            span(
                "5" * 16,
                parentSpanId=ROOT,
                input=secret,
                errorInfo={"message": "failed"},
                metadata={"$ai_instructions": secret},
            ),
        ),
    )
    wrapped = {"$ai_trace_id": TRACE, "$ai_instructions": secret, "$ai_input": secret}
    events.append(m.map_posthog_event({"event": "$ai_generation", "properties": wrapped}, NOW_MS))
    events.append(m.map_feedback({"traceId": TRACE, "value": 1, "comment": "kept"}, NOW_MS))
    out = OutgoingEvents(Stats(), privacy_mode=True).filter(events)
    assert len(out) == 3 and secret not in repr(out)
    # Errors and feedback text are not content privacy mode removes.
    assert out[0]["properties"]["error_message"] == "failed"
    assert out[2]["properties"]["$ai_feedback_text"] == "kept"
