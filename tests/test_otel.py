"""posthog_logging.otel: OpenTelemetry GenAI spans → span records → PostHog events.

These tests build real SDK spans with the attributes each instrumentation family
writes, and need nothing but ``opentelemetry-sdk`` (tox ``lowest-otel`` runs them
against the oldest release the ``otel`` extra admits).  The end-to-end tests with
the real OpenAI instrumentation are in ``test_otel_openai.py``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Status, StatusCode

import posthog_logging as pl
from posthog_logging import PosthogLogHandler, SpanJsonFormatter
from posthog_logging.devserver import CaptureServer
from posthog_logging.otel import LoggingSpanProcessor

from .conftest import DUMMY_KEY, RecordCollector, span_logger
from .otel_helpers import Otel

# ------------------------------------------------------------------ fixtures


@pytest.fixture
def records() -> Iterator[RecordCollector]:
    collector = RecordCollector()
    span_logger("test.otel.records", collector)
    yield collector


@pytest.fixture
def otel(records: RecordCollector) -> Otel:
    return Otel(logging.getLogger("test.otel.records"))


def ended(records: RecordCollector) -> dict[str, dict[str, Any]]:
    """The span dicts of the ``span_ended`` records, by span name."""
    return {
        r.__dict__["span"]["name"]: r.__dict__["span"]
        for r in records.records
        if r.__dict__["span_event"] == "span_ended"
    }


def one_span(otel: Otel, records: RecordCollector, name: str, **attributes: Any) -> dict[str, Any]:
    with otel.tracer.start_as_current_span(name, attributes=attributes):
        pass
    return ended(records)[name]


# ----------------------------------------------------------- which spans go


def test_spans_without_ai_attributes_are_left_alone(otel: Otel, records: RecordCollector) -> None:
    tracer = otel.tracer
    with (
        tracer.start_as_current_span("http", attributes={"http.method": "GET"}),
        tracer.start_as_current_span("db"),
    ):
        pass
    assert records.records == []
    assert otel.processor.stats()["skipped"] == 2


def test_ancestors_of_an_ai_span_are_sent_as_plain_spans(
    otel: Otel, records: RecordCollector
) -> None:
    tracer = otel.tracer
    with tracer.start_as_current_span("request", attributes={"http.route": "/ask"}) as root:
        with tracer.start_as_current_span("unrelated"):
            pass
        with (
            tracer.start_as_current_span("step"),
            tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat"}),
        ):
            pass
    events = [(r.__dict__["span_event"], r.__dict__["span"]["name"]) for r in records.records]
    assert events == [
        ("span_started", "request"),
        ("span_ended", "chat m"),
        ("span_ended", "step"),
        ("span_ended", "request"),
    ]
    spans = ended(records)
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert spans["request"]["isRootSpan"] is True
    assert spans["request"]["attributes"] == {"http.route": "/ask"}
    assert spans["step"]["type"] == "generic"
    assert spans["step"]["parentSpanId"] == spans["request"]["id"]
    assert spans["chat m"]["parentSpanId"] == spans["step"]["id"]
    assert spans["chat m"]["type"] == "model_generation"
    assert {s["traceId"] for s in spans.values()} == {trace_id}
    assert otel.processor.stats() == {"logged": 3, "skipped": 1, "failed": 0, "untracked": 0}


def test_a_parent_that_ended_first_is_not_sent(otel: Otel, records: RecordCollector) -> None:
    parent = otel.tracer.start_span("fire and forget")
    child = otel.tracer.start_span(
        "gen_ai.task", context=trace.set_span_in_context(parent), attributes={"x": 1}
    )
    parent.end()
    child.end()
    assert [r.__dict__["span"]["name"] for r in records.records] == ["gen_ai.task"]
    assert (
        ended(records)["gen_ai.task"]["parentSpanId"] == f"{parent.get_span_context().span_id:016x}"
    )


def test_remote_parent_continues_the_trace_without_a_root(
    otel: Otel, records: RecordCollector
) -> None:
    remote = trace.SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1)
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    with otel.tracer.start_as_current_span(
        "chat", context=context, attributes={"gen_ai.operation.name": "chat"}
    ):
        pass
    span = ended(records)["chat"]
    assert span["traceId"] == f"{0xABC:032x}"
    assert span["parentSpanId"] == f"{0xDEF:016x}"
    assert span["isRootSpan"] is False
    assert [r.__dict__["span_event"] for r in records.records] == ["span_ended"]


def test_after_shutdown_spans_are_ignored(otel: Otel, records: RecordCollector) -> None:
    otel.provider.shutdown()
    one_span_name = "gen_ai.after"
    with otel.tracer.start_as_current_span(one_span_name):
        pass
    assert records.records == []


# ---------------------------------------------------------- the conventions


def test_latest_gen_ai_conventions(otel: Otel, records: RecordCollector) -> None:
    tools = [{"type": "function", "name": "f", "description": "d", "parameters": {}}]
    span = one_span(
        otel,
        records,
        "chat claude",
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.system": "ignored-older-name",
            "gen_ai.request.model": "claude-x",
            "gen_ai.response.model": "claude-x-2025",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 60,
            "gen_ai.usage.cache_creation.input_tokens": 30,
            "gen_ai.usage.reasoning.output_tokens": 5,
            "gen_ai.request.max_tokens": 256,
            "gen_ai.request.top_p": 0.9,
            "gen_ai.tool.definitions": json.dumps(tools),
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Sys."}]),
            "gen_ai.input.messages": json.dumps(
                [
                    {"role": "user", "parts": [{"type": "text", "content": "Q"}]},
                    {
                        "role": "tool",
                        "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}],
                    },
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "reasoning", "content": "hmm"},
                            {"type": "tool_call", "id": "c2", "name": "f", "arguments": {"a": 1}},
                        ],
                        "finish_reason": "tool_use",
                    }
                ]
            ),
            "gen_ai.response.time_to_first_chunk": 0.25,
        },
    )
    attributes = span["attributes"]
    assert attributes["model"] == "claude-x-2025" and attributes["requestModel"] == "claude-x"
    assert attributes["provider"] == "anthropic"
    assert attributes["usage"] == {
        "inputTokens": 100,
        "outputTokens": 20,
        "inputDetails": {"cacheRead": 60, "cacheWrite": 30},
        "outputDetails": {"reasoning": 5},
    }
    assert attributes["parameters"] == {"maxOutputTokens": 256, "topP": 0.9}
    assert attributes["tools"] == tools
    assert attributes["finishReason"] == "tool_use"
    first_token = attributes["completionStartTime"] - span["startTime"]
    assert first_token.total_seconds() == pytest.approx(0.25)
    assert span["input"] == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": [{"type": "text", "text": "Q"}]},
        {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "result": "42"}]},
    ]
    assert span["output"] == [
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "hmm"},
                {"type": "tool-call", "id": "c2", "function": {"name": "f", "arguments": {"a": 1}}},
            ],
        }
    ]
    assert "gen_ai.input.messages" not in attributes  # content is input/output, not attributes


def test_older_gen_ai_conventions_and_message_events(otel: Otel, records: RecordCollector) -> None:
    with otel.tracer.start_as_current_span(
        "chat",
        attributes={
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.completion_tokens": 3,
        },
    ) as span:
        span.add_event("gen_ai.system.message", {"content": "S"})
        span.add_event("gen_ai.user.message", {"content": "U"})
        span.add_event("gen_ai.choice", {"message": json.dumps({"content": "A"})})
    recorded = ended(records)["chat"]
    # No operation name: provider, model and tokens make it a generation (as PostHog infers).
    assert recorded["type"] == "model_generation"
    assert recorded["attributes"]["provider"] == "openai"
    assert recorded["attributes"]["model"] == "gpt-4"
    assert recorded["attributes"]["usage"] == {"inputTokens": 7, "outputTokens": 3}
    assert recorded["input"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
    ]
    assert recorded["output"] == [{"role": "assistant", "content": "A"}]


def test_openllmetry_llm_and_traceloop_conventions(otel: Otel, records: RecordCollector) -> None:
    generation = one_span(
        otel,
        records,
        "openai.chat",
        **{
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 11,
            "gen_ai.usage.output_tokens": 4,
            "llm.is_streaming": True,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Weather in Paris?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "call_1",
            "gen_ai.completion.0.tool_calls.0.name": "get_weather",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
            "llm.request.functions.0.name": "get_weather",
            "llm.request.functions.0.description": "Weather",
            "llm.request.functions.0.parameters": '{"type": "object"}',
        },
    )
    assert generation["type"] == "model_generation"
    attributes = generation["attributes"]
    assert attributes["streaming"] is True
    assert attributes["finishReason"] == "tool_calls"
    assert attributes["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object"},
        }
    ]
    assert generation["input"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert generation["output"] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool-call",
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        }
    ]
    tool = one_span(
        otel,
        records,
        "get_weather.tool",
        **{
            "traceloop.span.kind": "tool",
            "traceloop.entity.input": '{"city": "Paris"}',
            "traceloop.entity.output": '"sunny"',
        },
    )
    assert tool["type"] == "tool_call"
    assert tool["input"] == {"city": "Paris"}
    assert tool["output"] == '"sunny"'  # not a JSON array or object: kept as text
    assert tool["attributes"] == {"traceloop.span.kind": "tool"}


def test_vercel_ai_sdk_conventions(otel: Otel, records: RecordCollector) -> None:
    generation = one_span(
        otel,
        records,
        "ai.generateText.doGenerate",
        **{
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "gpt-4o-mini",
            "ai.model.provider": "openai.chat",
            "ai.usage.promptTokens": 30,
            "ai.usage.completionTokens": 6,
            "ai.prompt.messages": json.dumps([{"role": "user", "content": "Hi"}]),
            "ai.response.text": "Let me check.",
            "ai.response.toolCalls": json.dumps(
                [{"toolCallId": "t1", "toolName": "lookup", "input": '{"q": "x"}'}]
            ),
            "ai.response.finishReason": "tool-calls",
            "ai.response.msToFirstChunk": 120,
        },
    )
    attributes = generation["attributes"]
    assert generation["type"] == "model_generation"
    assert (attributes["model"], attributes["provider"]) == ("gpt-4o-mini", "openai")
    assert attributes["usage"] == {"inputTokens": 30, "outputTokens": 6}
    assert attributes["finishReason"] == "tool-calls"
    assert generation["input"] == [{"role": "user", "content": "Hi"}]
    assert generation["output"] == {
        "text": "Let me check.",
        "toolCalls": [{"toolCallId": "t1", "toolName": "lookup", "args": {"q": "x"}}],
    }
    tool = one_span(
        otel,
        records,
        "ai.toolCall",
        **{
            "ai.toolCall.name": "lookup",
            "ai.toolCall.args": '{"q": "x"}',
            "ai.toolCall.result": "1",
        },
    )
    assert (tool["type"], tool["input"], tool["output"]) == ("tool_call", {"q": "x"}, "1")


def test_embeddings_agents_and_tools_by_operation_name(
    otel: Otel, records: RecordCollector
) -> None:
    types = {
        operation: one_span(otel, records, operation, **{"gen_ai.operation.name": operation})[
            "type"
        ]
        for operation in ("embeddings", "execute_tool", "invoke_agent", "text_completion", "other")
    }
    assert types == {
        "embeddings": "model_embedding",
        "execute_tool": "tool_call",
        "invoke_agent": "agent_run",
        "text_completion": "model_generation",
        "other": "generic",
    }


def test_user_and_session_from_span_or_resource(records: RecordCollector) -> None:
    resource = Resource.create({"posthog.distinct_id": "svc-user", "session.id": "s-1"})
    otel = Otel(logging.getLogger("test.otel.records"), resource)
    with otel.tracer.start_as_current_span("gen_ai.a"):
        pass
    with otel.tracer.start_as_current_span("gen_ai.b", attributes={"user.id": "span-user"}):
        pass
    spans = ended(records)
    assert spans["gen_ai.a"]["metadata"] == {"userId": "svc-user", "sessionId": "s-1"}
    assert spans["gen_ai.b"]["metadata"] == {"userId": "span-user", "sessionId": "s-1"}


def test_gen_ai_conversation_id_is_the_session_id(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.otel.conversation", handler))
    conversation = {"gen_ai.conversation.id": "conv-9"}
    with otel.tracer.start_as_current_span("invoke_agent", attributes=conversation):
        otel.tracer.start_span(
            "chat", attributes={"gen_ai.operation.name": "chat", **conversation}
        ).end()
    handler.close()
    sessions = {e["event"]: e["properties"].get("$ai_session_id") for e in capture_server.events}
    assert sessions == {"$ai_generation": "conv-9", "$ai_trace": "conv-9"}


# ------------------------------------------------------ malformed and errors


def test_malformed_attributes_keep_what_is_known(otel: Otel, records: RecordCollector) -> None:
    span = one_span(
        otel,
        records,
        "chat",
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": 42,  # not a string: no model
            "gen_ai.provider.name": "",
            "gen_ai.usage.input_tokens": "12",  # digits are a count
            "gen_ai.usage.output_tokens": "many",
            "gen_ai.usage.cache_read.input_tokens": 2.5,
            "gen_ai.input.messages": "[not json",
            "gen_ai.output.messages": json.dumps({"not": "a list"}),
            "gen_ai.tool.definitions": "{broken",
            "gen_ai.response.finish_reasons": [1, 2],
            "gen_ai.prompt.x.role": "user",
        },
    )
    attributes = span["attributes"]
    assert "model" not in attributes and "provider" not in attributes
    assert attributes["usage"] == {"inputTokens": 12}
    assert "tools" not in attributes and "finishReason" not in attributes
    assert span["input"] == [{"role": "user", "content": "[not json"}]  # the text, as a prompt
    assert "output" not in span
    assert otel.processor.stats()["failed"] == 0


def test_a_span_that_cannot_be_read_is_counted_and_reported(
    otel: Otel, records: RecordCollector, library_logs: RecordCollector
) -> None:
    otel.tracer.start_span(12345).end()  # type: ignore[arg-type]
    with otel.tracer.start_as_current_span("gen_ai.fine"):
        pass
    assert list(ended(records)) == ["gen_ai.fine"]
    assert otel.processor.stats()["failed"] == 1
    assert any("dropped OTel span 12345" in m for m in library_logs.messages(logging.WARNING))


def error_of(
    otel: Otel, records: RecordCollector, name: str, status: Status | None, **kw: Any
) -> Any:
    with otel.tracer.start_as_current_span(
        name,
        attributes={"gen_ai.operation.name": "chat", **kw.pop("attributes", {})},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        if "exception" in kw:
            span.record_exception(kw["exception"])
        if status is not None:
            span.set_status(status)
    return ended(records)[name].get("errorInfo")


def test_errors_from_status_exception_events_and_error_type(
    otel: Otel, records: RecordCollector
) -> None:
    assert error_of(otel, records, "a", Status(StatusCode.ERROR, "rate limited")) == {
        "message": "rate limited"
    }
    assert error_of(otel, records, "b", None, exception=TimeoutError("slow")) == {
        "message": "slow",
        "name": "TimeoutError",
    }
    assert error_of(otel, records, "c", None, attributes={"error.type": "429"}) == {
        "message": "429",
        "id": "429",
    }
    assert error_of(otel, records, "d", Status(StatusCode.ERROR)) == {"message": "error"}
    # An exception recorded and handled, then status OK: not a failure.
    assert error_of(otel, records, "e", Status(StatusCode.OK), exception=ValueError("x")) is None
    assert error_of(otel, records, "f", None) is None


def test_exception_leaving_a_span_marks_its_events_as_errors(
    capture_server: CaptureServer,
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.otel.errors", handler))
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    with (
        pytest.raises(RuntimeError),
        otel.tracer.start_as_current_span("run"),
        otel.tracer.start_as_current_span("chat m", attributes=attributes),
    ):
        raise RuntimeError("model down")
    handler.close()
    props = {e["event"]: e["properties"] for e in capture_server.events}
    assert props["$ai_generation"]["$ai_is_error"] is True
    assert props["$ai_generation"]["error_message"] == "RuntimeError: model down"
    assert props["$ai_trace"]["$ai_is_error"] is True


def test_processor_rejects_a_bad_logger_argument() -> None:
    with pytest.raises(TypeError, match="logger must be a Logger"):
        LoggingSpanProcessor(logger=3)  # type: ignore[arg-type]


def test_json_safe_records(otel: Otel, records: RecordCollector) -> None:
    """Sequence attributes (tuples in the SDK) and datetimes survive the JSON formatter."""
    with otel.tracer.start_as_current_span("step", attributes={"gen_ai.x": (1, 2)}):
        pass
    line = json.loads(SpanJsonFormatter().format(records.records[-1]))
    assert line["span"]["attributes"] == {"gen_ai.x": [1, 2]}
    assert line["span"]["startTime"].endswith("Z")


# ----------------------------------------------------------- exit and fork

OTEL_PROGRAM = """
import logging, os, sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
from posthog_logging import PosthogLogHandler
from posthog_logging.otel import LoggingSpanProcessor

