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

import anthropic
import google.genai
import httpx
import openai
import pytest
from google.genai.types import HttpOptions
from posthog.ai.anthropic import Anthropic as PeerAnthropic
from posthog.ai.gemini import Client as PeerGemini
from posthog.ai.openai import OpenAI as PeerOpenAI
from posthog.client import Client

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .posthog_ingestion import screens, tools_called
from .test_peer_comparison import ANTHROPIC_BASE, OPENAI_BASE, WEATHER_SCHEMA, anthropic_httpx

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
    body = json.loads(request.content)
    if body["model"] == "overloaded-model":
        error = {"message": "Rate limit reached", "type": "rate_limit", "code": "rate_limit"}
        return httpx.Response(429, json={"error": error})
    if request.url.path.endswith("/embeddings"):
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": body["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            },
        )
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


def openai_client(cls: Any = openai.OpenAI, **kwargs: Any) -> Any:
    return cls(
        api_key="sk-test",
        base_url=OPENAI_BASE,
        http_client=httpx.Client(transport=httpx.MockTransport(openai_api)),
        max_retries=0,
        **kwargs,
    )


def anthropic_client(cls: Any = anthropic.Anthropic, **kwargs: Any) -> Any:
    return cls(
        api_key="sk-ant-test",
        base_url=ANTHROPIC_BASE,
        http_client=anthropic_httpx.Client(transport=anthropic_httpx.MockTransport(anthropic_api)),
        max_retries=0,
        **kwargs,
    )


def gemini_client(cls: Any = google.genai.Client, **kwargs: Any) -> Any:
    options = HttpOptions(
        base_url="http://mock.gemini",
        client_args={"transport": httpx.MockTransport(gemini_api)},
    )
    return cls(api_key="gemini-test", http_options=options, **kwargs)


# ---------------------------------------------------------------- the harness


@dataclass
class Screens:
    """Both sides of one scenario: the wrapper's events and ours."""

    peer_client: Client
    peer_server: CaptureServer
    handler: PosthogLogHandler
    logger: logging.Logger
    server: CaptureServer

    def record(self, name: str, **span: Any) -> None:
        """Log a Mastra span record, as a producer of JSON lines or another SDK would."""
        record = {
            "id": "5" * 16,
            "traceId": "6" * 32,
            "name": name,
            "type": "model_generation",
            "startTime": "2026-01-01T00:00:00.000Z",
            "endTime": "2026-01-01T00:00:01.000Z",
            "isRootSpan": True,
            "metadata": {"userId": "u1"},
            **span,
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
        """Every event of ours reads, under PostHog's rules, as the wrapper's one does."""
        (peer,), ours = self.events(name)
        expected = screens(name, peer)
        for span_name, props in ours.items():
            assert screens(name, props) == expected, span_name
        return expected


@pytest.fixture
def harness(capture_server: CaptureServer) -> Iterator[Screens]:
    with CaptureServer() as peer_server:
        peer_client = Client(DUMMY_KEY, host=peer_server.url, sync_mode=True)
        handler = PosthogLogHandler(
            api_key=DUMMY_KEY, host=capture_server.url, capture_exceptions=True
        )
        logger = span_logger("test.posthog_screens", handler)
        try:
            yield Screens(peer_client, peer_server, handler, logger, capture_server)
        finally:
            handler.close()


def generation(harness: Screens, **options: Any) -> Any:
    options.setdefault("metadata", {"userId": "u1"})
    return pl.generation("chat", logger=harness.logger, **options)


# ----------------------------------------------------------------- scenarios


def test_openai_chat_two_tool_calls_then_results_fed_back(harness: Screens) -> None:
    request = {"model": "gpt-4o", "tools": [WEATHER, CLOCK], "temperature": 0.2}
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    peer.chat.completions.create(messages=QUESTION, posthog_distinct_id="u1", **request)

    client = openai_client()
    params = {"temperature": 0.2}
    model = {"model": "gpt-4o", "provider": "openai", "parameters": params}
    with generation(harness, input=QUESTION, tools=[WEATHER, CLOCK], **model) as llm:
        response = client.chat.completions.create(messages=QUESTION, **request)
        choice = response.choices[0]
        llm.update(output=choice.message, usage=response.usage, stop_reason=choice.finish_reason)
    harness.record(
        "record",
        input=QUESTION,
        output=response.model_dump(),  # a JSON-lines producer has the response as data
        attributes={
            **model,
            "usage": response.usage.model_dump(),
            "finishReason": choice.finish_reason,
        },
    )
    seen = harness.same_screens()
    assert seen["tools"] == (["get_weather", "get_time"], 2)
    assert seen["cost"]["input"] == {"uncached": 64, "cache_read": 16, "cache_write": 0}
    assert seen["params"]["$ai_temperature"] == 0.2

    # The results fed back: the tool calls and their ids stay in $ai_input, as the peer's.
    harness.server.clear()
    harness.peer_server.clear()
    peer.chat.completions.create(messages=FED_BACK, posthog_distinct_id="u1", **request)
    with generation(harness, input=FED_BACK, **model) as llm:
        response = client.chat.completions.create(messages=FED_BACK, **request)
        llm.update(output=response.choices[0].message, usage=response.usage)
    (peer_props,), ours = harness.events("$ai_generation")
    for props in (peer_props, ours["chat"]):
        assistant, weather, clock = props["$ai_input"][1:]
        assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
            "get_weather",
            "get_time",
        ]
        assert (weather["tool_call_id"], clock["tool_call_id"]) == ("call_w", "call_t")
        assert tools_called("$ai_generation", props) is None  # the answer calls no tool


