"""Default mode (mapping-spec Part 2): one test per deliberate improvement.

Each test builds the same span in compat mode too, so it shows both what the
upstream exporter does and what the default mode does instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from posthog_logging.mapping import Event

from .helpers import NOW_MS, ROOT, TRACE, generation, mapper, root, run, span


def only(events: list[Event], name: str) -> dict[str, Any]:
    matching = [event for event in events if event["event"] == name]
    assert len(matching) == 1, [event["event"] for event in events]
    properties: dict[str, Any] = matching[0]["properties"]
    return properties


def test_a_generations_carry_span_id_and_name() -> None:
    for compat, expected in ((True, False), (False, True)):
        props = only(run(mapper(compat), ("span_ended", generation())), "$ai_generation")
        assert ("$ai_span_id" in props) is expected
        assert props["$ai_generation_id"] == "2" * 16
    props = only(run(mapper(), ("span_ended", generation())), "$ai_generation")
    assert props["$ai_span_id"] == "2" * 16
    assert props["$ai_span_name"] == "span " + "2" * 16


def test_b_root_generation_keeps_model_and_tokens_and_trace_gets_latency() -> None:
    root_generation = span(
        ROOT,
        type="model_generation",
        isRootSpan=True,
        input="hi",
        output="hello",
        attributes={"model": "gpt-4o", "provider": "openai", "usage": {"inputTokens": 9}},
    )
    compat_events = run(mapper(True), ("span_ended", root_generation))
    assert [e["event"] for e in compat_events] == ["$ai_trace"]

    events = run(mapper(), ("span_ended", root_generation))
    assert [e["event"] for e in events] == ["$ai_generation", "$ai_trace"]
    gen = events[0]["properties"]
    assert gen["$ai_model"] == "gpt-4o"
    assert gen["$ai_input_tokens"] == 9
    assert gen["$ai_latency"] == 2.5
    assert gen["$ai_input"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "$ai_parent_id" not in gen
    assert events[1]["properties"]["$ai_latency"] == 2.5
    assert events[0]["uuid"] != events[1]["uuid"]


def test_b_trace_latency_omitted_without_start_time() -> None:
    events = run(mapper(), ("span_ended", root(startTime=None)))
    assert "$ai_latency" not in only(events, "$ai_trace")


def test_c_passthrough_never_overwrites_library_keys() -> None:
    tool = span(
        "3" * 16,
        type="tool_call",
        parentSpanId=ROOT,
        attributes={"$ai_span_id": "evil", "shared": "attribute", "only_attr": 1},
        metadata={
            "$ai_latency": 999,
            "$ai_total_cost_usd": 5,
            "$groups": {"company": "c1"},
            "shared": "metadata",
            "error_message": "meta",
        },
        errorInfo={"message": "real error"},
    )
    compat = only(run(mapper(True), ("span_ended", tool)), "$ai_span")
    assert compat["$ai_span_id"] == "evil"
    assert compat["$ai_latency"] == 999
    assert compat["error_message"] == "meta"

    props = only(run(mapper(), ("span_ended", tool)), "$ai_span")
    assert props["$ai_span_id"] == "3" * 16
    assert props["$ai_latency"] == 2.5
    assert props["error_message"] == "real error"
    assert props["$ai_total_cost_usd"] == 5  # (l) revised: not library-owned, so it passes
    assert props["$groups"] == {"company": "c1"}
    assert props["shared"] == "metadata"  # tags < attributes < metadata
    assert props["only_attr"] == 1


def test_c_tags_lose_to_metadata_and_library_on_the_trace() -> None:
    trace = root(tags=["beta", "$ai_trace_id", "tier"], metadata={"tier": "pro"})
    props = only(run(mapper(), ("span_ended", trace)), "$ai_trace")
    assert props["beta"] is True
    assert props["tier"] == "pro"
    assert props["$ai_trace_id"] == TRACE


def test_d_event_span_parent_follows_the_root_rule() -> None:
    event_span = span("4" * 16, isEvent=True, parentSpanId=ROOT, endTime=None)
    steps = (("span_started", root()), ("span_ended", event_span))
    compat = only(run(mapper(True), *steps), "$ai_span")
    assert compat["$ai_parent_id"] == ROOT
    props = only(run(mapper(), *steps), "$ai_span")
    assert props["$ai_parent_id"] == TRACE
    assert props["$ai_latency"] == 0


def test_e_time_to_first_token_in_seconds() -> None:
    gen = generation(completionStartTime="2025-01-01T00:00:00.350Z")
    assert "$ai_time_to_first_token" not in only(
        run(mapper(True), ("span_ended", gen)), "$ai_generation"
    )
    props = only(run(mapper(), ("span_ended", gen)), "$ai_generation")
    assert props["$ai_time_to_first_token"] == 0.35


def test_f_reasoning_tokens_and_usd_costs() -> None:
    attributes = {
        "usage": {"inputTokens": 100.0, "outputTokens": 50, "outputDetails": {"reasoning": 20}},
        "costContext": {
            "estimatedCost": 0.0125,
            "inputCost": 0.01,
            "outputCost": 0.0025,
            "costUnit": "USD",
        },
    }
    compat = only(run(mapper(True), ("span_ended", generation(**attributes))), "$ai_generation")
    assert "$ai_reasoning_tokens" not in compat and "$ai_total_cost_usd" not in compat

    props = only(run(mapper(), ("span_ended", generation(**attributes))), "$ai_generation")
    assert props["$ai_reasoning_tokens"] == 20
    assert props["$ai_input_tokens"] == 100 and isinstance(props["$ai_input_tokens"], int)
    assert props["$ai_total_cost_usd"] == 0.0125
    assert props["$ai_input_cost_usd"] == 0.01
    assert props["$ai_output_cost_usd"] == 0.0025


@pytest.mark.parametrize(
    "cost_context",
    [
        {"estimatedCost": 1.0, "costUnit": "EUR"},
        {"estimatedCost": True},
        {"estimatedCost": float("nan")},
        {"estimatedCost": "1.0"},
    ],
)
def test_f_costs_not_mapped_unless_finite_usd_numbers(cost_context: dict[str, Any]) -> None:
    props = only(
        run(mapper(), ("span_ended", generation(costContext=cost_context))), "$ai_generation"
    )
    assert "$ai_total_cost_usd" not in props


def test_g_no_fake_person_for_spans_traces_and_feedback() -> None:
    compat = run(mapper(True), ("span_ended", root()))
    assert compat[0]["distinct_id"] == "anonymous"

    events = run(mapper(), ("span_ended", generation()), ("span_ended", root()))
    for event in events:
        assert event["distinct_id"] == TRACE
        assert event["properties"]["$process_person_profile"] is False
    feedback = mapper().map_feedback({"traceId": TRACE, "value": 1}, NOW_MS)
    assert feedback["distinct_id"] == TRACE
    assert feedback["properties"]["$process_person_profile"] is False

    with_default = run(mapper(default_distinct_id="svc"), ("span_ended", root()))
    assert with_default[0]["distinct_id"] == "svc"
    assert "$process_person_profile" not in with_default[0]["properties"]


def test_h_stop_reason_from_finish_reason() -> None:
    props = only(run(mapper(), ("span_ended", generation(finishReason="stop"))), "$ai_generation")
    assert props["$ai_stop_reason"] == "stop"
    for reason in ("", None, 3):
        props = only(
            run(mapper(), ("span_ended", generation(finishReason=reason))), "$ai_generation"
        )
        assert "$ai_stop_reason" not in props


def test_feedback_without_timestamp_uses_now() -> None:
    compat = mapper(True).map_feedback({"traceId": TRACE, "value": 1}, NOW_MS)
    assert compat["timestamp"] is None
    event = mapper().map_feedback({"traceId": TRACE, "value": 1}, NOW_MS)
    assert event["timestamp"] == "2025-01-01T00:01:00.000Z"


def test_default_mode_omits_non_numeric_token_counts() -> None:
    attributes = {"usage": {"inputTokens": None, "outputTokens": True}}
    compat = only(run(mapper(True), ("span_ended", generation(**attributes))), "$ai_generation")
    assert compat["$ai_input_tokens"] is None and compat["$ai_output_tokens"] is True
    props = only(run(mapper(), ("span_ended", generation(**attributes))), "$ai_generation")
    assert "$ai_input_tokens" not in props and "$ai_output_tokens" not in props


@pytest.mark.parametrize("compat", [True, False])
def test_privacy_mode_strips_content_whatever_set_it(compat: bool) -> None:
    private = mapper(compat, privacy_mode=True)
    tool = span(
        "5" * 16,
        parentSpanId=ROOT,
        input="secret",
        output="secret",
        metadata={"$ai_input": "secret via metadata"},
    )
    gen = generation(model="m")
    gen.update(input="secret prompt", output="secret reply")
    events = run(
        private,
        ("span_ended", tool),
        ("span_ended", gen),
        ("span_ended", root(input="q", output="a")),
    )
    for event in events:
        for key in ("$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state"):
            assert key not in event["properties"]
    assert only(events, "$ai_generation")["$ai_model"] == "m"


def test_event_uuid_is_deterministic_per_trace_span_and_event() -> None:
    first = run(mapper(), ("span_ended", generation()))[0]
    again = run(mapper(), ("span_ended", generation()))[0]
    other = run(mapper(), ("span_ended", span("6" * 16, parentSpanId=ROOT)))[0]
    assert first["uuid"] == again["uuid"]
    assert first["uuid"] != other["uuid"]


# ------------------------------------------------- Part 2 (i)-(n), both modes


def test_i_cache_flag_only_in_default_mode() -> None:
    usage = {"input_tokens": 30, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 4}
    attributes = {"provider": "anthropic", "usage": usage}
    compat = only(run(mapper(True), ("span_ended", generation(**attributes))), "$ai_generation")
    assert "$ai_input_tokens" not in compat  # Mastra reads its own shape only
    assert "$ai_cache_reporting_exclusive" not in compat
    props = only(run(mapper(), ("span_ended", generation(**attributes))), "$ai_generation")
    assert props["$ai_input_tokens"] == 44
    assert props["$ai_cache_read_input_tokens"] == 10
    assert props["$ai_cache_creation_input_tokens"] == 4
    assert props["$ai_cache_reporting_exclusive"] is False


def test_j_openai_chat_tools_emptied_only_in_compat_mode() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    compat = only(run(mapper(True), ("span_ended", generation(tools=[tool]))), "$ai_generation")
    assert compat["$ai_tools"] == [{"type": "function", "function": {}}]
    props = only(run(mapper(), ("span_ended", generation(tools=[tool]))), "$ai_generation")
    assert props["$ai_tools"] == [tool]
    tool_map = {"f": {"description": "d"}}
    compat = only(run(mapper(True), ("span_ended", generation(tools=tool_map))), "$ai_generation")
    assert "$ai_tools" not in compat


@pytest.mark.parametrize(
    ("error_info", "message"),
    [({"message": "boom", "id": "X"}, "boom"), ("plain text", "plain text"), ({}, "{}")],
)
def test_k_error_string_on_every_event_in_default_mode(error_info: Any, message: str) -> None:
    steps = [
        ("span_started", root()),
        ("span_ended", span("3" * 16, parentSpanId=ROOT, errorInfo=error_info)),
        ("span_ended", generation() | {"errorInfo": error_info}),
        ("span_ended", root(errorInfo=error_info)),
    ]
    for props in (event["properties"] for event in run(mapper(), *steps)):
        assert props["$ai_is_error"] is True
        assert props["$ai_error"] == message
    compat = run(mapper(True), *steps)
    assert [("$ai_error" in e["properties"]) for e in compat] == [False, False, True]


def test_l_m_dollar_keys_pass_and_model_parameters_only_in_default_mode() -> None:
    meta = {"$session_id": "s", "$ai_model_parameters": {"x": 1}, "$other": 1}
    params = {"temperature": 0.5, "seed": 3}
    spans_ = (
        generation(parameters=params) | {"metadata": meta},
        span("3" * 16, metadata=meta),
    )
    for event in run(mapper(), *(("span_ended", s) for s in spans_)):
        props = event["properties"]
        assert props["$session_id"] == "s"
        assert props["$other"] == 1  # (l) revised: every $ key but the library's passes
    generation_props = only(run(mapper(), ("span_ended", spans_[0])), "$ai_generation")
    assert generation_props["$ai_model_parameters"] == params
    compat = only(run(mapper(True), ("span_ended", spans_[0])), "$ai_generation")
    assert compat["$ai_model_parameters"] == {"x": 1}  # metadata passthrough, as upstream


def test_n_embedding_event_only_in_default_mode() -> None:
    embedding = span(
        "4" * 16,
        type="model_embedding",
        parentSpanId=ROOT,
        input="text",
        output=[0.1],
        attributes={"model": "e", "usage": {"inputTokens": 3}, "extra": 1},
    )
    steps = [("span_started", root()), ("span_ended", embedding)]
    compat = only(run(mapper(True), *steps), "$ai_span")
    assert compat["extra"] == 1
    props = only(run(mapper(), *steps), "$ai_embedding")
    assert props["$ai_input"] == "text"
    assert props["$ai_input_tokens"] == 3
    assert props["$ai_parent_id"] == TRACE
    assert props["$ai_model"] == "e" and props["$ai_provider"] == "unknown-provider"
    assert "extra" not in props and "$ai_output_choices" not in props
    root_embedding = span(ROOT, type="model_embedding", isRootSpan=True, input="t")
    events = run(mapper(), ("span_ended", root_embedding))
    assert [e["event"] for e in events] == ["$ai_embedding", "$ai_trace"]
    assert "$ai_parent_id" not in events[0]["properties"]
