"""Default mode sends what PostHog's LLM analytics reads (mapping-spec Part 2 (i)-(n)).

Everything here goes through the real handler to the dev server: the tracing
API or span-dict records in, the events PostHog would ingest out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic.types
import openai.types
import pytest
from openai.types.completion_usage import PromptTokensDetails

import posthog_logging as pl
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import DUMMY_KEY, span_logger
from .helpers import posthog_token_buckets


@dataclass
class Sink:
    """A handler on a dedicated logger; ``events()`` flushes and returns what arrived."""

    handler: PosthogLogHandler
    logger: logging.Logger
    server: CaptureServer

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        self.handler.flush()
        return [e for e in self.server.events if name is None or e["event"] == name]

    def one(self, name: str) -> dict[str, Any]:
        (event,) = self.events(name)
        properties: dict[str, Any] = event["properties"]
        return properties


@pytest.fixture
def sink(capture_server: CaptureServer) -> Iterator[Sink]:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    logger = span_logger("test.posthog_reads", handler)
    try:
        yield Sink(handler, logger, capture_server)
    finally:
        handler.close()


# --------------------------------------------------- (i) cache tokens and cost


@dataclass
class UsageCase:
    provider: str
    model: str
    usage: Any
    #: What the provider really processed: uncached input, cache reads, cache writes.
    uncached: int
    cache_read: int
    cache_write: int

    def expected(self) -> dict[str, int]:
        anthropic_style = self.provider == "anthropic" or self.model.startswith("claude")
        if anthropic_style:
            return {
                "uncached": self.uncached,
                "cache_read": self.cache_read,
                "cache_write": self.cache_write,
            }
        # Non-Anthropic pricing has no cache-write rate: writes are billed as input.
        return {
            "uncached": self.uncached + self.cache_write,
            "cache_read": self.cache_read,
            "cache_write": 0,
        }


USAGE_CASES = {
    "openai chat": UsageCase(
        "openai",
        "gpt-4o",
        openai.types.CompletionUsage(
            prompt_tokens=100,
            completion_tokens=20,
            total_tokens=120,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=40),
        ),
        60,
        40,
        0,
    ),
    "openai responses": UsageCase(
        "openai",
        "gpt-5",
        {
            "input_tokens": 100,
            "output_tokens": 20,
            "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 10},
            "output_tokens_details": {"reasoning_tokens": 3},
        },
        50,
        40,
        10,
    ),
    "anthropic sdk": UsageCase(
        "anthropic",
        "claude-sonnet-4-5",
        anthropic.types.Usage(
            input_tokens=30,
            output_tokens=5,
            cache_read_input_tokens=10,
            cache_creation_input_tokens=4,
        ),
        30,
        10,
        4,
    ),
    "anthropic dict": UsageCase(
        "anthropic",
        "claude-haiku-4-5",
        {"input_tokens": 30, "output_tokens": 5, "cache_read_input_tokens": 10},
        30,
        10,
        0,
    ),
    "claude on bedrock": UsageCase(
        "bedrock",
        "claude-3-5-sonnet",
        {
            "input_tokens": 7,
            "output_tokens": 5,
            "cache_read_input_tokens": 200,
            "cache_creation_input_tokens": 50,
        },
        7,
        200,
        50,
    ),
    "gemini usage_metadata": UsageCase(
        "gemini",
        "gemini-2.5-flash",
        {
            "usage_metadata": {
                "prompt_token_count": 100,
                "cached_content_token_count": 40,
                "candidates_token_count": 20,
                "thoughts_token_count": 5,
            }
        },
        60,
        40,
        0,
    ),
    "ai-sdk v5 on anthropic": UsageCase(
        "anthropic",
        "claude-sonnet-4-5",
        {"inputTokens": 100, "outputTokens": 20, "cachedInputTokens": 40},
        60,
        40,
        0,
    ),
    "ai-sdk v6 on anthropic": UsageCase(
        "anthropic",
        "claude-sonnet-4-5",
        {
            "inputTokens": {"total": 100, "noCache": 56, "cacheRead": 40, "cacheWrite": 4},
            "outputTokens": {"total": 20, "text": 15, "reasoning": 5},
        },
        56,
        40,
        4,
    ),
    "mastra usage on anthropic": UsageCase(
        "anthropic",
        "claude-opus-4",
        {"inputTokens": 100, "outputTokens": 9, "inputDetails": {"cacheRead": 40, "cacheWrite": 4}},
        56,
        40,
        4,
    ),
    "plain dict without cache": UsageCase(
        "anthropic", "claude-opus-4", {"inputTokens": 12, "outputTokens": 3}, 12, 0, 0
    ),
}


@pytest.mark.parametrize("case", USAGE_CASES.values(), ids=list(USAGE_CASES))
def test_every_input_token_is_priced_once_through_the_tracing_api(
    sink: Sink, case: UsageCase
) -> None:
    with pl.generation("llm", model=case.model, provider=case.provider, logger=sink.logger) as gen:
        gen.update(usage=case.usage)
    props = sink.one("$ai_generation")
    assert posthog_token_buckets(props) == case.expected()
    cache_keys = ("$ai_cache_read_input_tokens", "$ai_cache_creation_input_tokens")
    cache_sent = any(key in props for key in cache_keys)
    assert ("$ai_cache_reporting_exclusive" in props) is cache_sent


@pytest.mark.parametrize("case", USAGE_CASES.values(), ids=list(USAGE_CASES))
def test_every_input_token_is_priced_once_from_span_dicts(sink: Sink, case: UsageCase) -> None:
    """The same shapes given raw in a span record's ``attributes.usage``."""
    raw = case.usage.model_dump() if hasattr(case.usage, "model_dump") else case.usage
    record = {
        "id": "1" * 16,
        "traceId": "2" * 32,
        "parentSpanId": "3" * 16,
        "name": "llm",
        "type": "model_generation",
        "startTime": "2025-01-01T00:00:00Z",
        "endTime": "2025-01-01T00:00:01Z",
        "attributes": {"model": case.model, "provider": case.provider, "usage": raw},
    }
    sink.logger.info("llm", extra={"span": record})
    assert posthog_token_buckets(sink.one("$ai_generation")) == case.expected()