logger = logging.getLogger("posthog_logging.spans")
logger.addHandler(PosthogLogHandler(host=os.environ["TEST_HOST"]))
logger.setLevel(logging.INFO)
processor = LoggingSpanProcessor()
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
"""


def run_otel_program(server: CaptureServer, body: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POSTHOG_API_KEY=DUMMY_KEY, TEST_HOST=server.url)
    result = subprocess.run(
        [sys.executable, "-c", OTEL_PROGRAM + textwrap.dedent(body)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_force_flush_delivers_through_the_handlers_the_records_reach(
    capture_server: CaptureServer,
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, flush_at=1000)
    span_logger("test.otel.flush", handler)
    otel = Otel(logging.getLogger("test.otel.flush.child"))  # propagates to the handler
    with otel.tracer.start_as_current_span(
        "chat m", attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3}
    ):
        pass
    assert capture_server.events == []  # flush_at=1000: nothing sent yet
    assert otel.provider.force_flush()
    assert sorted(e["event"] for e in capture_server.events) == ["$ai_generation", "$ai_trace"]
    handler.close()


@pytest.mark.slow  # a subprocess
def test_a_program_that_just_returns_delivers_and_aborts_its_open_root(
    capture_server: CaptureServer,
) -> None:
    run_otel_program(
        capture_server,
        """
        root = tracer.start_span("long job")  # never ended
        from opentelemetry import trace
        with tracer.start_as_current_span(
            "chat m", context=trace.set_span_in_context(root),
            attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3},
        ):
            pass
        """,
    )
    props = {e["event"]: e["properties"] for e in capture_server.events}
    assert props["$ai_generation"]["$ai_input_tokens"] == 3
    assert props["$ai_generation"]["$ai_parent_id"] == props["$ai_trace"]["$ai_trace_id"]
    assert props["$ai_trace"]["$ai_span_name"] == "long job"
    assert props["$ai_trace"]["$ai_is_error"] is True  # aborted by the handler's close()


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_holds_the_lock_does_not_hang_the_child(
    capture_server: CaptureServer,
) -> None:
    run_otel_program(
        capture_server,
        """
        held, release = threading.Event(), threading.Event()
        def hold():
            with processor._lock:
                held.set()
                release.wait()
        threading.Thread(target=hold).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            with tracer.start_as_current_span("gen_ai.in child"):
                pass
            logging.shutdown()
            os._exit(0)
        release.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.05)
        os.kill(pid, 9)
        sys.exit("child hung")
        """,
    )
    assert [e["properties"]["$ai_span_name"] for e in capture_server.events] == ["gen_ai.in child"]


def test_an_otel_trace_begun_inside_a_pl_span_nests_in_its_trace(
    capture_server: CaptureServer,
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = span_logger("test.otel.hosted", handler)
    otel = Otel(logger)
    with pl.span("agent run", type="agent_run", logger=logger, metadata={"userId": "u-1"}) as run:
        chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
        with (
            otel.tracer.start_as_current_span("tool step"),
            otel.tracer.start_as_current_span("chat m", attributes=chat),
        ):
            pass
        with otel.tracer.start_as_current_span("embed", attributes={"gen_ai.operation.name": "x"}):
            pass
    handler.close()
    events = {e["properties"].get("$ai_span_name"): e for e in capture_server.events}
    assert {e["properties"]["$ai_trace_id"] for e in events.values()} == {run.trace_id}
    assert {e["distinct_id"] for e in events.values()} == {"u-1"}  # the pl trace's user
    assert events["agent run"]["event"] == "$ai_trace"  # the only root
    assert events["tool step"]["event"] == "$ai_span"
    assert events["tool step"]["properties"]["$ai_parent_id"] == run.trace_id  # under the root
    chat_props = events["chat m"]["properties"]
    assert chat_props["$ai_parent_id"] == events["tool step"]["properties"]["$ai_span_id"]
    assert events["embed"]["properties"]["$ai_parent_id"] == run.trace_id


def test_cache_tokens_reach_posthog_priced_once(capture_server: CaptureServer) -> None:
    """OTel's input tokens include cached input: the event says so, for PostHog's cost rule."""
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.otel.cache", handler))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.usage.input_tokens": 1_000,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cache_read.input_tokens": 800,
        "gen_ai.usage.cache_creation.input_tokens": 100,
    }
    with otel.tracer.start_as_current_span("chat claude-x", attributes=attributes):
        pass
    handler.close()
    generation = next(e for e in capture_server.events if e["event"] == "$ai_generation")
    props = generation["properties"]
    assert props["$ai_input_tokens"] == 1_000
    assert props["$ai_cache_read_input_tokens"] == 800
    assert props["$ai_cache_creation_input_tokens"] == 100
    assert props["$ai_cache_reporting_exclusive"] is False
