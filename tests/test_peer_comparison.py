"""Ours against the peer: the ``posthog`` package's own AI wrappers, for the same calls.

Each scenario makes one SDK call twice against the same mocked provider API
(``httpx.MockTransport``): once through ``posthog.ai.openai.OpenAI`` /
``posthog.ai.anthropic.Anthropic`` with a ``posthog.Client`` sending to one dev
server, once through the plain SDK client inside ``pl.generation`` /
``pl.embedding`` with our handler sending to another.  Then every ``$ai_*``
property the peer sent must either be in ours with the same meaning
(:data:`SAME_MEANING`) or be a deliberate difference named, with its reason,
in :data:`DELIBERATE`.  A property the peer starts sending fails the test
until it is put in one list or the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import openai
import pytest
from posthog.ai.anthropic import Anthropic as PeerAnthropic
from posthog.ai.openai import OpenAI as PeerOpenAI

import posthog_logging as pl
from posthog_logging.devserver import CaptureServer

from .helpers import posthog_token_buckets
from .peer_calls import (
    WEATHER_SCHEMA,
    Harness,
    Pair,
    anthropic_client,
    open_harness,
    openai_client,
)
from .posthog_ingestion import screens

Props = Mapping[str, Any]


# ------------------------------------------------------------- the comparison


def _texts(messages: Any) -> list[tuple[str, str]]:
    """(role, text) of each message, content given as a string or as typed parts."""
    texts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        texts.append((message["role"], content))
    return texts


def _same(key: str) -> Callable[[Props, Props], bool]:
    return lambda peer, ours: bool(peer[key] == ours[key])


def _same_cost(peer: Props, ours: Props) -> bool:
    """Token counts may follow another convention; what PostHog prices must not differ."""
    return posthog_token_buckets(peer) == posthog_token_buckets(ours)


def _same_kind(key: str, kind: type) -> Callable[[Props, Props], bool]:
    return lambda peer, ours: isinstance(peer[key], kind) and isinstance(ours[key], kind)


#: Peer properties PostHog's UI reads, and how ours must match each.
SAME_MEANING: dict[str, Callable[[Props, Props], bool]] = {
    "$ai_model": _same("$ai_model"),
    "$ai_provider": _same("$ai_provider"),
    "$ai_input_tokens": _same_cost,
    "$ai_cache_read_input_tokens": _same_cost,
    "$ai_cache_creation_input_tokens": _same_cost,
    "$ai_output_tokens": _same("$ai_output_tokens"),
    "$ai_reasoning_tokens": _same("$ai_reasoning_tokens"),
    "$ai_tools": _same("$ai_tools"),
    "$ai_model_parameters": _same("$ai_model_parameters"),
    "$ai_stop_reason": _same("$ai_stop_reason"),
    "$ai_http_status": _same("$ai_http_status"),
    "$ai_base_url": _same("$ai_base_url"),
    "$ai_is_error": _same("$ai_is_error"),
    "$ai_error": _same("$ai_error"),
    "$ai_input": lambda peer, ours: (
        peer["$ai_input"] == ours["$ai_input"]
        if isinstance(peer["$ai_input"], str)
        else _texts(peer["$ai_input"]) == _texts(ours["$ai_input"])
    ),
    "$ai_output_choices": lambda peer, ours: (
        _texts(peer["$ai_output_choices"]) == _texts(ours.get("$ai_output_choices", []))
    ),
    "$ai_usage": _same("$ai_usage"),  # the raw usage object (mapping-spec Part 2 (q))
    "$ai_latency": _same_kind("$ai_latency", float),
    "$ai_trace_id": _same_kind("$ai_trace_id", str),
}

#: Peer properties ours does not send as the peer does, each with the reason.
DELIBERATE: dict[str, str] = {
    "$ai_tokens_source": "posthog-python marks whether the caller overrode SDK token counts; "
    "ours always sends what the caller recorded",
    "$ai_lib": "ours identifies itself with $lib = posthog-logging on every event",
    "$ai_lib_version": "ours sends $lib_version",
}


def _says_nothing(value: Any) -> bool:
    """An empty list, or a zero count (posthog 6.7 sends 0 tokens for a failed call)."""
    return value == [] or (type(value) is int and value == 0)


def compare(pair: Pair) -> None:
    """Every peer ``$ai_*`` property: same meaning in ours, or a named deliberate difference."""
    unexplained = []
    for key in sorted(pair.peer):
        if not key.startswith("$ai_") or key in DELIBERATE:
            continue
        rule = SAME_MEANING.get(key)
        if rule is None:
            unexplained.append(f"{key}: not compared (add to SAME_MEANING or DELIBERATE)")
        elif key not in pair.ours:
            if not _says_nothing(pair.peer[key]):
                unexplained.append(f"{key}: missing from ours")
        elif not rule(pair.peer, pair.ours):
            unexplained.append(f"{key}: peer {pair.peer[key]!r}, ours {pair.ours.get(key)!r}")
    assert not unexplained, "\n".join(unexplained)


@pytest.fixture
def harness(capture_server: CaptureServer) -> Iterator[Harness]:
    with open_harness(capture_server, "test.peer_comparison") as opened:
        yield opened


# ----------------------------------------------------------------- scenarios

MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


def test_openai_chat_completion(harness: Harness) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather", "parameters": WEATHER_SCHEMA},
        }
    ]
    request = {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 50}
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    peer.chat.completions.create(posthog_distinct_id="u1", tools=tools, **request)

    client = openai_client()
    with pl.generation(
        "chat",
        model="gpt-4o",
        provider="openai",
        input=MESSAGES,
        parameters={"temperature": 0.2, "max_tokens": 50},
        tools=tools,
        metadata={"userId": "u1", "$ai_base_url": str(client.base_url)},
        logger=harness.logger,
    ) as llm:
        response = client.chat.completions.create(tools=tools, **request)
        choice = response.choices[0]
        llm.update(
            output=[{"role": "assistant", "content": choice.message.content}],
            usage=response.usage,
            stop_reason=choice.finish_reason,
            metadata={"$ai_http_status": 200},
        )
    pair = harness.pair("$ai_generation")
    compare(pair)
    # What ours sends beyond the peer (README "Default mode vs Mastra").
    assert pair.ours["$ai_cache_reporting_exclusive"] is False
    assert pair.ours["$ai_span_id"] == pair.ours["$ai_generation_id"] == llm.span_id
    assert pair.ours["$ai_temperature"] == 0.2


def test_openai_chat_completion_that_fails(harness: Harness) -> None:
    request = {"model": "overloaded-model", "messages": MESSAGES}
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    with pytest.raises(openai.RateLimitError):
        peer.chat.completions.create(posthog_distinct_id="u1", **request)

    client = openai_client()
    with (
        pytest.raises(openai.RateLimitError) as raised,
        pl.generation(
            "chat",
            model="overloaded-model",
            provider="openai",
            input=MESSAGES,
            parameters={},
            metadata={"userId": "u1", "$ai_base_url": str(client.base_url)},
            logger=harness.logger,
        ) as llm,
    ):
        try:
            client.chat.completions.create(**request)
        except openai.APIStatusError as error:
            llm.update(metadata={"$ai_http_status": error.status_code})
            raise
    assert raised.value.status_code == 429
    pair = harness.pair("$ai_generation")
    assert pair.peer["$ai_model_parameters"] == {}
    compare(pair)
    assert screens("$ai_generation", pair.ours) == screens("$ai_generation", pair.peer)
    # Beyond the peer: the error's type, and the exception for Error tracking.
    assert pair.ours["$ai_error_type"] == "RateLimitError"
    (exception,) = (e for e in harness.server.events if e["event"] == "$exception")
    assert exception["properties"]["$ai_span_id"] == llm.span_id
    assert exception["properties"]["$exception_list"][0]["type"] == "RateLimitError"
    assert exception["distinct_id"] == "u1"


def test_anthropic_message_with_cache(harness: Harness) -> None:
    tools = [{"name": "weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": MESSAGES}
    peer = anthropic_client(PeerAnthropic, posthog_client=harness.peer_client)
    peer.messages.create(posthog_distinct_id="u1", system="Be brief", tools=tools, **request)

    client = anthropic_client()
    with pl.generation(
        "chat",
        model="claude-sonnet-4-5",
        provider="anthropic",
        input=[{"role": "system", "content": "Be brief"}, *MESSAGES],
        parameters={"max_tokens": 100},
        tools=tools,
        metadata={"userId": "u1", "$ai_base_url": str(client.base_url)},
        logger=harness.logger,
    ) as llm:
        message = client.messages.create(system="Be brief", tools=tools, **request)
        llm.update(
            output=[{"role": "assistant", "content": message.content[0].text}],
            usage=message.usage,
            stop_reason=message.stop_reason,
            metadata={"$ai_http_status": 200},
        )
    pair = harness.pair("$ai_generation")
    compare(pair)
    # Deliberate: ours counts input gross (30 + 10 read + 4 written) and says so with the
    # flag; the peer sends Anthropic's own 30 and leaves the flag to PostHog's provider rule.
    assert (pair.peer["$ai_input_tokens"], pair.ours["$ai_input_tokens"]) == (30, 44)
    assert "$ai_cache_reporting_exclusive" not in pair.peer
    assert pair.ours["$ai_cache_reporting_exclusive"] is False
    assert posthog_token_buckets(pair.ours) == {"uncached": 30, "cache_read": 10, "cache_write": 4}


def test_openai_embedding(harness: Harness) -> None:
    peer = openai_client(PeerOpenAI, posthog_client=harness.peer_client)
    peer.embeddings.create(model="text-embedding-3-small", input="hello", posthog_distinct_id="u1")

    client = openai_client()
    with pl.embedding(
        "embed",
        model="text-embedding-3-small",
        provider="openai",
        input="hello",
        metadata={"userId": "u1", "$ai_base_url": str(client.base_url)},
        logger=harness.logger,
    ) as embedding:
        response = client.embeddings.create(model="text-embedding-3-small", input="hello")
        embedding.update(usage=response.usage, metadata={"$ai_http_status": 200})
    pair = harness.pair("$ai_embedding")
    compare(pair)
    assert screens("$ai_embedding", pair.ours) == screens("$ai_embedding", pair.peer)
    # Beyond the peer, which sends none for embeddings: the raw usage (mapping-spec (q)).
    assert pair.ours["$ai_usage"] == {"prompt_tokens": 8, "total_tokens": 8}