def test_output_and_reasoning_tokens_from_each_shape(sink: Sink) -> None:
    for case in USAGE_CASES.values():
        gen = pl.generation("llm", model=case.model, provider=case.provider, logger=sink.logger)
        with gen:
            gen.update(usage=case.usage)
    outputs = [
        (e["properties"]["$ai_output_tokens"], e["properties"].get("$ai_reasoning_tokens"))
        for e in sink.events("$ai_generation")
    ]
    # Gemini's thoughts are reasoning only: PostHog adds them to Gemini 2.5+ output itself.
    assert outputs == [
        (20, None),
        (20, 3),
        (5, None),
        (5, None),
        (5, None),
        (20, 5),
        (20, None),
        (20, 5),
        (9, None),
        (3, None),
    ]


# ------------------------------------------------------------ (j) tool shapes

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL_SHAPES: dict[str, Any] = {
    "openai chat": [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather now", "parameters": SCHEMA},
        }
    ],
    "openai responses": [
        {"type": "function", "name": "weather", "description": "Weather now", "parameters": SCHEMA}
    ],
    "anthropic": [{"name": "weather", "description": "Weather now", "input_schema": SCHEMA}],
    "gemini": [
        {
            "function_declarations": [
                {"name": "weather", "description": "Weather now", "parameters": SCHEMA}
            ]
        }
    ],
    "ai-sdk flat": [
        {"type": "function", "name": "weather", "description": "Weather now", "inputSchema": SCHEMA}
    ],
}


def _definition(tools: list[Any]) -> tuple[Any, Any, Any]:
    """(name, description, schema) of the one tool in ``tools``, whatever its shape."""
    (tool,) = tools
    tool = tool.get("function") or (tool.get("function_declarations") or [tool])[0]
    schema = tool.get("parameters") or tool.get("input_schema") or tool.get("inputSchema")
    return tool["name"], tool["description"], schema


