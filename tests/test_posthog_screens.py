"""The same model call through the ``posthog.ai`` wrapper and through this library must
fill PostHog's screens the same way (issue 17).

Each scenario makes one SDK call against a mocked provider API
(``httpx.MockTransport``, in-process): once through the wrapper with a
``posthog.Client`` sending to one capture server, once with the plain SDK inside
``pl.generation`` and once logged as a Mastra span record built from the same
request and response, both through our handler to another.  The three events
are then compared through what PostHog's ingestion derives from them
(:mod:`tests.posthog_ingestion`, each rule with its PostHog source path): tool
names in call order and their count (Tools), token buckets, output, reasoning
and web searches (Cost), error flag and message (Errors), model, provider and
model parameters (Generations).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import google.genai
import httpx
import openai
import pytest
from google.genai import types
from google.genai.types import HttpOptions
from posthog.ai.anthropic import Anthropic as PeerAnthropic
from posthog.ai.gemini import Client as PeerGemini
from posthog.ai.openai import OpenAI as PeerOpenAI

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .otel_helpers import Otel
from .peer_calls import (
    WEATHER_SCHEMA,
    Harness,
    anthropic_client,
    anthropic_httpx,
    open_harness,
    openai_client,
)
from .peer_calls import openai_api as rate_limited_openai_api
from .posthog_ingestion import screens, tools_called

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": WEATHER_SCHEMA}}
QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]
TWO_CALLS = [
    {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
    {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
]
#: The conversation after the two tools answered: fed back to the model.
FED_BACK = [
    *QUESTION,
    {"role": "assistant", "content": None, "tool_calls": TWO_CALLS},
    {"role": "tool", "tool_call_id": "call_w", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_t", "content": "noon"},
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8).decode()
IMAGE_QUESTION = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ],
    }
]


# ------------------------------------------------------ the mocked provider APIs


def _chat_completion(body: dict[str, Any]) -> dict[str, Any]:
    fed_back = any(message.get("role") == "tool" for message in body["messages"])
    message: dict[str, Any] = (
        {"role": "assistant", "content": "Sunny, and it is noon"}
        if fed_back
        else {"role": "assistant", "content": None, "tool_calls": TWO_CALLS}
    )
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 1,
        "model": body["model"],
        "choices": [
            {"index": 0, "finish_reason": "stop" if fed_back else "tool_calls", "message": message}
        ],
        "usage": {
            "prompt_tokens": 80,
            "completion_tokens": 12,
            "total_tokens": 92,
            "prompt_tokens_details": {"cached_tokens": 16},
        },
    }


def _response(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": body["model"],
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_w",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            },
        ],
        "usage": {
            "input_tokens": 50,
            "output_tokens": 10,
            "total_tokens": 60,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 4},
        },
    }


def openai_api(request: httpx.Request) -> httpx.Response:
    """Chat completions with tool calls and the Responses API; the rest as in the
    peer comparison (a rate limit for ``overloaded-model``)."""
    body = json.loads(request.content)
    if body["model"] == "overloaded-model":
        return rate_limited_openai_api(request)  # type: ignore[no-any-return]
    if request.url.path.endswith("/responses"):
        return httpx.Response(200, json=_response(body))
    return httpx.Response(200, json=_chat_completion(body))


def anthropic_api(request: Any) -> Any:
    body = json.loads(request.content)
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "P"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 30,
            "output_tokens": 5,
            "cache_read_input_tokens": 10,
            "cache_creation_input_tokens": 4,
            "server_tool_use": {"web_search_requests": 2},
        },
    }
    return anthropic_httpx.Response(200, json=message)


def gemini_api(request: httpx.Request) -> httpx.Response:
    model = request.url.path.rsplit("/", 1)[-1].split(":", 1)[0]
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    body = {
        "candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 4, "totalTokenCount": 16},
        "modelVersion": model,
    }
    return httpx.Response(200, json=body)


def gemini_client(cls: Any = google.genai.Client, **kwargs: Any) -> Any:
    options = HttpOptions(
        base_url="http://mock.gemini",
        client_args={"transport": httpx.MockTransport(gemini_api)},
    )
    return cls(api_key="gemini-test", http_options=options, **kwargs)


# ---------------------------------------------------------------- the harness


class Screens(Harness):
    """Both sides of one scenario: the wrapper's events and ours."""

    def record_call(
        self, input: Any, output: Any, usage: Any, stop_reason: Any, **attributes: Any
    ) -> None:
        """Log one model call as a Mastra span record, as a producer of JSON lines or
        another SDK would: its response and usage as plain data."""
        attributes.update(usage=usage.model_dump(), finishReason=stop_reason)
        record = {
            "id": "5" * 16,
            "traceId": "6" * 32,
            "name": "record",
            "type": "model_generation",
            "startTime": "2026-01-01T00:00:00.000Z",
            "endTime": "2026-01-01T00:00:01.000Z",
            "isRootSpan": True,
            "metadata": {"userId": "u1"},
            "input": input,
            "output": output,
            "attributes": attributes,
        }
        self.logger.info("span", extra={"span": record})

    def events(self, name: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The wrapper's ``name`` events, and ours by span name."""
        self.peer_client.flush()
        self.handler.flush()
        peer = [e["properties"] for e in self.peer_server.events if e["event"] == name]
        ours = {
            e["properties"]["$ai_span_name"]: e["properties"]
            for e in self.server.events
            if e["event"] == name
        }
        return peer, ours

    def same_screens(self, name: str = "$ai_generation") -> dict[str, Any]:
        """Every event of ours reads, under PostHog's rules, as the wrapper's one does;
        returns what ours (``pl.generation``'s) reads as.

        posthog 6.7's wrappers send no stop reason and no web search count (7.x
        do): where the installed wrapper sends none, that one item is not compared.
        """
        (peer,), ours = self.events(name)
        expected = screens(name, peer)
        for span_name, props in ours.items():
            seen = screens(name, props)
            if expected["stop_reason"] is None:
                seen["stop_reason"] = None
            if expected["cost"]["web_searches"] is None:
                seen["cost"]["web_searches"] = None
            assert seen == expected, span_name
        return screens(name, ours["chat"])


@pytest.fixture
def calls(capture_server: CaptureServer) -> Iterator[Screens]:
    with open_harness(capture_server, "test.posthog_screens") as opened:
        yield Screens(**vars(opened))


def generation(calls: Screens, **options: Any) -> Any:
    options.setdefault("metadata", {"userId": "u1"})
    return pl.generation("chat", logger=calls.logger, **options)


# ----------------------------------------------------------------- scenarios


def test_openai_chat_two_tool_calls_then_results_fed_back(calls: Screens) -> None:
    request = {"model": "gpt-4o", "tools": [WEATHER, CLOCK], "temperature": 0.2}
    peer = openai_client(PeerOpenAI, api=openai_api, posthog_client=calls.peer_client)
    peer.chat.completions.create(messages=QUESTION, posthog_distinct_id="u1", **request)

    client = openai_client(api=openai_api)
    params = {"temperature": 0.2}
    model = {"model": "gpt-4o", "provider": "openai", "parameters": params}
    with generation(calls, input=QUESTION, tools=[WEATHER, CLOCK], **model) as llm:
        response = client.chat.completions.create(messages=QUESTION, **request)
        choice = response.choices[0]
        llm.update(output=choice.message, usage=response.usage, stop_reason=choice.finish_reason)
    # A JSON-lines producer has the response as data.
    calls.record_call(
        QUESTION, response.model_dump(), response.usage, choice.finish_reason, **model
    )
    seen = calls.same_screens()
    assert seen["tools"] == (["get_weather", "get_time"], 2)
    assert seen["cost"]["input"] == {"uncached": 64, "cache_read": 16, "cache_write": 0}
    assert seen["params"]["$ai_temperature"] == 0.2

    # The results fed back: the tool calls and their ids stay in $ai_input, as the peer's.
    calls.server.clear()
    calls.peer_server.clear()
    peer.chat.completions.create(messages=FED_BACK, posthog_distinct_id="u1", **request)
    with generation(calls, input=FED_BACK, **model) as llm:
        response = client.chat.completions.create(messages=FED_BACK, **request)
        llm.update(output=response.choices[0].message, usage=response.usage)
    (peer_props,), ours = calls.events("$ai_generation")
    for props in (peer_props, ours["chat"]):
        assistant, weather, clock = props["$ai_input"][1:]
        assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
            "get_weather",
            "get_time",
        ]
        assert (weather["tool_call_id"], clock["tool_call_id"]) == ("call_w", "call_t")
        assert tools_called("$ai_generation", props) is None  # the answer calls no tool


