"""LoggingSpanProcessor with the real ``opentelemetry-instrumentation-openai-v2`` and the
real OpenAI SDK, the model answered in-process (httpx ``MockTransport``), through a
``PosthogLogHandler`` to the dev server.  Kept apart from ``test_otel.py`` so that the
processor's own tests also run against the oldest ``opentelemetry-sdk`` the ``otel``
extra admits (tox ``lowest-otel``), which this instrumentation does not support."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .otel_helpers import Otel

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def fake_openai(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body["messages"][-1]["content"] == "fail":
        return httpx.Response(400, json={"error": {"message": "bad request", "type": "invalid"}})
    usage = {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
    if body.get("stream"):
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
            {"choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": usage},
        ]
        common: dict[str, Any] = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-x",
        }
        text = "".join(f"data: {json.dumps({**common, **c})}\n\n" for c in chunks)
        return httpx.Response(
            200, text=text + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"}
        )
    message = {"role": "assistant", "content": "Sunny."}
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        },
    )


def mocked_openai(
    model: Callable[[httpx.Request], httpx.Response] = fake_openai,
) -> openai.OpenAI:
    """The real OpenAI client, its HTTP answered in-process by ``model``."""
    return openai.OpenAI(
        api_key="sk-fake",
        http_client=httpx.Client(transport=httpx.MockTransport(model)),
        max_retries=0,
    )


def ask_weather(client: openai.OpenAI) -> None:
    """The weather question, with a tool and a temperature (``fake_openai``: "Sunny.")."""
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
        ],
        tools=[WEATHER_TOOL],
        temperature=0.2,
    )


def assert_weather_generation(props: dict[str, Any]) -> None:
    """The ``$ai_generation`` of :func:`ask_weather`'s call, whatever instrumented it."""
    assert props["$ai_model"] == "gpt-4o-mini-2024-07-18"
    assert props["$ai_provider"] == "openai"
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (21, 9)
    assert props["$ai_temperature"] == 0.2
    assert props["$ai_stop_reason"] == "stop"
    assert props["$ai_input"] == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
    ]
    assert props["$ai_output_choices"] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}]}
    ]


def streamed_reply(client: openai.OpenAI) -> str:
    """A streamed call with usage (``fake_openai``: "Hi there"); the text read."""
    stream = client.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.fixture
def instrumented(
    capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Otel, openai.OpenAI, PosthogLogHandler]]:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    otel = Otel(span_logger("test.otel.e2e", handler))
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=otel.provider)
    client = mocked_openai()
    yield otel, client, handler
    instrumentor.uninstrument()
    handler.close()


def by_event(server: CaptureServer) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in server.events:
        grouped.setdefault(event["event"], []).append(event)
    return grouped


def test_openai_generation_lands_in_the_enclosing_otel_trace(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, handler = instrumented
    global_provider = trace.get_tracer_provider()
    with otel.tracer.start_as_current_span("agent", attributes={"user.id": "u-7"}) as agent:
        ask_weather(client)
    handler.flush()
    trace_id = f"{agent.get_span_context().trace_id:032x}"
    events = by_event(capture_server)
    (generation,) = events["$ai_generation"]
    props = generation["properties"]
    assert props["$ai_trace_id"] == trace_id and len(trace_id) == 32
    assert props["$ai_parent_id"] == trace_id  # the parent is the trace's root
    assert_weather_generation(props)
    assert props["$ai_latency"] >= 0
    (root,) = events["$ai_trace"]
    assert root["properties"]["$ai_trace_id"] == trace_id
    assert root["properties"]["$ai_span_name"] == "agent"
    assert {e["distinct_id"] for e in capture_server.events} == {"u-7"}
    assert trace.get_tracer_provider() is global_provider  # never installed globally


def test_openai_streaming_and_api_errors(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, handler = instrumented
    with otel.tracer.start_as_current_span("agent"):
        assert streamed_reply(client) == "Hi there"
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-x", messages=[{"role": "user", "content": "fail"}]
            )
    handler.flush()
    streamed, failed = by_event(capture_server)["$ai_generation"]
    assert streamed["properties"]["$ai_output_choices"][0]["content"][0]["text"] == "Hi there"
    assert streamed["properties"]["$ai_input_tokens"] == 21
    assert streamed["properties"]["$ai_is_error"] is False
    assert failed["properties"]["$ai_is_error"] is True
    assert "bad request" in failed["properties"]["error_message"]
    assert failed["properties"]["$ai_model"] == "gpt-x"  # what is known stays
    (root,) = by_event(capture_server)["$ai_trace"]
    assert root["properties"]["$ai_is_error"] is False  # the app caught the error


def test_force_flush_delivers_through_the_handler(
    instrumented: tuple[Otel, openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    otel, client, _handler = instrumented
    client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert otel.provider.force_flush()
    # A root generation: its $ai_generation and (default mode) its $ai_trace.
    assert sorted(e["event"] for e in capture_server.events) == ["$ai_generation", "$ai_trace"]
