"""Logfire through LoggingSpanProcessor: the real ``logfire`` package (``instrument_openai``)
and OpenAI SDK, the model answered in-process (httpx ``MockTransport``), through a
``PosthogLogHandler`` to the dev server.  Logfire owns its tracer provider: the processor
is given to ``logfire.configure(additional_span_processors=[...])``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import logfire
import openai
import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer
from posthog_logging.otel import LoggingSpanProcessor

from .conftest import DUMMY_KEY, span_logger
from .test_otel_openai import by_event, fake_openai, mocked_openai, streamed_reply


def logfire_openai(
    logger: logging.Logger, model: Callable[[httpx.Request], httpx.Response] = fake_openai
) -> openai.OpenAI:
    """The documented recipe, with an OpenAI client whose model is ``model``."""
    logfire.configure(
        send_to_logfire=False,
        console=False,
        additional_span_processors=[LoggingSpanProcessor(logger)],
    )
    client = mocked_openai(model)
    logfire.instrument_openai(client)
    return client


class SlowStream(httpx.SyncByteStream):
    """``fake_openai``'s streamed answer with a pause before its last event, so the
    streamed call has a duration the test can see (at least ``PAUSE`` seconds)."""

    PAUSE = 0.05

    def __init__(self, events: list[bytes]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        yield from self.events[:-1]
        time.sleep(self.PAUSE)
        yield self.events[-1]


def slow_streaming_model(request: httpx.Request) -> httpx.Response:
    answer = fake_openai(request)
    if answer.status_code != 200 or not json.loads(request.content).get("stream"):
        return answer
    events = [event + b"\n\n" for event in answer.content.split(b"\n\n") if event]
    return httpx.Response(200, stream=SlowStream(events), headers=answer.headers)


@pytest.fixture
def instrumented(
    capture_server: CaptureServer,
) -> Iterator[tuple[openai.OpenAI, PosthogLogHandler]]:
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=capture_server.url)
    yield logfire_openai(span_logger("test.logfire", handler), slow_streaming_model), handler
    handler.close()


def test_a_call_is_one_generation_named_by_its_rendered_message(
    instrumented: tuple[openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    client, handler = instrumented
    with logfire.span("answer {question}", question="weather"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather?"}],
            temperature=0.2,
        )
    handler.flush()
    events = by_event(capture_server)
    (generation,) = events["$ai_generation"]
    props = generation["properties"]
    assert props["$ai_span_name"] == "Chat Completion with 'gpt-4o-mini'"
    assert props["$ai_model"] == "gpt-4o-mini-2024-07-18"
    assert props["$ai_provider"] == "openai"
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (21, 9)
    assert props["$ai_output_choices"][0]["content"][0]["text"] == "Sunny."
    (root,) = events["$ai_trace"]
    assert root["properties"]["$ai_span_name"] == "answer weather"
    assert props["$ai_parent_id"] == root["properties"]["$ai_trace_id"]


def test_a_streamed_call_is_one_generation_with_reply_usage_and_duration(
    instrumented: tuple[openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    client, handler = instrumented
    with logfire.span("chat"):
        assert streamed_reply(client) == "Hi there"
    handler.flush()
    events = by_event(capture_server)
    (generation,) = events["$ai_generation"]  # not the request span and the log
    props = generation["properties"]
    assert props["$ai_span_name"] == "streaming response from 'gpt-x'"
    assert props["$ai_output_choices"][0]["content"][0]["text"] == "Hi there"
    assert props["$ai_input"][0]["content"][0]["text"] == "hi"
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (21, 9)
    # The log's duration, not a span of no length.
    assert props["$ai_latency"] >= SlowStream.PAUSE
    assert len(events["$ai_trace"]) == 1
    assert sorted(events) == ["$ai_generation", "$ai_trace"]


def test_a_failed_streamed_request_is_still_a_generation(
    instrumented: tuple[openai.OpenAI, PosthogLogHandler], capture_server: CaptureServer
) -> None:
    client, handler = instrumented
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-x", messages=[{"role": "user", "content": "fail"}], stream=True
        )
    handler.flush()
    (generation,) = by_event(capture_server)["$ai_generation"]
    assert generation["properties"]["$ai_is_error"] is True
    assert generation["properties"]["$ai_span_name"] == "Chat Completion with 'gpt-x'"