def test_openai_responses_function_call_and_web_search(calls: Screens) -> None:
    peer = openai_client(PeerOpenAI, api=openai_api, posthog_client=calls.peer_client)
    tools = [{"type": "web_search"}, {"type": "function", "name": "get_weather"}]
    peer.responses.create(model="gpt-4.1", input="Weather?", tools=tools, posthog_distinct_id="u1")

    client = openai_client(api=openai_api)
    with generation(calls, model="gpt-4.1", provider="openai", input="Weather?") as llm:
        response = client.responses.create(model="gpt-4.1", input="Weather?", tools=tools)
        llm.update(output=response, usage=response.usage, stop_reason=response.status)
    output = response.model_dump()["output"]
    calls.record_call(
        "Weather?", output, response.usage, response.status, model="gpt-4.1", provider="openai"
    )
    seen = calls.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["web_searches"] == 1
    assert seen["cost"]["reasoning"] == 4


def test_anthropic_tool_use_with_cache_read_and_write(calls: Screens) -> None:
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": QUESTION}
    peer = anthropic_client(PeerAnthropic, api=anthropic_api, posthog_client=calls.peer_client)
    peer.messages.create(posthog_distinct_id="u1", tools=tools, **request)

    client = anthropic_client(api=anthropic_api)
    with generation(calls, model="claude-sonnet-4-5", provider="anthropic", input=QUESTION) as llm:
        llm.update(attributes={"parameters": {"max_tokens": 100}})
        message = client.messages.create(tools=tools, **request)
        llm.update(output=message, usage=message.usage, stop_reason=message.stop_reason)
    calls.record_call(
        QUESTION,
        message.model_dump(),
        message.usage,
        message.stop_reason,
        model="claude-sonnet-4-5",
        provider="anthropic",
        parameters={"max_tokens": 100},
    )
    seen = calls.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["input"] == {"uncached": 30, "cache_read": 10, "cache_write": 4}
    assert seen["cost"]["web_searches"] == 2
    assert seen["params"]["$ai_max_tokens"] == 100