def test_openai_responses_function_call_and_web_search(harness: Screens) -> None:
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    tools = [{"type": "web_search"}, {"type": "function", "name": "get_weather"}]
    peer.responses.create(model="gpt-4.1", input="Weather?", tools=tools, posthog_distinct_id="u1")

    client = openai_client()
    with generation(harness, model="gpt-4.1", provider="openai", input="Weather?") as llm:
        response = client.responses.create(model="gpt-4.1", input="Weather?", tools=tools)
        llm.update(output=response, usage=response.usage, stop_reason=response.status)
    harness.record(
        "record",
        input="Weather?",
        output=response.model_dump()["output"],
        attributes={
            "model": "gpt-4.1",
            "provider": "openai",
            "usage": response.usage.model_dump(),
            "finishReason": response.status,
        },
    )
    seen = harness.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["web_searches"] == 1
    assert seen["cost"]["reasoning"] == 4


def test_anthropic_tool_use_with_cache_read_and_write(harness: Screens) -> None:
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": QUESTION}
    peer = anthropic_client(PeerAnthropic, posthog_client=harness.peer_client)
    peer.messages.create(posthog_distinct_id="u1", tools=tools, **request)

    client = anthropic_client()
    with generation(
        harness, model="claude-sonnet-4-5", provider="anthropic", input=QUESTION
    ) as llm:
        llm.update(attributes={"parameters": {"max_tokens": 100}})
        message = client.messages.create(tools=tools, **request)
        llm.update(output=message, usage=message.usage, stop_reason=message.stop_reason)
    harness.record(
        "record",
        input=QUESTION,
        output=message.model_dump(),
        attributes={
            "model": "claude-sonnet-4-5",
            "provider": "anthropic",
            "parameters": {"max_tokens": 100},
            "finishReason": message.stop_reason,
            "usage": message.usage.model_dump(),
        },
    )
    seen = harness.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["input"] == {"uncached": 30, "cache_read": 10, "cache_write": 4}
    assert seen["cost"]["web_searches"] == 2
    assert seen["params"]["$ai_max_tokens"] == 100