@pytest.mark.parametrize("shape", list(TOOL_SHAPES))
def test_tools_keep_name_description_and_schema(sink: Sink, shape: str) -> None:
    tools = TOOL_SHAPES[shape]
    with pl.generation("llm", model="m", provider="p", tools=tools, logger=sink.logger):
        pass
    sent = sink.one("$ai_generation")["$ai_tools"]
    assert sent == tools  # as given: PostHog reads each of these shapes
    assert _definition(sent) == ("weather", "Weather now", SCHEMA)


def test_mastra_tool_map_becomes_openai_chat_tools(sink: Sink) -> None:
    tool_map = {"weather": {"id": "weather", "description": "Weather now", "inputSchema": SCHEMA}}
    with pl.generation("llm", model="m", provider="p", tools=tool_map, logger=sink.logger):
        pass
    sent = sink.one("$ai_generation")["$ai_tools"]
    assert sent == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather now", "parameters": SCHEMA},
        }
    ]


# ---------------------------------------------------------------- (k) errors


def test_failed_generation_span_and_trace_reach_the_errors_tab(sink: Sink) -> None:
    with pytest.raises(RuntimeError), pl.span("agent", type="agent_run", logger=sink.logger):
        with pytest.raises(TimeoutError), pl.span("tool", type="tool_call", logger=sink.logger):
            raise TimeoutError("tool timed out")
        with pytest.raises(ValueError), pl.generation("llm", logger=sink.logger):
            raise ValueError("rate limited")
        raise RuntimeError("agent gave up")
    span, generation, trace = (
        sink.one("$ai_span"),
        sink.one("$ai_generation"),
        sink.one("$ai_trace"),
    )
    for props, message in (
        (span, "tool timed out"),
        (generation, "rate limited"),
        (trace, "agent gave up"),
    ):
        assert props["$ai_is_error"] is True
        assert props["$ai_error"] == message
        assert props["error_message"] == message
        assert props["error_category"] == "USER"


def test_error_without_a_message_is_described(sink: Sink) -> None:
    record = {
        "id": "1" * 16,
        "traceId": "2" * 32,
        "name": "step",
        "type": "workflow_step",
        "startTime": "2025-01-01T00:00:00Z",
        "errorInfo": {"id": "E42", "category": "SYSTEM"},
    }
    sink.logger.info("step", extra={"span": record})
    props = sink.one("$ai_span")
    assert props["$ai_is_error"] is True
    assert props["$ai_error"] == '{"id":"E42","category":"SYSTEM"}'
    assert props["error_id"] == "E42"


# ---------------------------------------- (l) passthrough, (m) params, (h) stop


def test_posthog_properties_pass_and_library_keys_win(sink: Sink) -> None:
    metadata = {
        "sessionId": "chat-7",
        "$ai_session_id": "not used: sessionId wins",
        "$session_id": "replay-1",
        "$window_id": "window-1",
        "$ai_input_token_price": 0.000001,
        "$ai_output_token_price": 0.000002,
        "$ai_cache_read_token_price": 0.0000001,
        "$ai_cache_write_token_price": 0.0000012,
        "$ai_http_status": 200,
        "$ai_base_url": "https://api.example.com/v1",
        "$ai_request_url": "https://api.example.com/v1/chat/completions",
        "$ai_framework": "my-framework",
        "$ai_model": "not used: library key",
        "$ai_latency": 99,
        "$ai_total_cost_usd": 5,
    }
    with pl.generation(
        "llm", model="gpt-4o", provider="openai", metadata=metadata, logger=sink.logger
    ):
        pass
    props = sink.one("$ai_generation")
    assert props["$ai_session_id"] == "chat-7"
    assert props["$ai_model"] == "gpt-4o"
    assert props["$ai_latency"] != 99
    assert props["$ai_total_cost_usd"] == 5  # (l) revised: only library-owned keys drop
    for key in (
        "$session_id",
        "$window_id",
        "$ai_input_token_price",
        "$ai_output_token_price",
        "$ai_cache_read_token_price",
        "$ai_cache_write_token_price",
        "$ai_http_status",
        "$ai_base_url",
        "$ai_request_url",
        "$ai_framework",
    ):
        assert props[key] == metadata[key], key
    trace = sink.one("$ai_trace")
    assert trace["$session_id"] == "replay-1"