def test_gemini_function_call(calls: Screens) -> None:
    peer = gemini_client(PeerGemini, posthog_client=calls.peer_client)
    peer.models.generate_content(
        model="gemini-2.0-flash", contents="Weather?", posthog_distinct_id="u1"
    )

    client = gemini_client()
    with generation(calls, model="gemini-2.0-flash", provider="gemini", input="Weather?") as llm:
        response = client.models.generate_content(model="gemini-2.0-flash", contents="Weather?")
        stop_reason = response.candidates[0].finish_reason
        llm.update(output=response, usage=response.usage_metadata, stop_reason=stop_reason)
    calls.record_call(
        "Weather?",
        response.model_dump(),
        response.usage_metadata,
        stop_reason,
        model="gemini-2.0-flash",
        provider="gemini",
    )
    seen = calls.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["output"] == 4


def test_message_with_a_base64_image(calls: Screens) -> None:
    peer = openai_client(PeerOpenAI, api=openai_api, posthog_client=calls.peer_client)
    peer.chat.completions.create(model="gpt-4o", messages=IMAGE_QUESTION, posthog_distinct_id="u1")

    client = openai_client(api=openai_api)
    with generation(calls, model="gpt-4o", provider="openai", input=IMAGE_QUESTION) as llm:
        response = client.chat.completions.create(model="gpt-4o", messages=IMAGE_QUESTION)
        choice = response.choices[0]
        llm.update(output=choice.message, usage=response.usage, stop_reason=choice.finish_reason)
    output = response.model_dump()
    calls.record_call(
        IMAGE_QUESTION,
        output,
        response.usage,
        choice.finish_reason,
        model="gpt-4o",
        provider="openai",
    )
    calls.same_screens()
    (peer_props,), ours = calls.events("$ai_generation")
    peer_url = peer_props["$ai_input"][0]["content"][1]["image_url"]["url"]
    # posthog 7.x sends "[base64 image redacted]" (posthog/ai/sanitization.py); 6.7 the image.
    assert peer_url.startswith(("[base64 image", "data:image/png;base64,"))
    for props in ours.values():
        assert PNG[:100] not in json.dumps(props)
        url = props["$ai_input"][0]["content"][1]["image_url"]["url"]
        assert url.startswith("[base64 image")
    assert ours["chat"]["$ai_input"][0]["content"][1]["image_url"]["url"] == (
        f"[base64 image/png redacted, {len(base64.b64decode(PNG))} bytes]"
    )