def test_gemini_function_call(harness: Screens) -> None:
    peer = gemini_client(PeerGemini, posthog_client=harness.peer_client)
    peer.models.generate_content(
        model="gemini-2.0-flash", contents="Weather?", posthog_distinct_id="u1"
    )

    client = gemini_client()
    with generation(harness, model="gemini-2.0-flash", provider="gemini", input="Weather?") as llm:
        response = client.models.generate_content(model="gemini-2.0-flash", contents="Weather?")
        stop_reason = response.candidates[0].finish_reason
        llm.update(output=response, usage=response.usage_metadata, stop_reason=stop_reason)
    harness.record(
        "record",
        input="Weather?",
        output=response.model_dump(),
        attributes={
            "model": "gemini-2.0-flash",
            "provider": "gemini",
            "usage": response.usage_metadata.model_dump(),
            "finishReason": stop_reason,
        },
    )
    seen = harness.same_screens()
    assert seen["tools"] == (["get_weather"], 1)
    assert seen["cost"]["output"] == 4


def test_failed_call(harness: Screens) -> None:
    request = {"model": "overloaded-model", "messages": QUESTION}
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    with pytest.raises(openai.RateLimitError):
        peer.chat.completions.create(posthog_distinct_id="u1", **request)

    client = openai_client()
    with (
        pytest.raises(openai.RateLimitError),
        generation(harness, model="overloaded-model", provider="openai", input=QUESTION),
    ):
        client.chat.completions.create(**request)
    seen = harness.same_screens()
    assert seen["error"][0] is True and "Rate limit reached" in str(seen["error"][1])
    # Beyond the peer: the error's type, and the exception for Error tracking.
    (_, ours) = harness.events("$ai_generation")
    assert ours["chat"]["$ai_error_type"] == "RateLimitError"
    (exception,) = (e for e in harness.server.events if e["event"] == "$exception")
    assert exception["properties"]["$ai_span_id"] == ours["chat"]["$ai_span_id"]
    assert exception["properties"]["$exception_list"][0]["type"] == "RateLimitError"
    assert exception["distinct_id"] == "u1"


def test_embedding(harness: Screens) -> None:
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    peer.embeddings.create(model="text-embedding-3-small", input="hello", posthog_distinct_id="u1")

    client = openai_client()
    with pl.embedding(
        "chat",
        model="text-embedding-3-small",
        provider="openai",
        input="hello",
        metadata={"userId": "u1"},
        logger=harness.logger,
    ) as embedding:
        response = client.embeddings.create(model="text-embedding-3-small", input="hello")
        embedding.update(usage=response.usage)
    seen = harness.same_screens("$ai_embedding")
    assert seen["cost"]["input"]["uncached"] == 8
    (_, ours) = harness.events("$ai_embedding")
    assert ours["chat"]["$ai_usage"] == {"prompt_tokens": 8, "total_tokens": 8}  # rule (q)


def test_message_with_a_base64_image(harness: Screens) -> None:
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    peer.chat.completions.create(model="gpt-4o", messages=IMAGE_QUESTION, posthog_distinct_id="u1")

    client = openai_client()
    with generation(harness, model="gpt-4o", provider="openai", input=IMAGE_QUESTION) as llm:
        response = client.chat.completions.create(model="gpt-4o", messages=IMAGE_QUESTION)
        choice = response.choices[0]
        llm.update(output=choice.message, usage=response.usage, stop_reason=choice.finish_reason)
    harness.record(
        "record",
        input=IMAGE_QUESTION,
        output=response.model_dump(),
        attributes={
            "model": "gpt-4o",
            "provider": "openai",
            "usage": response.usage.model_dump(),
            "finishReason": choice.finish_reason,
        },
    )
    harness.same_screens()
    (peer_props,), ours = harness.events("$ai_generation")
    for props in (peer_props, *ours.values()):
        sent = json.dumps(props["$ai_input"])
        assert PNG[:100] not in sent
        url = props["$ai_input"][0]["content"][1]["image_url"]["url"]
        assert url.startswith("[base64 image")
    assert ours["chat"]["$ai_input"][0]["content"][1]["image_url"]["url"] == (
        f"[base64 image/png redacted, {len(base64.b64decode(PNG))} bytes]"
    )