def test_ai_session_id_from_metadata_when_no_session_id(sink: Sink) -> None:
    with pl.span("agent", logger=sink.logger, metadata={"$ai_session_id": "s-9"}):
        pass
    assert sink.one("$ai_trace")["$ai_session_id"] == "s-9"


def test_model_parameters_and_stop_reason(sink: Sink) -> None:
    parameters = {"temperature": 0.2, "maxOutputTokens": 256, "topP": 0.9}
    with pl.generation(
        "llm", model="m", provider="p", parameters=parameters, logger=sink.logger
    ) as gen:
        gen.update(output="hi", stop_reason="end_turn")
    props = sink.one("$ai_generation")
    assert props["$ai_model_parameters"] == parameters
    assert props["$ai_temperature"] == 0.2
    assert props["$ai_max_tokens"] == 256
    assert props["$ai_stop_reason"] == "end_turn"


def test_model_parameters_from_metadata_when_the_span_has_none(sink: Sink) -> None:
    with pl.generation("llm", logger=sink.logger, metadata={"$ai_model_parameters": {"seed": 1}}):
        pass
    assert sink.one("$ai_generation")["$ai_model_parameters"] == {"seed": 1}


def test_stop_reason_must_be_text() -> None:
    with pytest.raises(TypeError, match="stop_reason must be a str"):
        pl.generation("llm").update(stop_reason=1)  # type: ignore[arg-type]


# ------------------------------------------------------------ (n) embeddings


def test_embedding_nests_in_the_trace_without_output(sink: Sink) -> None:
    response = openai.types.CreateEmbeddingResponse.model_validate(
        {
            "data": [],
            "model": "text-embedding-3-small",
            "object": "list",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
    )
    with pl.span("index", type="workflow_run", logger=sink.logger) as root:
        embedding = pl.embedding(
            "embed docs",
            model="text-embedding-3-small",
            provider="openai",
            input=["a", "b"],
            logger=sink.logger,
        )
        with embedding as emb:
            emb.update(output=[[0.1, 0.2]], usage=response.usage)
    props = sink.one("$ai_embedding")
    assert props["$ai_model"] == "text-embedding-3-small"
    assert props["$ai_provider"] == "openai"
    assert props["$ai_input"] == ["a", "b"]
    assert props["$ai_input_tokens"] == 8
    assert props["$ai_trace_id"] == root.trace_id
    assert props["$ai_parent_id"] == root.trace_id  # the root: PostHog's tree
    assert props["$ai_span_id"] == emb.span_id
    assert props["$ai_span_name"] == "embed docs"
    assert isinstance(props["$ai_latency"], float)
    assert not any(key.startswith("$ai_output") for key in props)
    assert {e["event"] for e in sink.events()} == {"$ai_embedding", "$ai_trace"}


def test_embedding_input_is_stripped_in_privacy_mode(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, privacy_mode=True)
    logger = span_logger("test.posthog_reads.privacy", handler)
    with pl.span("root", logger=logger), pl.embedding("e", input="secret", logger=logger):
        pass
    handler.close()
    (embedding,) = (e for e in capture_server.events if e["event"] == "$ai_embedding")
    assert "$ai_input" not in embedding["properties"]


def test_embedding_span_dict_is_a_plain_span_in_compat_mode(capture_server: CaptureServer) -> None:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url, mastra_compat=True)
    logger = span_logger("test.posthog_reads.compat", handler)
    with pl.span("root", logger=logger), pl.embedding("e", model="m", logger=logger):
        pass
    handler.close()
    assert sorted(e["event"] for e in capture_server.events) == ["$ai_span", "$ai_trace"]