# ------------------------------------------------- each rule through the handler


@dataclass
class Sink:
    """A handler on a dedicated logger; ``events()`` flushes and returns what arrived."""

    handler: PosthogLogHandler
    logger: logging.Logger
    server: CaptureServer

    def events(self, name: str) -> list[dict[str, Any]]:
        self.handler.flush()
        return [e for e in self.server.events if e["event"] == name]

    def one(self, name: str) -> dict[str, Any]:
        (event,) = self.events(name)
        return event

    def record(self, **span: Any) -> None:
        """Log an ended Mastra span record (a root ``model_generation`` unless told)."""
        record = {
            "id": "7" * 16,
            "traceId": "8" * 32,
            "name": "llm",
            "type": "model_generation",
            "startTime": "2026-01-01T00:00:00.000Z",
            "endTime": "2026-01-01T00:00:01.000Z",
            "isRootSpan": True,
            **span,
        }
        self.logger.info("span", extra={"span": record})


@pytest.fixture
def sink_for(capture_server: CaptureServer) -> Iterator[Any]:
    """Makes a :class:`Sink` with the given handler options (closed at the end)."""
    handlers: list[PosthogLogHandler] = []

    def make(**options: Any) -> Sink:
        handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, **options)
        handlers.append(handler)
        logger = span_logger(f"test.posthog_screens.rules{len(handlers)}", handler)
        return Sink(handler, logger, capture_server)

    yield make
    for handler in handlers:
        handler.close()


# (p) messages keep their structure; tool calls PostHog counts


