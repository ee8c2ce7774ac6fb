"""OpenInference through LoggingSpanProcessor: the real ``openinference-instrumentation-openai``
and OpenAI SDK, the model answered in-process (httpx ``MockTransport``), through a
``PosthogLogHandler`` to the dev server; then hand-built spans for the kinds no OpenAI
call makes (agent, chain, tool, retriever) with the real OTel SDK."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .otel_helpers import Otel
from .test_otel_openai import (
    WEATHER_TOOL,
    ask_weather,
    assert_weather_generation,
    by_event,
    fake_openai,
    mocked_openai,
    streamed_reply,
)

TOOL_CALL: Any = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def fake_model(request: httpx.Request) -> httpx.Response:
    """``fake_openai``, plus a tool call for "Weather in Paris?" and embeddings."""
    body = json.loads(request.content)
    if request.url.path.endswith("/embeddings"):
        vector = {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}
        tokens = {"prompt_tokens": 3, "total_tokens": 3}
        return httpx.Response(
            200, json={"object": "list", "data": [vector], "model": body["model"], "usage": tokens}
        )
    if body["messages"][-1].get("content") == "Weather in Paris?":
        message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
        usage: dict[str, Any] = {
            "prompt_tokens": 40,
            "completion_tokens": 12,
            "total_tokens": 52,
            "prompt_tokens_details": {"cached_tokens": 32},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-2",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": usage,
            },
        )
    return fake_openai(request)


def called_functions(message: dict[str, Any]) -> list[Any]:
    """The functions an assistant message calls: as tool-call content parts or as
    OpenAI ``tool_calls`` (the mapping may send either)."""
    parts = [part for part in message.get("content") or [] if isinstance(part, dict)]
    calls = [*parts, *message.get("tool_calls", [])]
    return [call["function"] for call in calls if "function" in call]


@pytest.fixture
def instrumented(
    capture_server: CaptureServer,
) -> Iterator[tuple[Otel, openai.OpenAI, PosthogLogHandler]]:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.openinference", handler))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.provider)
    client = mocked_openai(fake_model)
    yield otel, client, handler
    instrumentor.uninstrument()
    handler.close()


def test_an_openinference_llm_span_is_the_generation_openai_v2_makes(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    # The same call and answer as test_otel_openai's first test: the same properties.
    otel, client, handler = instrumented
    with otel.tracer.start_as_current_span("agent", attributes={"user.id": "u-7"}) as agent:
        ask_weather(client)
    handler.flush()
    trace_id = f"{agent.get_span_context().trace_id:032x}"
    events = by_event(capture_server)
    (generation,) = events["$ai_generation"]
    props = generation["properties"]
    assert props["$ai_trace_id"] == trace_id
    assert props["$ai_parent_id"] == trace_id
    assert_weather_generation(props)
    assert props["$ai_tools"] == [WEATHER_TOOL]
    assert not any(key.startswith(("llm.", "input.", "output.")) for key in props)
    assert {e["distinct_id"] for e in capture_server.events} == {"u-7"}


def test_tool_calls_cache_and_reasoning_tokens_and_tool_results(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, handler = instrumented
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    with otel.tracer.start_as_current_span("agent"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[question])
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                question,
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21C"},
            ],
        )
    handler.flush()
    called, answered = (e["properties"] for e in by_event(capture_server)["$ai_generation"])
    (choice,) = called["$ai_output_choices"]
    assert choice["role"] == "assistant"
    assert called_functions(choice) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert called["$ai_stop_reason"] == "tool_calls"
    assert called["$ai_cache_read_input_tokens"] == 32
    assert called["$ai_reasoning_tokens"] == 5
    assistant, tool = answered["$ai_input"][1:]
    assert [call["name"] for call in called_functions(assistant)] == ["get_weather"]
    assert tool["role"] == "tool"
    assert tool["content"][0]["result"] == "Sunny, 21C"


def test_streamed_call_and_embedding(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, handler = instrumented
    with otel.tracer.start_as_current_span("agent"):
        assert streamed_reply(client) == "Hi there"
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    handler.flush()
    events = by_event(capture_server)
    (streamed,) = events["$ai_generation"]
    assert streamed["properties"]["$ai_output_choices"][0]["content"][0]["text"] == "Hi there"
    assert streamed["properties"]["$ai_stream"] is True
    assert streamed["properties"]["$ai_input_tokens"] == 21
    (embedding,) = events["$ai_embedding"]
    assert embedding["properties"]["$ai_model"] == "text-embedding-3-small"
    assert embedding["properties"]["$ai_input"] == ["hello"]


def test_agent_chain_tool_and_retriever_kinds(
    capture_server: CaptureServer, library_logs: Any
) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.openinference.kinds", handler))
    with otel.tracer.start_as_current_span(
        "support-agent",
        attributes={
            "openinference.span.kind": "AGENT",
            "input.value": "Where is my order?",
            "output.value": "On its way.",
            "session.id": "s-1",
            "user.id": "u-1",
            "metadata": json.dumps({"tier": "gold"}),
            "tag.tags": ["support", "beta"],
        },
    ):
        with otel.tracer.start_as_current_span(
            "plan", attributes={"openinference.span.kind": "CHAIN", "input.value": "plan it"}
        ):
            pass
        with otel.tracer.start_as_current_span(
            "lookup_order",
            attributes={
                "openinference.span.kind": "TOOL",
                "tool.name": "lookup_order",
                "input.value": '{"order": 7}',
                "input.mime_type": "application/json",
                "output.value": "shipped",
            },
        ):
            pass
        with otel.tracer.start_as_current_span(
            "search",
            attributes={
                "openinference.span.kind": "RETRIEVER",
                "retrieval.documents.0.document.content": "order 7 shipped",
            },
        ):
            pass
    handler.close()
    spans = {e["properties"]["$ai_span_name"]: e for e in capture_server.events}
    agent = spans["support-agent"]
    assert agent["event"] == "$ai_trace"
    assert agent["distinct_id"] == "u-1"
    assert agent["properties"]["$ai_session_id"] == "s-1"
    assert agent["properties"]["$ai_input_state"] == "Where is my order?"
    assert agent["properties"]["$ai_output_state"] == "On its way."
    assert agent["properties"]["tier"] == "gold"
    assert agent["properties"]["support"] is True  # tags, as pl.span's
    assert spans["plan"]["properties"]["$ai_input_state"] == "plan it"
    tool = spans["lookup_order"]["properties"]
    assert tool["$ai_input_state"] == {"order": 7}
    assert tool["$ai_output_state"] == "shipped"
    assert tool["tool.name"] == "lookup_order"
    assert "retrieval.documents.0.document.content" not in spans["search"]["properties"]
    assert {e["event"] for e in capture_server.events} == {"$ai_trace", "$ai_span"}
    assert not logging.getLogger("posthog_logging").handlers or library_logs.messages() == []