def test_p_provider_messages_keep_tool_calls_ids_and_results(sink_for: Any) -> None:
    sink = sink_for()
    anthropic_turn = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ]
    sink.record(input=FED_BACK, output={"role": "assistant", "tool_calls": TWO_CALLS})
    sink.record(id="9" * 16, input=anthropic_turn, output="Sunny.")
    openai_props, anthropic_props = (e["properties"] for e in sink.events("$ai_generation"))
    assistant = openai_props["$ai_input"][1]
    assert assistant["tool_calls"] == TWO_CALLS and assistant["content"] is None
    assert [m.get("tool_call_id") for m in openai_props["$ai_input"][2:]] == ["call_w", "call_t"]
    assert openai_props["$ai_output_choices"] == [
        {"role": "assistant", "content": None, "tool_calls": TWO_CALLS}
    ]
    assert tools_called("$ai_generation", openai_props) == (["get_weather", "get_time"], 2)
    result = anthropic_props["$ai_input"][2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    assert anthropic_props["$ai_input"][1]["content"][0]["type"] == "tool_use"


def test_p_tool_calls_the_library_writes_are_function_blocks(sink_for: Any) -> None:
    """Mastra's ``{text, toolCalls}`` and the ``tool-call`` parts of span records and of
    the OpenTelemetry processor become the wrappers' ``function`` blocks; compat keeps
    Mastra's ``tool-call`` parts."""
    mastra_output = {
        "text": "Checking",
        "toolCalls": [{"toolCallId": "c1", "toolName": "get_weather", "args": {"city": "P"}}],
    }
    otel_part = {"type": "tool-call", "id": "c2", "function": {"name": "get_time", "arguments": {}}}
    sdk_part = {"type": "tool-call", "toolCallId": "c3", "toolName": "lookup", "input": {"q": 1}}
    history = [{"role": "assistant", "content": [otel_part, sdk_part]}]
    props = []
    for compat in (False, True):
        sink = sink_for(mastra_compat=compat)
        sink.record(input=history, output=mastra_output, isRootSpan=False, parentSpanId="1" * 16)
        props.append(sink.one("$ai_generation")["properties"])
        sink.server.clear()
    ours, compat_props = props
    blocks = [*ours["$ai_input"][0]["content"], *ours["$ai_output_choices"][0]["content"][1:]]
    assert blocks == [
        {"type": "function", "id": "c2", "function": {"name": "get_time", "arguments": {}}},
        {"type": "function", "id": "c3", "function": {"name": "lookup", "arguments": {"q": 1}}},
        {
            "type": "function",
            "id": "c1",
            "function": {"name": "get_weather", "arguments": {"city": "P"}},
        },
    ]
    assert compat_props["$ai_output_choices"][0]["content"][1]["type"] == "tool-call"
    assert compat_props["$ai_input"] == history


def test_p_tool_calls_of_an_opentelemetry_genai_span_are_counted(sink_for: Any) -> None:
    """The OpenTelemetry processor's span records, through the handler: PostHog finds the
    tool calls of ``gen_ai.output.messages`` (OTel GenAI conventions)."""
    sink = sink_for()
    otel = Otel(sink.logger)
    output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {}},
                {"type": "tool_call", "id": "c2", "name": "get_time", "arguments": {}},
            ],
            "finish_reason": "tool_calls",
        }
    ]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.output.messages": json.dumps(output),
    }
    with otel.tracer.start_as_current_span("chat gpt-4o", attributes=attributes):
        pass
    props = sink.one("$ai_generation")["properties"]
    assert props["$ai_output_choices"][0]["content"][0]["type"] == "function"
    assert tools_called("$ai_generation", props) == (["get_weather", "get_time"], 2)


def test_p_an_sdk_message_object_is_read_as_a_message(sink_for: Any) -> None:
    sink = sink_for()
    message = openai.types.chat.ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": None, "tool_calls": TWO_CALLS}
    )
    with pl.generation("llm", model="gpt-4o", input=[*QUESTION, message], logger=sink.logger) as g:
        g.update(output=message)
    props = sink.one("$ai_generation")["properties"]
    assert props["$ai_input"][1]["tool_calls"][1]["function"]["name"] == "get_time"
    assert tools_called("$ai_generation", props) == (["get_weather", "get_time"], 2)


# (l) PostHog's own properties pass; library-owned ones never come from passthrough


def test_l_dollar_keys_pass_and_library_keys_are_dropped_counted_reported_once(
    sink_for: Any, library_logs: Any
) -> None:
    sink = sink_for()
    metadata = {
        "$ai_prompt_name": "weather",
        "$ai_experiment_id": "exp-1",
        "$ai_request_price": 0.01,
        "$ai_future_property": [1],
        "$ai_model": "not ours",
        "$ai_trace_id": "not ours",
        "$ai_session_id": "loses to sessionId",
        "sessionId": "s1",
    }
    for _ in range(2):
        with pl.generation("llm", model="gpt-4o", metadata=metadata, logger=sink.logger):
            pass
    first, second = (e["properties"] for e in sink.events("$ai_generation"))
    for key in ("$ai_prompt_name", "$ai_experiment_id", "$ai_request_price", "$ai_future_property"):
        assert first[key] == second[key] == metadata[key]
    assert first["$ai_model"] == "gpt-4o" and first["$ai_session_id"] == "s1"
    assert first["$ai_trace_id"] != "not ours"
    # Three keys, on the $ai_generation and the $ai_trace of each of two root generations.
    assert sink.handler.stats()["dropped_properties"] == 12
    warnings = [m for m in library_logs.messages(logging.WARNING) if "passthrough property" in m]
    assert sorted(m.split("'")[1] for m in warnings) == [
        "$ai_model",
        "$ai_session_id",
        "$ai_trace_id",
    ]


def test_l_prompt_name_and_version_from_the_tracing_api(sink_for: Any) -> None:
    sink = sink_for()
    with pl.generation(
        "llm", model="m", prompt_name="weather", prompt_version=3, logger=sink.logger
    ):
        pass

    @pl.traced(type="model_generation", prompt_name="summary", logger=sink.logger)
    def summarise(text: str) -> str:
        return text[:3]

    summarise("long text")
    props = [e["properties"] for e in sink.events("$ai_generation")]
    assert [(p["$ai_prompt_name"], p.get("$ai_prompt_version")) for p in props] == [
        ("weather", 3),
        ("summary", None),
    ]
    with pytest.raises(ValueError, match="model_generation"):
        pl.traced(type="tool_call", prompt_name="x")
    with pytest.raises(TypeError, match="prompt_version"):
        pl.generation("llm", prompt_version=[3])  # type: ignore[arg-type]


# (t) metrics, and the events posthog_event records accept


def test_t_metric_in_the_current_trace_and_for_a_trace_named_later(sink_for: Any) -> None:
    sink = sink_for()
    with pl.span("agent", metadata={"userId": "u9"}, logger=sink.logger) as root:
        pl.metric("helpfulness", 0.8, logger=sink.logger)
        with pl.span("step", logger=sink.logger) as step:
            pl.metric("steps", 2, logger=sink.logger)
    # Later, outside any span: the handler still knows the trace's user.
    pl.metric("thumbs", 1, trace_id=root.trace_id, logger=sink.logger)
    pl.metric("orphan", 0, trace_id="c" * 32, parent_id="d" * 16, logger=sink.logger)
    metrics = {e["properties"]["$ai_metric_name"]: e for e in sink.events("$ai_metric")}
    assert metrics["helpfulness"]["properties"]["$ai_metric_value"] == 0.8
    assert "$ai_parent_id" not in metrics["helpfulness"]["properties"]  # the root is the trace
    assert metrics["steps"]["properties"]["$ai_parent_id"] == step.span_id
    for name in ("helpfulness", "steps", "thumbs"):
        assert metrics[name]["properties"]["$ai_trace_id"] == root.trace_id
        assert metrics[name]["distinct_id"] == "u9"
    orphan = metrics["orphan"]
    assert (orphan["distinct_id"], orphan["properties"]["$ai_parent_id"]) == ("c" * 32, "d" * 16)
    assert orphan["properties"]["$process_person_profile"] is False  # rule (g)
    with pytest.raises(ValueError, match="trace_id="):
        pl.metric("nowhere", 1)


def test_t_posthog_event_records_accept_what_llm_analytics_joins_to_a_trace(
    sink_for: Any,
) -> None:
    sink = sink_for()
    trace = {"$ai_trace_id": "e" * 32}
    for name, properties in (
        ("survey sent", {**trace, "$survey_response": "great"}),
        ("survey shown", trace),
        ("$exception", {**trace, "$exception_list": []}),
        ("$ai_evaluation", trace),
        ("survey sent", {}),  # no trace: not LLM analytics'
        ("$pageview", trace),
    ):
        event = {"event": name, "distinct_id": "u", "properties": properties}
        sink.logger.info("event", extra={"posthog_event": event})
    sink.handler.flush()
    assert [e["event"] for e in sink.server.events] == [
        "survey sent",
        "survey shown",
        "$exception",
        "$ai_evaluation",
    ]
    assert sink.handler.stats()["dropped"] == {"invalid_posthog_event": 2}


# (r) error type, and the exception for Error tracking


def raise_value_error() -> None:
    raise ValueError("bad city")


def test_r_error_type_and_exception_event(sink_for: Any) -> None:
    sink = sink_for(capture_exceptions=True)
    with (
        pytest.raises(ValueError),
        pl.span("agent", metadata={"userId": "u3"}, logger=sink.logger),
        pl.span("tool", type="tool_call", logger=sink.logger) as tool,
    ):
        raise_value_error()
    sink.record(errorInfo={"message": "boom", "id": "TOOL_FAILED", "category": "USER"})
    props = {e["properties"]["$ai_span_name"]: e["properties"] for e in sink.events("$ai_span")}
    assert props["tool"]["$ai_error_type"] == "ValueError"
    generation_props = sink.one("$ai_generation")["properties"]
    assert generation_props["$ai_error_type"] == "TOOL_FAILED"  # errorInfo id, no exception
    exceptions = sink.events("$exception")
    assert len(exceptions) == 2  # the tool's, and the root it left through
    (exception,) = (e for e in exceptions if e["properties"]["$ai_span_id"] == tool.span_id)
    assert exception["distinct_id"] == "u3"
    assert exception["properties"]["$ai_trace_id"] == tool.trace_id
    (entry,) = exception["properties"]["$exception_list"]
    assert (entry["type"], entry["value"]) == ("ValueError", "bad city")
    assert entry["mechanism"]["handled"] is False
    functions = [frame["function"] for frame in entry["stacktrace"]["frames"]]
    assert functions[-1] == "raise_value_error"


def test_r_no_exception_event_unless_asked(sink_for: Any) -> None:
    sink = sink_for()
    with pytest.raises(ValueError), pl.span("agent", logger=sink.logger):
        raise_value_error()
    assert sink.one("$ai_trace")["properties"]["$ai_error_type"] == "ValueError"
    assert sink.events("$exception") == []


# (s) media placeholders


def test_s_inline_media_of_every_provider_becomes_a_placeholder(sink_for: Any) -> None:
    audio = base64.b64encode(bytes(300)).decode()
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
        {"inline_data": {"mime_type": "image/jpeg", "data": PNG}},
        {"type": "text", "text": "short text stays"},
    ]
    size = len(base64.b64decode(PNG))
    sent = []
    for redact in (True, False):
        sink = sink_for(redact_media=redact)
        sink.record(input=[{"role": "user", "content": content}])
        sent.append(sink.one("$ai_generation")["properties"]["$ai_input"][0]["content"])
        sink.server.clear()
    redacted, kept = sent
    assert redacted[0]["source"]["data"] == f"[base64 image/png redacted, {size} bytes]"
    assert redacted[1]["input_audio"]["data"] == "[base64 audio/wav redacted, 300 bytes]"
    assert redacted[2]["inline_data"]["data"] == f"[base64 image/jpeg redacted, {size} bytes]"
    assert redacted[3]["text"] == "short text stays"
    assert kept == content


# (q) usage PostHog prices


def test_q_raw_usage_and_gemini_grounded_search(sink_for: Any) -> None:
    sink = sink_for()
    usage = {
        "prompt_token_count": 10,
        "candidates_token_count": 2,
        "prompt_tokens_details": [{"modality": "AUDIO", "token_count": 6}],
    }
    grounded = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Sunny"}]},
                "grounding_metadata": {"web_search_queries": ["weather paris"]},
            }
        ]
    }
    sink.record(attributes={"model": "gemini-2.5-flash", "usage": usage}, output=grounded)
    props = sink.one("$ai_generation")["properties"]
    assert props["$ai_usage"] == usage  # PostHog reads the audio tokens from it
    assert props["$ai_web_search_count"] == 1
    assert props["$ai_output_choices"] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Sunny"}]}
    ]


def test_s_gemini_sdk_parts_with_bytes_are_read_and_redacted(sink_for: Any) -> None:
    image = types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")
    question = types.Content(role="user", parts=[types.Part(text="What is this?"), image])
    sink = sink_for()
    with pl.generation("llm", model="gemini-2.0-flash", input=[question], logger=sink.logger):
        pass
    (message,) = sink.one("$ai_generation")["properties"]["$ai_input"]
    text, media = message["content"]
    assert (message["role"], text) == ("user", {"type": "text", "text": "What is this?"})
    size = len(base64.b64decode(PNG))
    assert media["inline_data"]["data"] == f"[base64 image/png redacted, {size} bytes]"


def test_the_new_handler_options_are_checked_at_configuration_time() -> None:
    for option in ("capture_exceptions", "redact_media"):
        bad: dict[str, Any] = {option: "yes"}
        with pytest.raises(TypeError, match=option):
            PosthogLogHandler(api_key=DUMMY_KEY, **bad)
